"""Render every file the deploy places on a host: templates/ + the model + the secrets store.

Nothing else decides a file's content, and rendering twice with the same store gives the same
bytes. Paths are relative to the stack's base folder on the host (``stack.base_dir``).

Example::

    rendered = render_stack(stack, StackSecrets(store, stack))
    rendered.config("agentgateway").content   # agentgateway/config/config.yaml
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import jinja2
import jinja2.bccache

from . import layout
from .backup_plan import backup_items, not_backed_up
from .consent import consent_locale
from .egress import egress_firewall
from .errors import MCPGateError, SecretsError
from .identity import TOTP, subjects, totp_yaml
from .layout import (
    AGENTGATEWAY,
    AGENTGATEWAY_JWKS,
    AUTH_PREFIX,
    AUTHELIA,
    AUTHELIA_CONSENT_LOCALE,
    AUTHELIA_JWKS_KEY,
    AUTHELIA_JWKS_RETIRING_KEY,
    AUTHELIA_SECRET_ENV,
    AUTHELIA_TOTP,
    BACKENDS_DIR,
    BACKUP_DIR,
    BACKUP_ENV,
    BACKUP_PASSWORD,
    BACKUP_SCRIPT,
    BUILD_DIR,
    INGRESS,
    LABEL_STACK,
    REDIS,
    RESTORE_SCRIPT,
    SERVICES,
    SYSTEMD_UNIT_DIR,
    ServiceLayout,
    backend_build_dir,
    backend_env_file,
    backend_secret_file,
    backup_unit,
    backup_work_dir,
    token_path,
)
from .model import Backend, Stack, duration_seconds, image_tag
from .policy import allowed_expression, compile_rules, no_usable_scope
from .secret_crypto import ARGON2, key_id_for
from .secrets import StackSecrets
from .users_db import desired_users

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = PROJECT_ROOT / "templates"
FILES = PROJECT_ROOT / "files"

# Where an issuer https://<host>/auth is looked up (RFC 8414, OIDC discovery, and builds of Claude
# that drop the path), mapped to the document Authelia serves under its own prefix.
DISCOVERY_ALIASES = tuple(
    (f"/.well-known/{document}{suffix}", f"{AUTH_PREFIX}/.well-known/{document}")
    for suffix in (AUTH_PREFIX, "")
    for document in ("oauth-authorization-server", "openid-configuration")
)

# What a person reads when their client's token carries none of the server's scopes.
STEP_UP_DESCRIPTION = (
    "The access token grants none of this server's scopes. Connect again and allow them: {scopes}. "
    "A client that asks for fixed scopes must be set to ask for these."
)

# agentgateway 1.4's answer (403, text/plain) to a request its authorization policy denies
# (ProxyError::AuthorizationFailed): the no-scope rule, the only one this stack gives it.
GATEWAY_DENIAL = "authorization failed"
# Set by agentgateway on every answer that got past its route's authorization policy (a backend's
# answer, or its MCP layer's), and never on that denial: agentgateway 1.4 runs a route's response
# header policy only when the request side reached it, which comes after authorization (so its
# 401 and its bucket's 429 lack it too). The ingress rewrites only a 403 without it, and strips it
# from every answer. A backend cannot remove it (the gateway sets it over the backend's answer).
GATEWAY_PASSED_HEADER = "X-Mcpgate-Passed-Gateway"

# The request headers a backend may see (agentgateway passes a client's headers on to its
# backends): what the MCP Streamable HTTP transport needs (2025-06-18 and 2026-07-28: content
# negotiation, the session, the negotiated version, resuming a stream, SEP-2243's routing headers
# and a tool's own Mcp-Param-<name> headers) and the forwarding headers the ingress sets itself.
# agentgateway adds its own afterwards (its upstream session id, a backend's token).
# Lower case: agentgateway's CEL sees header names so.
BACKEND_REQUEST_HEADERS = (
    "accept",
    "content-type",
    "last-event-id",
    "mcp-method",
    "mcp-name",
    "mcp-protocol-version",
    "mcp-session-id",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
)
BACKEND_REQUEST_HEADER_PREFIXES = ("mcp-param-",)


def backend_headers_expression() -> str:
    """agentgateway CEL: the request's headers, only those a backend may see."""
    names = ", ".join(json.dumps(n) for n in BACKEND_REQUEST_HEADERS)
    prefixes = " || ".join(f"k.startsWith({json.dumps(p)})" for p in BACKEND_REQUEST_HEADER_PREFIXES)
    return f"request.headers.filterKeys(k, k in [{names}] || {prefixes})"


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
    # user -> their entry in Authelia's users database, which the deploy merges into the file on the
    # host (mcpgate.users_db): Authelia's state, never rendered whole.
    authelia_users: dict[str, dict[str, object]] = field(default_factory=dict)
    # systemd units, by absolute path (outside base_dir): the backup's service and timer.
    units: list[HostFile] = field(default_factory=list)

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


class _QuietBytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja's per-user cache (a 0700 folder of the user's own in the temp folder, which Jinja checks)
    of compiled templates: compiling them was a fifth of ``mcpgate render``. A cache that cannot be
    read or written is only slower, never an error."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, ValueError, EOFError):  # unreadable or damaged: compiled again
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    try:
        return _QuietBytecodeCache()
    except (OSError, RuntimeError):  # no temp folder of the user's own: no cache
        return None


def _environment() -> jinja2.Environment:
    if not TEMPLATES.is_dir():
        raise MCPGateError(f"templates folder {TEMPLATES} is missing: run mcpgate from a checkout (pip install -e .)")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    # A JSON string or list is valid YAML; it quotes every value the same way every time.
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    env.filters["shquote"] = lambda v: shlex.quote(str(v))
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


class _Output:
    """The folders and files rendered so far, in the order the deploy writes them."""

    def __init__(self) -> None:
        self.dirs: list[HostDir] = []
        self.files: list[HostFile] = []

    def dir(self, path: str, mode: int = 0o755, owner: str = "0:0") -> None:
        if not any(d.path == path for d in self.dirs):
            self.dirs.append(HostDir(path, mode, owner))

    def file(self, path: str, content: str | bytes, *, mode: int, owner: str, service: str, secret: bool) -> None:
        data = content.encode() if isinstance(content, str) else content
        self.files.append(HostFile(path, data, mode, owner, service, secret))

    def service_dirs(self, service: ServiceLayout, owner: str, mode: int = 0o700) -> None:
        """``<service>/`` (root's, readable) and one private folder per role, owned by the service's uid."""
        self.dir(service.service)
        for role in service.mounts:
            self.dir(service.host_dir(role), mode, owner)


@dataclass(frozen=True)
class _Input:
    stack: Stack
    secrets: StackSecrets
    templates: jinja2.Environment
    # Named in the message when a token the inventory needs is missing from the store.
    inventory: str
    host: str

    def template(self, name: str, **values: object) -> str:
        return self.templates.get_template(name).render(stack=self.stack, layout=layout, **values)

    def token(self, name: str) -> str:
        return self.secrets.require_token(name, self.host or "HOST", self.inventory)


def render_stack(stack: Stack, secrets: StackSecrets, inventory: str = "INVENTORY", host: str = "") -> Rendered:
    """Everything the deploy writes under base_dir, in the order it is written."""
    given = _Input(stack, secrets, _environment(), inventory, host)
    out = _Output()
    render_redis(given, out)
    render_authelia(given, out)
    render_agentgateway(given, out)
    render_ingress(given, out)
    render_backend_secrets(given, out)
    render_firewall(given, out)
    units = render_backup(given, out)
    builds = render_builds(given, out)
    return Rendered(stack, out.dirs, out.files, builds, desired_users(stack, secrets), units)


def render_redis(given: _Input, out: _Output) -> None:
    """redis.conf; its password sits in it, so the whole folder is private."""
    owner = given.stack.uids.redis
    out.service_dirs(REDIS, owner)
    conf = given.template("redis/redis.conf.j2", redis_password=given.secrets.redis_password())
    out.file(REDIS.host_file("config", REDIS.config), conf, mode=0o600, owner=owner, service="redis", secret=True)


def render_authelia(given: _Input, out: _Output) -> None:
    """Its configuration, scalar secrets, signing keys, and the users' TOTP seeds to import (its users
    database is merged on the host: :attr:`Rendered.authelia_users`)."""
    stack, secrets = given.stack, given.secrets
    owner = stack.uids.authelia
    out.service_dirs(AUTHELIA, owner)

    def add(role: str, name: str, content: str, *, secret: bool, service: str = "authelia") -> None:
        out.file(AUTHELIA.host_file(role, name), content, mode=0o600, owner=owner, service=service, secret=secret)

    stack_lifespans = (stack.access_token_lifespan, stack.refresh_token_lifespan)
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
            # A lifespan of its own (Authelia's lifespans.custom) where it differs from the stack's.
            "lifespans": None if lifespans == stack_lifespans else {"access": lifespans[0], "refresh": lifespans[1]},
        }
        for c in stack.clients
        for lifespans in [stack.client_lifespans(c)]
    ]
    # The signing key first (Authelia signs with the first RS256 key); during a rollover the retiring
    # one after it, published in its JWKS so that tokens it signed still verify.
    key_files = [AUTHELIA_JWKS_KEY, AUTHELIA_JWKS_RETIRING_KEY]
    jwks = [
        {"key_id": key_id_for(pem), "file": AUTHELIA.container_file("secrets", name), "name": name, "pem": pem}
        for name, pem in zip(key_files, secrets.oidc_signing_keys(), strict=False)
    ]
    configuration = given.template(
        "authelia/configuration.yml.j2",
        authelia_version=image_tag(stack.images.authelia),
        jwks=jwks,
        clients=clients,
        totp=TOTP,
        argon2=ARGON2,
    )
    add("config", AUTHELIA.config, configuration, secret=False)
    scalar = {
        "session_secret": secrets.session_secret(),
        "redis_password": secrets.redis_password(),
        "storage_encryption_key": secrets.storage_encryption_key(),
        "oidc_hmac_secret": secrets.oidc_hmac_secret(),
        "reset_password_jwt_secret": secrets.reset_password_jwt_secret(),
    }
    for name in AUTHELIA_SECRET_ENV:
        add("secrets", name, scalar[name], secret=True)
    for key in jwks:
        add("secrets", key["name"], key["pem"], secret=True)
    # Read by the storage CLI the deploy runs, not at start: no restart when it changes.
    add("identity", AUTHELIA_TOTP, totp_yaml(stack, secrets), secret=True, service="")
    # Read from disk on each request for it (server.asset_path): no restart either.
    folder = AUTHELIA.host_dir("assets")
    for sub in reversed(PurePosixPath(AUTHELIA_CONSENT_LOCALE).parents):
        if str(sub) != ".":
            out.dir(f"{folder}/{sub}", 0o700, owner)
    add("assets", AUTHELIA_CONSENT_LOCALE, consent_locale(stack), secret=False, service="")


def render_agentgateway(given: _Input, out: _Output) -> None:
    """Its config (routes, JWT validation, CEL rules), Authelia's public keys, and backend tokens."""
    stack, secrets = given.stack, given.secrets
    owner = stack.uids.agentgateway
    out.service_dirs(AGENTGATEWAY, owner)

    def add(role: str, name: str, content: str, *, secret: bool) -> None:
        out.file(
            AGENTGATEWAY.host_file(role, name), content, mode=0o600, owner=owner, service="agentgateway", secret=secret
        )

    # The public half of Authelia's signing key, from the same store: agentgateway needs no network
    # to verify tokens, and Authelia would answer 400 to a JWKS fetch that lacks the public
    # X-Forwarded-Proto/Host (it builds its issuer from them).
    add(
        "config",
        AGENTGATEWAY_JWKS,
        json.dumps(secrets.oidc_public_jwks(), indent=2, sort_keys=True) + "\n",
        secret=False,
    )
    rules = compile_rules(stack, subjects(stack, secrets))
    config = given.template(
        "agentgateway/config.yaml.j2",
        rules=rules,
        audit_allowed=allowed_expression(rules),
        no_scope_rule=no_usable_scope(stack),
        backends=stack.enabled_backends,
        token_path=token_path,
        session_key=secrets.gateway_session_key(),
        backend_headers=backend_headers_expression(),
        passed_header=GATEWAY_PASSED_HEADER,
    )
    add("config", AGENTGATEWAY.config, config, secret=True)
    for name in stack.token_secrets:
        add("secrets", name, given.token(name), secret=True)


def render_ingress(given: _Input, out: _Output) -> None:
    """The Caddyfile: canonical paths only, Authelia under its prefix, discovery aliases, the MCP endpoint."""
    stack = given.stack
    out.service_dirs(INGRESS, stack.uids.ingress, mode=0o750)
    challenge_scope = " ".join(stack.scopes_supported)
    step_up = STEP_UP_DESCRIPTION.format(scopes=challenge_scope)
    # Every path a route of the ingress takes (the handles of its template), as one regexp.
    routed = [
        f"{re.escape(AUTH_PREFIX)}(?:/|$)",
        *(f"{re.escape(alias)}$" for alias, _ in DISCOVERY_ALIASES),
        f"(?:{re.escape(layout.MCP_PATH)}|/\\.well-known/oauth-protected-resource)(?:/|$)",
    ]
    caddyfile = given.template(
        "ingress/Caddyfile.j2",
        routed_paths="^(?:" + "|".join(routed) + ")",
        gateway_denial=GATEWAY_DENIAL,
        passed_header=GATEWAY_PASSED_HEADER,
        discovery_aliases=DISCOVERY_ALIASES,
        challenge_scope=challenge_scope,
        step_up_description=step_up,
        step_up_body=json.dumps({"error": "insufficient_scope", "error_description": step_up}),
    )
    out.file(
        INGRESS.host_file("config", INGRESS.config),
        caddyfile,
        mode=0o640,
        owner=stack.uids.ingress,
        service="ingress",
        secret=False,
    )


def render_backend_secrets(given: _Input, out: _Output) -> None:
    """Backends' own secrets: root-only folders; a file secret belongs to the backend's user (0400)
    and is bind-mounted; env secrets are one 0600 root file that docker reads when it creates the
    container, so no value is ever on a command line."""
    for b in given.stack.enabled_backends:
        if not b.secrets:
            continue
        out.dir(BACKENDS_DIR)
        out.dir(posixpath.dirname(backend_env_file(b.name)), 0o700)
        env_lines = []
        for sec in b.secrets:
            value = given.token(sec.name)
            if sec.file:
                path = backend_secret_file(b.name, sec.name)
                out.dir(posixpath.dirname(path), 0o700)
                assert b.user is not None  # the model requires it for file secrets
                out.file(path, value, mode=0o400, owner=b.user, service="", secret=True)
            else:
                if "\n" in value or "\r" in value:
                    raise SecretsError(
                        f"secret {sec.name!r} holds a line break; backend {b.name!r} takes it in the variable "
                        f"{sec.env}, which is one line: set it again without one, or mount it as a file"
                    )
                env_lines.append(f"{sec.env}={value}\n")
        if env_lines:
            out.file(backend_env_file(b.name), "".join(env_lines), mode=0o600, owner="0:0", service="", secret=True)


def render_firewall(given: _Input, out: _Output) -> None:
    """The script that keeps egress backends to the internet (none without one): root's alone."""
    firewall = egress_firewall(given.stack)
    if firewall is None:
        return
    folder = posixpath.dirname(layout.EGRESS_FIREWALL_SCRIPT)
    out.dir(folder, 0o700)
    out.file(layout.EGRESS_FIREWALL_SCRIPT, firewall.script(), mode=0o700, owner="0:0", service="", secret=False)


# restic's environment file (sh and systemd read it): one VAR='value' a line.
_ENV_VALUE = re.compile(r"^[^'\n\r\\]+$")


def backup_template_values(stack: Stack, host: str, env_file: str, password_file: str) -> dict[str, object]:
    """What templates/backup/restic.sh.j2 is rendered with: whose snapshots, and where restic's
    environment and password are (base_dir's files, or a restore check's private copies)."""

    work = backup_work_dir(stack.name)
    return {
        "host": host,
        "env_file": env_file,
        "password_file": password_file,
        "items": backup_items(stack),
        "skipped": not_backed_up(stack),
        "staging": f"{work}/staging",
        "restore_dir": f"{work}/restore",
        "mountpoint_format": "{{.Mountpoint}}",
        "labels": {"stack": LABEL_STACK},
    }


def restic_env(given: _Input) -> str:
    """RESTIC_REPOSITORY, and for S3 the keys from the store."""
    backup = given.stack.backup
    assert backup is not None
    values = {"RESTIC_REPOSITORY": backup.repository}
    if backup.kind == "s3":
        values["AWS_ACCESS_KEY_ID"] = given.token(backup.s3_access_key_secret)
        values["AWS_SECRET_ACCESS_KEY"] = given.token(backup.s3_secret_key_secret)
    for name, value in values.items():
        if not _ENV_VALUE.match(value):
            raise SecretsError(
                f"{name} for the backup holds a quote, backslash or line break, which restic's environment file "
                "cannot carry: set it again without one"
            )
    return "".join(f"{name}='{value}'\n" for name, value in values.items())


def render_backup(given: _Input, out: _Output) -> list[HostFile]:
    """The backup's scripts, its repository's password and location (root's alone), and the systemd
    service and timer that run it; nothing without ``backup`` in the inventory."""
    stack = given.stack
    if stack.backup is None:
        return []
    if not given.host:
        raise MCPGateError("rendering backups needs the inventory host's name (the snapshots are tagged with it)")
    base = stack.base_dir
    values = backup_template_values(
        stack, given.host, posixpath.join(base, BACKUP_ENV), posixpath.join(base, BACKUP_PASSWORD)
    )
    out.dir(BACKUP_DIR, 0o700)

    def add(path: str, content: str, *, mode: int, secret: bool) -> None:
        out.file(path, content, mode=mode, owner="0:0", service="", secret=secret)

    add(BACKUP_SCRIPT, given.template("backup/backup.sh.j2", **values), mode=0o700, secret=False)
    add(RESTORE_SCRIPT, given.template("backup/restore.sh.j2", **values), mode=0o700, secret=False)
    add(BACKUP_PASSWORD, given.secrets.backup_password(), mode=0o600, secret=True)
    add(BACKUP_ENV, restic_env(given), mode=0o600, secret=True)
    service = given.template("backup/backup.service.j2", script=posixpath.join(base, BACKUP_SCRIPT))
    timer = given.template(
        "backup/backup.timer.j2", randomized_delay=int(duration_seconds(stack.backup.randomized_delay))
    )
    return [
        HostFile(f"{SYSTEMD_UNIT_DIR}/{backup_unit(stack.name, kind)}", content.encode(), 0o644, "0:0", "", False)
        for kind, content in (("service", service), ("timer", timer))
    ]


def restore_check_script(stack: Stack, host: str, env_file: str, password_file: str, snapshot: str) -> str:
    """A shell script that prints the id of ``snapshot`` ("latest" or an id) of this host and stack
    in the repository, or fails saying why (the password does not open it, another host's...)."""
    values = backup_template_values(stack, host, env_file, password_file)
    body = _environment().get_template("backup/restic.sh.j2").render(stack=stack, layout=layout, **values)
    return f"set -eu\n{body}snapshot_of_this_stack {shlex.quote(snapshot)}\n"


def render_builds(given: _Input, out: _Output) -> list[BuildContext]:
    """Backends built on the host: their build context, content-addressed."""
    builds: list[BuildContext] = []
    for b in given.stack.enabled_backends:
        if b.build is None:
            continue
        content = build_files(b.build)
        folder = backend_build_dir(b.name)
        out.dir(BUILD_DIR)
        out.dir(folder)
        for rel in sorted({str(PurePosixPath(r).parent) for r, _ in content} - {"."}):
            parts = PurePosixPath(rel).parts
            for i in range(len(parts)):
                out.dir(f"{folder}/{PurePosixPath(*parts[: i + 1])}")
        for rel, data in content:
            out.file(f"{folder}/{rel}", data, mode=0o644, owner="0:0", service="", secret=False)
        builds.append(BuildContext(b.name, folder, build_image_tag(b, content), b.base_image))
    return builds
