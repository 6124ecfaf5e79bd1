"""What each container of the stack looks like: pure data derived from the model and the render.

A :class:`ContainerSpec` is everything ``docker run`` is told; its :attr:`~ContainerSpec.spec_hash`
is stored in a label, so the deploy recreates a container exactly when its spec changed. The hash
of the files it mounts (``Rendered.config_digest``) decides a restart.

Example::

    specs = stack_containers(stack, rendered)
    specs[0].run_args()   # ["--name", "mcpgate-redis", "--user", "10379:10379", ...]
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .layout import (
    AGENTGATEWAY,
    AUTH_PREFIX,
    AUTHELIA,
    AUTHELIA_SECRET_ENV,
    INGRESS,
    INGRESS_HEALTH_PORT,
    LABEL_SERVICE,
    LABEL_SPEC,
    LABEL_STACK,
    REDIS,
    ServiceLayout,
    agentgateway_port,
    backend_env_file,
    backend_network,
    backend_secret_file,
    backend_service,
    container_name,
    egress_network,
    stack_network,
    volume_name,
)
from .model import Backend, Stack
from .rendered import Rendered

# agentgateway's readiness endpoint, which it serves on all its addresses
GATEWAY_READINESS_PORT = agentgateway_port("readiness")


def _http_probe(url: str) -> list[str]:
    # caddy:*-alpine has busybox wget, authelia/authelia Ubuntu's wget; neither has curl.
    return ["CMD-SHELL", f"wget -q -O /dev/null {url}"]


@dataclass(frozen=True)
class Mount:
    kind: str  # "bind" or "volume"
    source: str
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class Healthcheck:
    test: list[str]
    interval: str = "10s"
    timeout: str = "5s"
    retries: int = 3
    start_period: str = "10s"
    # Not given to Docker: 20.10 has no start interval (the deploy runs the check itself while Docker
    # says starting, see hostops.docker_facts.ready_check). Kept: it is part of every spec hash.
    start_interval: str = "1s"


@dataclass(frozen=True)
class ContainerSpec:
    service: str  # redis, authelia, agentgateway, ingress, backend-<name>
    name: str
    stack: str  # Stack.name
    # The range its networks' subnets come from: a new pool recreates the networks, and so the containers.
    network_pool: str
    image: str
    user: str | None
    networks: list[str]
    command: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    # A host file of VAR=value lines (secrets): read by ``docker create``, never on a command line.
    env_file: str | None = None
    # sha256 of the secrets handed to the container (its env file and secret files): a changed
    # secret recreates it (an env file is only read at creation).
    secrets_digest: str = ""
    mounts: list[Mount] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=lambda: ["/tmp"])
    aliases: list[str] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)
    read_only: bool = True
    # Capabilities kept in the bounding set (all others are dropped); with no-new-privileges a
    # non-root user still gets none of them as effective capabilities.
    cap_add: list[str] = field(default_factory=list)
    memory: str = "256m"
    cpus: float = 1.0
    pids: int = 256
    healthcheck: Healthcheck | None = None
    # Volumes whose root the service must own: name -> uid:gid.
    owned_volumes: dict[str, str] = field(default_factory=dict)
    # Kernel settings of the container's own network namespace (an egress backend's IPv6 off).
    sysctls: dict[str, str] = field(default_factory=dict)
    # Where Docker sends the container's output (the inventory's audit.logs): "journald" (the
    # host's journal, which keeps it past the container) or Docker's "json-file" (3 x 10 MiB).
    log_driver: str = "json-file"

    @property
    def spec_hash(self) -> str:
        spec = asdict(self)
        # Added after the first release: left out while empty, so the containers that have none
        # keep their hash (and are not recreated by an upgrade).
        if not spec["sysctls"]:
            del spec["sysctls"]
        if spec["log_driver"] == "json-file":
            del spec["log_driver"]
        data = json.dumps(spec, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(data.encode()).hexdigest()[:32]

    def log_args(self) -> list[str]:
        if self.log_driver == "journald":
            # The journal's entries carry CONTAINER_NAME, which mcpgate audit reads them by.
            return ["--log-driver", "journald"]
        return ["--log-opt", "max-size=10m", "--log-opt", "max-file=3"]

    def run_args(self) -> list[str]:
        """Arguments for ``docker create`` (the first network is attached at creation)."""
        args = [
            "--name", self.name,
            "--init",
            "--restart", "unless-stopped",
            "--security-opt", "no-new-privileges:true",
            "--cap-drop", "ALL",
            *(a for cap in self.cap_add for a in ("--cap-add", cap)),
            "--memory", self.memory,
            "--cpus", f"{self.cpus:g}",
            "--pids-limit", str(self.pids),
            "--label", f"{LABEL_SPEC}={self.spec_hash}",
            "--label", f"{LABEL_SERVICE}={self.service}",
            "--label", f"{LABEL_STACK}={self.stack}",
            "--network", self.networks[0],
            *self.log_args(),
        ]  # fmt: skip
        for alias in self.aliases:
            args += ["--network-alias", alias]
        if self.user:
            args += ["--user", self.user]
        if self.read_only:
            args.append("--read-only")
        for path in self.tmpfs:
            args += ["--tmpfs", f"{path}:rw,noexec,nosuid,size=64m"]
        for m in self.mounts:
            opt = ",readonly" if m.read_only else ""
            if m.kind == "volume":
                # Keep the owner and mode the deploy gave the volume: without this, Docker copies
                # the image's folder (and its owner) into an empty volume on first mount. A volume
                # this mount creates is labelled the stack's: only such a one is ever purged.
                opt += f",volume-nocopy,volume-label={LABEL_STACK}={self.stack}"
            args += ["--mount", f"type={m.kind},source={m.source},target={m.target}{opt}"]
        for key, value in sorted(self.sysctls.items()):
            args += ["--sysctl", f"{key}={value}"]
        for key, value in sorted(self.env.items()):
            args += ["--env", f"{key}={value}"]
        if self.env_file:
            args += ["--env-file", self.env_file]
        for port in self.ports:
            args += ["--publish", port]
        if self.healthcheck:
            hc = self.healthcheck
            test = hc.test
            if test[0] == "CMD-SHELL":
                args += ["--health-cmd", test[1]]
            else:
                raise ValueError("healthchecks are given as CMD-SHELL")
            args += [
                "--health-interval", hc.interval,
                "--health-timeout", hc.timeout,
                "--health-retries", str(hc.retries),
                "--health-start-period", hc.start_period,
            ]  # fmt: skip
        if self.entrypoint is not None:
            args += ["--entrypoint", self.entrypoint[0] if self.entrypoint else ""]
        args.append(self.image)
        args += (self.entrypoint[1:] if self.entrypoint else []) + self.command
        return args


def _networks(stack: Stack, *roles: str) -> list[str]:
    return [stack_network(stack.name, role) for role in roles]


def _service_spec(stack: Stack, service: ServiceLayout, aliases: bool = True, **spec: Any) -> ContainerSpec:
    """A stack service's container: named after it, run from the inventory's image as its uid, its
    host folders mounted read-only where the layout says and its data volume (if any) writable."""
    name = service.service
    mounts = [
        Mount("bind", posixpath.join(stack.base_dir, service.host_dir(role)), target)
        for role, target in service.mounts.items()
    ]
    owned: dict[str, str] = {}
    if service.data:
        volume = volume_name(stack.name, name)
        mounts.append(Mount("volume", volume, service.data, read_only=False))
        owned[volume] = getattr(stack.uids, name)
    return ContainerSpec(
        service=name,
        name=container_name(stack.name, name),
        stack=stack.name,
        network_pool=stack.network_pool,
        image=getattr(stack.images, name),
        user=getattr(stack.uids, name),
        mounts=mounts,
        owned_volumes=owned,
        # Reached by its service name on its networks.
        aliases=[name] if aliases else [],
        **spec,
    )


def redis_spec(stack: Stack) -> ContainerSpec:
    return _service_spec(
        stack,
        REDIS,
        # Run redis-server directly: the official entrypoint would try to chown and drop privileges.
        entrypoint=["redis-server"],
        command=[REDIS.config_file],
        networks=_networks(stack, "sessions"),
        # Healthy only while a password is required: an unauthenticated PING must be refused.
        healthcheck=Healthcheck(["CMD-SHELL", "redis-cli -h 127.0.0.1 ping 2>&1 | grep -q NOAUTH"]),
    )


def authelia_spec(stack: Stack) -> ContainerSpec:
    env = {var: AUTHELIA.container_file("secrets", name) for name, var in AUTHELIA_SECRET_ENV.items()}
    env["X_AUTHELIA_CONFIG_FILTERS"] = "template"
    return _service_spec(
        stack,
        AUTHELIA,
        entrypoint=["/app/authelia"],
        command=["--config", AUTHELIA.config_file],
        env=env,
        # Reached as authelia on the ingress' network; reaches redis on the sessions network.
        networks=_networks(stack, "auth", "sessions"),
        memory="512m",
        healthcheck=Healthcheck(_http_probe(f"http://127.0.0.1:{AUTHELIA.port}{AUTH_PREFIX}/api/health")),
    )


def agentgateway_spec(stack: Stack) -> ContainerSpec:
    remote = any(b.kind == "url" for b in stack.enabled_backends)
    backends = [backend_network(stack.name, b.name) for b in stack.enabled_backends if b.kind != "url"]
    return _service_spec(
        stack,
        AGENTGATEWAY,
        command=["-f", AGENTGATEWAY.config_file],
        # Each container backend on its own network; remote ones (Home Assistant) through the edge.
        networks=[
            stack_network(stack.name, "gateway"),
            *backends,
            *([stack_network(stack.name, "edge")] if remote else []),
        ],
        memory="512m",
        healthcheck=None,  # the image has no shell or HTTP client; readiness is probed from outside
    )


def ingress_spec(stack: Stack) -> ContainerSpec:
    return _service_spec(
        stack,
        INGRESS,
        aliases=False,  # nothing connects to the ingress from inside
        command=["caddy", "run", "--config", INGRESS.config_file, "--adapter", "caddyfile"],
        entrypoint=[],
        env={"HOME": "/tmp", "XDG_CONFIG_HOME": "/tmp/config", "XDG_DATA_HOME": "/tmp/data"},
        # Published only on loopback: Tailscale Funnel (or a local client) is the only way in.
        networks=_networks(stack, "edge", "auth", "gateway"),
        # The official image's /usr/bin/caddy carries the file capability cap_net_bind_service=+ep:
        # the kernel refuses to exec it unless that capability is in the bounding set. Under
        # no-new-privileges and a non-root uid it is still never effective.
        cap_add=["NET_BIND_SERVICE"],
        ports=[f"127.0.0.1:{stack.ingress_port}:{INGRESS.port}"],
        healthcheck=Healthcheck(_http_probe(f"http://127.0.0.1:{INGRESS_HEALTH_PORT}/healthz")),
    )


def backend_spec(stack: Stack, backend: Backend, rendered: Rendered) -> ContainerSpec:
    if backend.kind == "build":
        image = next(b.image for b in rendered.builds if b.backend == backend.name)
    else:
        assert backend.image is not None
        image = backend.image
    mounts = [Mount("bind" if v.is_host_path else "volume", v.source, v.target, v.read_only) for v in backend.volumes]
    secret_files = []
    for secret in backend.secrets:
        if secret.file:
            secret_files.append(backend_secret_file(backend.name, secret.name))
            mounts.append(Mount("bind", posixpath.join(stack.base_dir, secret_files[-1]), secret.file))
    env_file = backend_env_file(backend.name) if any(s.env for s in backend.secrets) else None
    digest = hashlib.sha256()
    for path in [*secret_files, *([env_file] if env_file else [])]:
        digest.update(f"{path}\0{rendered.file(path).sha256}\0".encode())
    return ContainerSpec(
        service=backend_service(backend.name),
        name=container_name(stack.name, backend_service(backend.name)),
        stack=stack.name,
        network_pool=stack.network_pool,
        networks=[backend_network(stack.name, backend.name)]
        + ([egress_network(stack.name, backend.name)] if backend.egress else []),
        image=image,
        user=backend.user,
        command=list(backend.command or []),
        env=dict(backend.env),
        env_file=posixpath.join(stack.base_dir, env_file) if env_file else None,
        secrets_digest=digest.hexdigest() if backend.secrets else "",
        mounts=mounts,
        aliases=[backend.name],
        read_only=backend.read_only_rootfs,
        memory=backend.limits.memory,
        cpus=backend.limits.cpus,
        pids=backend.limits.pids,
        healthcheck=None,
        # The stack's networks have no IPv6; without it off, an egress backend would still have a
        # link-local address on its bridge, and so a way to the host's own that no IPv4 rule sees.
        sysctls=dict.fromkeys(("net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"), "1")
        if backend.egress
        else {},
    )


def stack_containers(stack: Stack, rendered: Rendered) -> list[ContainerSpec]:
    """Every container: Redis, Authelia, backends, the ingress, agentgateway (whose
    readiness is probed from the ingress, the only container that shares a network with it and has wget)."""
    backends = [backend_spec(stack, b, rendered) for b in stack.enabled_backends if b.kind != "url"]
    specs = [redis_spec(stack), authelia_spec(stack), *backends, ingress_spec(stack), agentgateway_spec(stack)]
    driver = "journald" if stack.audit.logs == "journald" else "json-file"
    return [replace(spec, log_driver=driver) for spec in specs]
