"""Render every file the deploy places on a host: templates/ + the model + the secrets store.

Nothing else decides a file's content, and rendering twice with the same store gives the same
bytes. Paths are relative to the stack's base folder on the host (``stack.base_dir``).

Example::

    rendered = render_stack(stack, StackSecrets(store, stack))
    rendered.file("agentgateway/config/config.yaml").content
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import jinja2

from .errors import MCPGateError, SecretsError
from .layout import AUTHELIA, AUTHELIA_TOTP, SERVICES, agentgateway_port
from .model import AUTHELIA_VERSION, Backend, Stack
from .secrets import StackSecrets

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = PROJECT_ROOT / "templates"
FILES = PROJECT_ROOT / "files"

# Ports inside the ingress container (the host port is stack.ingress_port).
INGRESS_LISTEN_PORT = 8080
INGRESS_HEALTH_PORT = 8081

# Where an issuer https://<host>/auth is looked up (RFC 8414, OIDC discovery, and builds of Claude
# that drop the path), mapped to the document Authelia serves under its own prefix.
DISCOVERY_ALIASES = (
    ("/.well-known/oauth-authorization-server/auth", "/auth/.well-known/oauth-authorization-server"),
    ("/.well-known/openid-configuration/auth", "/auth/.well-known/openid-configuration"),
    ("/.well-known/oauth-authorization-server", "/auth/.well-known/oauth-authorization-server"),
    ("/.well-known/openid-configuration", "/auth/.well-known/openid-configuration"),
)

# What a person reads when their client's token carries none of the server's scopes.
STEP_UP_DESCRIPTION = (
    "The access token grants none of this server's scopes. Connect again and allow them: {scopes}. "
    "A client that asks for fixed scopes must be set to ask for these."
)

# Authelia's scalar secrets: file name in authelia/secrets -> the variable that points at it.
AUTHELIA_SECRET_ENV = {
    "session_secret": "AUTHELIA_SESSION_SECRET_FILE",
    "redis_password": "AUTHELIA_SESSION_REDIS_PASSWORD_FILE",
    "storage_encryption_key": "AUTHELIA_STORAGE_ENCRYPTION_KEY_FILE",
    "oidc_hmac_secret": "AUTHELIA_IDENTITY_PROVIDERS_OIDC_HMAC_SECRET_FILE",
    "reset_password_jwt_secret": "AUTHELIA_IDENTITY_VALIDATION_RESET_PASSWORD_JWT_SECRET_FILE",
}
AUTHELIA_JWKS_KEY = "oidc_jwks_rs256.pem"
AGENTGATEWAY_JWKS = "jwks.json"

# Container-side mount points, shared by the renderer (paths inside configs) and the deploy.
MOUNTS = {
    "redis": {"config": "/config"},
    "authelia": {"config": "/config", "secrets": "/secrets", "identity": "/identity"},
    "agentgateway": {"config": "/config", "secrets": "/secrets"},
    "ingress": {"config": "/etc/caddy"},
}

# Files copied out of files/<build> into a backend's build context, and what is left out.
_BUILD_EXCLUDE = {"__pycache__", ".pytest_cache", ".ruff_cache", ".venv", "tests"}


@dataclass(frozen=True)
class HostDir:
    path: str
    mode: int
    owner: str  # uid:gid


@dataclass(frozen=True)
class HostFile:
    path: str
    content: bytes = field(repr=False)
    mode: int
    owner: str
    # The container to restart when this file changes ("" when none reads it at runtime).
    service: str
    secret: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class BuildContext:
    backend: str
    dir: str  # relative to base_dir
    image: str  # content-addressed tag
    base_image: str | None


@dataclass
class Rendered:
    stack: Stack
    dirs: list[HostDir]
    files: list[HostFile]
    builds: list[BuildContext]

    def file(self, path: str) -> HostFile:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)

    def config(self, service: str) -> HostFile:
        """The config file a service starts from (``layout.SERVICES[service].config``)."""
        layout = SERVICES[service]
        return self.file(layout.host_file("config", layout.config))

    @property
    def authelia_totp(self) -> HostFile:
        """The users' TOTP seeds, which the deploy imports with Authelia's storage CLI."""
        return self.file(AUTHELIA.host_file("identity", AUTHELIA_TOTP))

    def build_of(self, image: str) -> BuildContext | None:
        """The build context an image is built from on the host, or None for a pulled image."""
        return next((b for b in self.builds if b.image == image), None)

    def for_service(self, service: str) -> list[HostFile]:
        return [f for f in self.files if f.service == service]

    def config_digest(self, service: str) -> str:
        """One hash over every file a service reads: it changes exactly when one of them does."""
        h = hashlib.sha256()
        for f in sorted(self.for_service(service), key=lambda f: f.path):
            h.update(f"{f.path}\0{f.mode:o}\0{f.owner}\0".encode())
            h.update(f.sha256.encode())
        return h.hexdigest()


def service_paths(service: str) -> dict[str, str]:
    """Host folders (relative to base_dir) mounted into a service, by role."""
    return {role: f"{service}/{role}" for role in MOUNTS[service]}


def backend_secret_file(backend: str, secret: str) -> str:
    """Where a backend's file secret is kept on the host (relative to base_dir); bind-mounted read-only."""
    return f"backends/{backend}/files/{secret}"


def backend_env_file(backend: str) -> str:
    """The host file (relative to base_dir) ``docker create --env-file`` reads a backend's env secrets from."""
    return f"backends/{backend}/secrets.env"


def token_path(name: str) -> str:
    """Where agentgateway reads a backend token (inside its container)."""
    return f"{MOUNTS['agentgateway']['secrets']}/{name}"


def _environment() -> jinja2.Environment:
    if not TEMPLATES.is_dir():
        raise MCPGateError(f"templates folder {TEMPLATES} is missing: run mcpgate from a checkout (pip install -e .)")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    # A JSON string or list is valid YAML; it quotes every value the same way every time.
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    return env


def build_files(build: str) -> list[tuple[str, bytes]]:
    """(relative path, content) for each file of files/<build>, sorted."""
    root = FILES / build
    if not root.is_dir():
        raise MCPGateError(f"build {build!r}: there is no folder files/{build} in the project")
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part in _BUILD_EXCLUDE or part.startswith(".") for part in rel.parts):
            if p.suffix in (".pyc",):
                continue
            out.append((rel.as_posix(), p.read_bytes()))
    return out


def build_image_tag(backend: Backend, files: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256(f"base={backend.base_image or ''}\0".encode())
    for rel, content in files:
        h.update(f"{rel}\0{len(content)}\0".encode())
        h.update(content)
    return f"mcpgate-local/{backend.name}:{h.hexdigest()[:16]}"


def render_stack(stack: Stack, secrets: StackSecrets, inventory: str = "INVENTORY", host: str = "") -> Rendered:
    """Everything the deploy writes under base_dir, in the order it is written."""
    env = _environment()
    uids = stack.uids
    dirs: list[HostDir] = []
    files: list[HostFile] = []

    def add_dir(path: str, mode: int, owner: str) -> None:
        dirs.append(HostDir(path, mode, owner))

    def add(path: str, content: str | bytes, *, mode: int, owner: str, service: str, secret: bool) -> None:
        data = content.encode() if isinstance(content, str) else content
        files.append(HostFile(path, data, mode, owner, service, secret))

    # Redis: its password sits in redis.conf, so the whole folder is private.
    add_dir("redis", 0o755, "0:0")
    add_dir("redis/config", 0o700, uids.redis)
    add(
        "redis/config/redis.conf",
        env.get_template("redis/redis.conf.j2").render(stack=stack, redis_password=secrets.redis_password()),
        mode=0o600,
        owner=uids.redis,
        service="redis",
        secret=True,
    )

    # Authelia
    paths = service_paths("authelia")
    add_dir("authelia", 0o755, "0:0")
    for role in ("config", "secrets", "identity"):
        add_dir(paths[role], 0o700, uids.authelia)
    clients = [
        {
            "id": c.id,
            "name": stack.consent_name(c),
            "public": c.public,
            "auth_method": c.auth_method,
            "digest": None if c.public else secrets.client_secret_digest(c.id),
            "redirect_uris": c.redirect_uris,
            "consent": c.consent,
            "consent_duration": c.consent_duration,
            "scopes": stack.registered_scopes,
        }
        for c in stack.clients
    ]
    add(
        f"{paths['config']}/configuration.yml",
        env.get_template("authelia/configuration.yml.j2").render(
            stack=stack,
            authelia_version=AUTHELIA_VERSION,
            key_id=secrets.oidc_key_id(),
            jwks_key_path=f"{MOUNTS['authelia']['secrets']}/{AUTHELIA_JWKS_KEY}",
            clients=clients,
        ),
        mode=0o600,
        owner=uids.authelia,
        service="authelia",
        secret=False,
    )
    users = [
        {
            "name": u.name,
            "display_name": u.display_name,
            "email": u.email,
            "groups": u.groups,
            "password_hash": secrets.user_password_hash(u.name),
        }
        for u in stack.users
    ]
    add(
        f"{paths['config']}/users.yml",
        env.get_template("authelia/users.yml.j2").render(stack=stack, users=users),
        mode=0o600,
        owner=uids.authelia,
        service="authelia",
        secret=True,
    )
    scalar = {
        "session_secret": secrets.session_secret(),
        "redis_password": secrets.redis_password(),
        "storage_encryption_key": secrets.storage_encryption_key(),
        "oidc_hmac_secret": secrets.oidc_hmac_secret(),
        "reset_password_jwt_secret": secrets.reset_password_jwt_secret(),
    }
    for name in AUTHELIA_SECRET_ENV:
        add(
            f"{paths['secrets']}/{name}", scalar[name], mode=0o600, owner=uids.authelia, service="authelia", secret=True
        )
    add(
        f"{paths['secrets']}/{AUTHELIA_JWKS_KEY}",
        secrets.oidc_private_key_pem(),
        mode=0o600,
        owner=uids.authelia,
        service="authelia",
        secret=True,
    )
    for rel, content in identity_files(stack, secrets).items():
        add(f"{paths['identity']}/{rel}", content, mode=0o600, owner=uids.authelia, service="", secret=True)

    # agentgateway
    paths = service_paths("agentgateway")
    add_dir("agentgateway", 0o755, "0:0")
    add_dir(paths["config"], 0o700, uids.agentgateway)
    add_dir(paths["secrets"], 0o700, uids.agentgateway)
    from .identity import subjects
    from .policy import compile_rules, no_usable_scope

    # The public half of Authelia's signing key, from the same store: agentgateway needs no network
    # to verify tokens, and Authelia would answer 400 to a JWKS fetch that lacks the public
    # X-Forwarded-Proto/Host (it builds its issuer from them).
    add(
        f"{paths['config']}/{AGENTGATEWAY_JWKS}",
        json.dumps(secrets.oidc_public_jwks(), indent=2, sort_keys=True) + "\n",
        mode=0o600,
        owner=uids.agentgateway,
        service="agentgateway",
        secret=False,
    )
    add(
        f"{paths['config']}/config.yaml",
        env.get_template("agentgateway/config.yaml.j2").render(
            stack=stack,
            rules=compile_rules(stack, subjects(stack, secrets)),
            no_scope_rule=no_usable_scope(stack),
            backends=stack.enabled_backends,
            token_path=token_path,
            jwks_path=f"{MOUNTS['agentgateway']['config']}/{AGENTGATEWAY_JWKS}",
            session_key=secrets.gateway_session_key(),
            stats_port=agentgateway_port("metrics"),
        ),
        mode=0o600,
        owner=uids.agentgateway,
        service="agentgateway",
        secret=True,
    )
    for name in stack.token_secrets:
        add(
            f"{paths['secrets']}/{name}",
            secrets.require_token(name, host or "HOST", inventory),
            mode=0o600,
            owner=uids.agentgateway,
            service="agentgateway",
            secret=True,
        )

    # Ingress
    challenge_scope = " ".join(stack.scopes_supported)
    step_up = STEP_UP_DESCRIPTION.format(scopes=challenge_scope)
    add_dir("ingress", 0o755, "0:0")
    add_dir(service_paths("ingress")["config"], 0o750, uids.ingress)
    add(
        f"{service_paths('ingress')['config']}/Caddyfile",
        env.get_template("ingress/Caddyfile.j2").render(
            stack=stack,
            discovery_aliases=DISCOVERY_ALIASES,
            ingress_listen_port=INGRESS_LISTEN_PORT,
            ingress_health_port=INGRESS_HEALTH_PORT,
            challenge_scope=challenge_scope,
            step_up_description=step_up,
            step_up_body=json.dumps({"error": "insufficient_scope", "error_description": step_up}),
        ),
        mode=0o640,
        owner=uids.ingress,
        service="ingress",
        secret=False,
    )

    # Backends' own secrets: root-only folders; a file secret belongs to the backend's user (0400)
    # and is bind-mounted; env secrets are one 0600 root file that docker reads when it creates
    # the container, so no value is ever on a command line.
    for b in stack.enabled_backends:
        if not b.secrets:
            continue
        if not any(d.path == "backends" for d in dirs):
            add_dir("backends", 0o755, "0:0")
        add_dir(f"backends/{b.name}", 0o700, "0:0")
        env_lines = []
        for sec in b.secrets:
            value = secrets.require_token(sec.name, host or "HOST", inventory)
            if sec.file:
                if not any(d.path == f"backends/{b.name}/files" for d in dirs):
                    add_dir(f"backends/{b.name}/files", 0o700, "0:0")
                assert b.user is not None  # the model requires it for file secrets
                owner = b.user
                add(backend_secret_file(b.name, sec.name), value, mode=0o400, owner=owner, service="", secret=True)
            else:
                if "\n" in value or "\r" in value:
                    raise SecretsError(
                        f"secret {sec.name!r} holds a line break; backend {b.name!r} takes it in the variable "
                        f"{sec.env}, which is one line: set it again without one, or mount it as a file"
                    )
                env_lines.append(f"{sec.env}={value}\n")
        if env_lines:
            add(backend_env_file(b.name), "".join(env_lines), mode=0o600, owner="0:0", service="", secret=True)

    # Backends built on the host: their build context, content-addressed.
    builds: list[BuildContext] = []
    for b in stack.enabled_backends:
        if b.build is None:
            continue
        content = build_files(b.build)
        folder = f"build/{b.name}"
        if not any(d.path == "build" for d in dirs):
            add_dir("build", 0o755, "0:0")
        add_dir(folder, 0o755, "0:0")
        for rel in sorted({str(PurePosixPath(r).parent) for r, _ in content} - {"."}):
            for i in range(len(PurePosixPath(rel).parts)):
                sub = f"{folder}/{PurePosixPath(*PurePosixPath(rel).parts[: i + 1])}"
                if not any(d.path == sub for d in dirs):
                    add_dir(sub, 0o755, "0:0")
        for rel, data in content:
            add(f"{folder}/{rel}", data, mode=0o644, owner="0:0", service="", secret=False)
        builds.append(BuildContext(b.name, folder, build_image_tag(b, content), b.base_image))

    return Rendered(stack, dirs, files, builds)


def identity_files(stack: Stack, secrets: StackSecrets) -> dict[str, str]:
    """Files Authelia's storage CLI imports: each user's TOTP seed."""
    from .identity import totp_yaml

    return {"totp.yml": totp_yaml(stack, secrets)}
