"""Where each part of the stack lives, on the host and inside its container: the one place it is written.

The renderer (which file goes where, which path a config names), the container specs (mounts,
commands, names), validation, the tasks and the templates (rendered with ``layout``) read these
facts here; none of them restates a path, a port or a name. A new service setting of this kind is
a change to this file only.

On the host, every path is relative to the stack's folder (``stack.base_dir``, e.g.
``/opt/mcpgate``): a service's folders are ``<service>/<role>``, each mounted read-only at the
role's path in the container. Who owns them is the inventory's ``uids.<service>`` (the model).

Example::

    AUTHELIA.host_file("config", AUTHELIA.config)       # "authelia/config/configuration.yml"
    AUTHELIA.container_file("secrets", AUTHELIA_JWKS_KEY)  # "/secrets/oidc_jwks_rs256.pem"
    container_name("mcpgate", "redis")                  # "mcpgate-redis"
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

# Authelia is served under this prefix of the public host: the issuer is https://<hostname>/auth.
AUTH_PREFIX = "/auth"
# The MCP endpoint, and the path of the access tokens' audience (RFC 8707 resource).
MCP_PATH = "/mcp"

# Labels on what the deploy makes in Docker.
LABEL_SPEC = "org.mcpgate.spec"
LABEL_SERVICE = "org.mcpgate.service"
# The stack (Stack.name) a container, network or volume belongs to: what the deploy and the
# checks filter on, so another stack on the same engine is never seen or touched.
LABEL_STACK = "org.mcpgate.stack"
# Docker's bridge driver option that names the network's host interface.
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"


@dataclass(frozen=True)
class ServiceLayout:
    """One service's folders, config file, port and data volume."""

    service: str
    # role -> the folder's path inside the container; on the host it is <service>/<role>.
    mounts: Mapping[str, str]
    # The file in the config folder the service starts from.
    config: str
    # The port it listens on inside the stack's private networks.
    port: int
    # Where its data volume (<stack>-<service>-data) is mounted, if it keeps data.
    data: str | None = None

    def host_dir(self, role: str) -> str:
        """The host folder (relative to base_dir) mounted at ``mounts[role]``."""
        if role not in self.mounts:
            raise KeyError(f"{self.service} has no {role} folder")
        return f"{self.service}/{role}"

    def host_file(self, role: str, name: str) -> str:
        return f"{self.host_dir(role)}/{name}"

    def container_file(self, role: str, name: str) -> str:
        return f"{self.mounts[role]}/{name}"

    @property
    def config_file(self) -> str:
        """The config file's path inside the container (what its command line names)."""
        return self.container_file("config", self.config)


REDIS = ServiceLayout("redis", {"config": "/config"}, "redis.conf", port=6379, data="/data")
AUTHELIA = ServiceLayout(
    "authelia",
    # assets: server.asset_path, files Authelia serves in place of its embedded ones (consent texts).
    {"config": "/config", "secrets": "/secrets", "identity": "/identity", "assets": "/assets"},
    "configuration.yml",
    port=9091,
    data="/data",
)
# agentgateway's MCP listener: the default of the inventory's gateway_port (Stack.gateway_port is
# what the configs use); and the ports it keeps for itself.
AGENTGATEWAY = ServiceLayout("agentgateway", {"config": "/config", "secrets": "/secrets"}, "config.yaml", port=3000)
AGENTGATEWAY_INTERNAL_PORTS = {15000: "admin", 15020: "metrics", 15021: "readiness"}
# The ingress listens on INGRESS.port inside its container, published on 127.0.0.1:<ingress_port>.
INGRESS = ServiceLayout("ingress", {"config": "/etc/caddy"}, "Caddyfile", port=8080)
INGRESS_HEALTH_PORT = 8081
# Seconds the ingress gives a client to send its request's headers, then its body; and how long an
# idle kept-alive connection stays open.
INGRESS_TIMEOUTS = {"read_header": 10, "read_body": 30, "idle": 120}

SERVICES: Mapping[str, ServiceLayout] = {s.service: s for s in (REDIS, AUTHELIA, AGENTGATEWAY, INGRESS)}

# Authelia's files besides its configuration.
# At the root of Authelia's data volume: its users database, which Authelia writes (a person changes
# their password) and the deploy merges the inventory's people into (mcpgate.users_db).
AUTHELIA_USERS = "users.yml"
AUTHELIA_TOTP = "totp.yml"  # identity folder: the users' TOTP seeds, imported by its storage CLI
AUTHELIA_JWKS_KEY = "oidc_jwks_rs256.pem"  # secrets folder: the token signing key
# assets folder: the English texts of the consent page, served at <prefix>/locales/en/consent.json.
AUTHELIA_CONSENT_LOCALE = "locales/en/consent.json"
# secrets folder, during a signing-key rollover only: the previous key, which still verifies
AUTHELIA_JWKS_RETIRING_KEY = "oidc_jwks_rs256.retiring.pem"
# Authelia's scalar secrets: file name in its secrets folder -> the variable that points at it.
AUTHELIA_SECRET_ENV = {
    "session_secret": "AUTHELIA_SESSION_SECRET_FILE",
    "redis_password": "AUTHELIA_SESSION_REDIS_PASSWORD_FILE",
    "storage_encryption_key": "AUTHELIA_STORAGE_ENCRYPTION_KEY_FILE",
    "oidc_hmac_secret": "AUTHELIA_IDENTITY_PROVIDERS_OIDC_HMAC_SECRET_FILE",
    "reset_password_jwt_secret": "AUTHELIA_IDENTITY_VALIDATION_RESET_PASSWORD_JWT_SECRET_FILE",
}
# In Authelia's data volume: what the deploy last imported into its database (TOTP seeds) and the
# subjects it last applied, so a run with nothing new does not call its CLI.
TOTP_MARKER = ".mcpgate-totp-import"
SUBJECTS_MARKER = ".mcpgate-subjects"
# Which initial password the deploy last gave each person (fingerprints): a new one is a reset.
PASSWORDS_MARKER = ".mcpgate-initial-passwords"


def authelia_users_file() -> str:
    """Authelia's users database inside its container."""
    assert AUTHELIA.data is not None
    return f"{AUTHELIA.data}/{AUTHELIA_USERS}"


AGENTGATEWAY_JWKS = "jwks.json"  # config folder: the public half of Authelia's signing key
# Authelia's SQLite database, in its data volume (its configuration's storage.local.path).
AUTHELIA_DB = "db.sqlite3"

# The deploy's own bookkeeping under base_dir.
STATE_DIR = ".state"  # the config digest each container last started with
UPLOAD_DIR = ".upload"  # private staging for uploads that go through sudo
MANIFEST = ".mcpgate-manifest"  # the files the deploy placed there
BUILD_DIR = "build"  # backends built on the host: build/<backend>
BACKENDS_DIR = "backends"  # backends' secrets: backends/<backend>/...
# The script that (re)applies the egress firewall (mcpgate.egress); run by the deploy and at boot.
EGRESS_FIREWALL_SCRIPT = "firewall/egress.sh"
# Backups (restic): under base_dir/backup, root's alone: the scripts, the repository's password and
# its location (with the S3 keys, if any).
BACKUP_DIR = "backup"
BACKUP_SCRIPT = f"{BACKUP_DIR}/backup.sh"
RESTORE_SCRIPT = f"{BACKUP_DIR}/restore.sh"
BACKUP_PASSWORD = f"{BACKUP_DIR}/restic-password"
BACKUP_ENV = f"{BACKUP_DIR}/restic.env"
# In every snapshot: what each backed-up folder was (its kind, name and path on the old host), so a
# restore finds it again on a host whose Docker keeps its volumes elsewhere.
BACKUP_MANIFEST = "manifest"
BACKUP_AUTHELIA_DB = "authelia-db.sqlite3"  # the consistent copy of Authelia's database, in staging


def agentgateway_port(role: str) -> int:
    """agentgateway's own port for ``role`` (admin, metrics, readiness)."""
    return next(port for port, r in AGENTGATEWAY_INTERNAL_PORTS.items() if r == role)


def backend_service(backend: str) -> str:
    """The service name of a container backend (its container is ``<stack>-backend-<name>``)."""
    return f"backend-{backend}"


def backend_of(service: str) -> str | None:
    """The backend a service name belongs to (``backend-notes`` -> ``notes``), or None."""
    prefix = backend_service("")
    return service.removeprefix(prefix) if service.startswith(prefix) else None


def backend_build_dir(backend: str) -> str:
    return f"{BUILD_DIR}/{backend}"


def backend_secret_file(backend: str, secret: str) -> str:
    """Where a backend's file secret is kept on the host; bind-mounted read-only."""
    return f"{BACKENDS_DIR}/{backend}/files/{secret}"


def backend_env_file(backend: str) -> str:
    """The host file ``docker create --env-file`` reads a backend's env secrets from."""
    return f"{BACKENDS_DIR}/{backend}/secrets.env"


def token_path(name: str) -> str:
    """Where agentgateway reads a backend token (inside its container)."""
    return AGENTGATEWAY.container_file("secrets", name)


# Names on the Docker engine: every one starts with the stack's name (Stack.name), so two stacks
# share an engine without touching each other's containers, volumes or networks.


def container_name(stack: str, service: str) -> str:
    """``<stack>-redis``, ``<stack>-backend-notes``..."""
    return f"{stack}-{service}"


def volume_name(stack: str, service: str) -> str:
    return f"{stack}-{service}-data"


@dataclass(frozen=True)
class StackNetwork:
    """One of the stack's own networks: ``<stack>-<role>``."""

    role: str
    internal: bool  # no route out, and no address on the host
    members: str  # who joins it, and why


# In the order they are created. The edge network's subnet is the first slot of the stack's pool,
# so its gateway (the address every connection through the published port comes from) is known in
# advance.
STACK_NETWORKS = {
    n.role: n
    for n in (
        StackNetwork("edge", False, "the ingress' published port, and the gateway's way to remote (URL) backends"),
        StackNetwork("sessions", True, "Redis and Authelia only"),
        StackNetwork("auth", True, "Authelia and the ingress; not the gateway, which reads the JWKS from a file"),
        StackNetwork("gateway", True, "the ingress and agentgateway only"),
    )
}


def stack_network(stack: str, role: str) -> str:
    if role not in STACK_NETWORKS:
        raise KeyError(f"no stack network {role!r}")
    return f"{stack}-{role}"


def backend_network(stack: str, backend: str) -> str:
    """One per container backend, shared only with agentgateway: a backend reaches no other backend,
    nor Redis or Authelia."""
    return f"{stack}-to-{backend}"


def egress_network(stack: str, backend: str) -> str:
    """A backend's own way out (``egress: true``), shared with no other container."""
    return f"{stack}-egress-{backend}"


def egress_bridge(stack: str, backend: str) -> str:
    """The host interface of a backend's egress network, named by the deploy (Docker would call it
    br-<network id>, known only once the network exists): the firewall's rules name it in advance,
    so they can be in place at boot before Docker starts the backend. At most 15 characters."""
    return "mcpeg-" + hashlib.sha256(egress_network(stack, backend).encode()).hexdigest()[:9]


# The host's firewall chains of a stack's egress rules (iptables, filter table), by the built-in
# chain they are jumped to from: forwarded traffic (Docker's DOCKER-USER), to the host, from the host.
FIREWALL_ROLES = {"fwd": "DOCKER-USER", "in": "INPUT", "out": "OUTPUT"}
_CHAIN_MAX = 28  # iptables' limit on a chain name


def firewall_chain(stack: str, role: str) -> str:
    """``<stack>-egress-<role>``, or ``mcpgate-<hash>-<role>`` for a stack name too long for iptables."""
    if role not in FIREWALL_ROLES:
        raise KeyError(f"no firewall chain {role!r}")
    name = f"{stack}-egress-{role}"
    return name if len(name) <= _CHAIN_MAX else f"mcpgate-{hashlib.sha256(stack.encode()).hexdigest()[:8]}-{role}"


def firewall_unit(stack: str) -> str:
    """The systemd unit that restores the stack's egress firewall at boot, before Docker starts."""
    return f"{stack}-egress-firewall.service"


# Every network of a stack is carved out of its pool (Stack.network_pool) in slots of this size, so
# many backends do not exhaust Docker's default address pools (about 30 networks).
NETWORK_SLOT_PREFIX = 28


def network_slots(pool: str) -> list[ipaddress.IPv4Network]:
    return list(ipaddress.IPv4Network(pool).subnets(new_prefix=NETWORK_SLOT_PREFIX))


# Backups on the host, outside base_dir (which the deploy keeps to exactly what it renders).


def backup_unit(stack: str, kind: str) -> str:
    """``<stack>-backup.service`` (one backup, Type=oneshot) and ``<stack>-backup.timer``."""
    if kind not in ("service", "timer"):
        raise KeyError(kind)
    return f"{stack}-backup.{kind}"


SYSTEMD_UNIT_DIR = "/etc/systemd/system"


def backup_unit_paths(stack: str) -> tuple[str, str]:
    """Where the backup's service and timer units live on the host."""
    return f"{SYSTEMD_UNIT_DIR}/{backup_unit(stack, 'service')}", f"{SYSTEMD_UNIT_DIR}/{backup_unit(stack, 'timer')}"


def journald_conf(stack: str) -> str:
    """The stack's drop-in for the host's journald (audit.logs "journald"): how long and how much
    of the journal is kept."""
    return f"/etc/systemd/journald.conf.d/{stack}.conf"


def backup_work_dir(stack: str) -> str:
    """Root's folder for a backup's staging (Authelia's database copy, the manifest) and a restore's files."""
    return f"/var/lib/{stack}-backup"


def backup_cache_dir(stack: str) -> str:
    """restic's cache (a service run as root has no home to keep it in)."""
    return f"/var/cache/{stack}-restic"


def backup_tag(stack: str) -> str:
    """The tag on every snapshot of the stack; with the inventory host as restic's --host, it says
    whose snapshot it is."""
    return f"mcpgate:{stack}"
