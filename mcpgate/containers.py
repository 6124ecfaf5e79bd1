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
from dataclasses import asdict, dataclass, field

from .model import AGENTGATEWAY_INTERNAL_PORTS, Backend, Stack
from .render import (
    AUTHELIA_SECRET_ENV,
    INGRESS_HEALTH_PORT,
    INGRESS_LISTEN_PORT,
    MOUNTS,
    Rendered,
    service_paths,
)

LABEL_SPEC = "org.mcpgate.spec"
LABEL_SERVICE = "org.mcpgate.service"
# The stack (Stack.name) a container, network or volume belongs to: what the deploy and the
# checks filter on, so another stack on the same engine is never seen or touched.
LABEL_STACK = "org.mcpgate.stack"
# agentgateway's readiness endpoint, which it serves on all its addresses
GATEWAY_READINESS_PORT = next(p for p, role in AGENTGATEWAY_INTERNAL_PORTS.items() if role == "readiness")


def container_name(stack: Stack, service: str) -> str:
    """``<stack>-redis``, ``<stack>-backend-notes``..."""
    return f"{stack.name}-{service}"


def volume_name(stack: Stack, service: str) -> str:
    return f"{stack.name}-{service}-data"


def internal_network(stack: Stack) -> str:
    """No route out: Redis, Authelia, container backends."""
    return f"{stack.name}-internal"


def edge_network(stack: Stack) -> str:
    """The ingress' published port, the gateway's way to remote backends."""
    return f"{stack.name}-edge"


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
    start_interval: str = "1s"


@dataclass(frozen=True)
class ContainerSpec:
    service: str  # redis, authelia, agentgateway, ingress, backend-<name>
    name: str
    stack: str  # Stack.name
    image: str
    user: str | None
    networks: list[str]
    command: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
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

    @property
    def spec_hash(self) -> str:
        data = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(data.encode()).hexdigest()[:32]

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
            "--log-opt", "max-size=10m",
            "--log-opt", "max-file=3",
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
                # the image's folder (and its owner) into an empty volume on first mount.
                opt += ",volume-nocopy"
            args += ["--mount", f"type={m.kind},source={m.source},target={m.target}{opt}"]
        for key, value in sorted(self.env.items()):
            args += ["--env", f"{key}={value}"]
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


def _bind(stack: Stack, service: str, role: str) -> Mount:
    return Mount("bind", posixpath.join(stack.base_dir, service_paths(service)[role]), MOUNTS[service][role])


def redis_spec(stack: Stack) -> ContainerSpec:
    return ContainerSpec(
        service="redis",
        name=container_name(stack, "redis"),
        stack=stack.name,
        image=stack.images.redis,
        user=stack.uids.redis,
        # Run redis-server directly: the official entrypoint would try to chown and drop privileges.
        entrypoint=["redis-server"],
        command=[f"{MOUNTS['redis']['config']}/redis.conf"],
        mounts=[
            _bind(stack, "redis", "config"),
            Mount("volume", volume_name(stack, "redis"), "/data", read_only=False),
        ],
        networks=[internal_network(stack)],
        aliases=["redis"],
        # Healthy only while a password is required: an unauthenticated PING must be refused.
        healthcheck=Healthcheck(["CMD-SHELL", "redis-cli -h 127.0.0.1 ping 2>&1 | grep -q NOAUTH"]),
        owned_volumes={volume_name(stack, "redis"): stack.uids.redis},
    )


def authelia_spec(stack: Stack) -> ContainerSpec:
    secrets_dir = MOUNTS["authelia"]["secrets"]
    env = {var: f"{secrets_dir}/{name}" for name, var in AUTHELIA_SECRET_ENV.items()}
    env["X_AUTHELIA_CONFIG_FILTERS"] = "template"
    return ContainerSpec(
        service="authelia",
        name=container_name(stack, "authelia"),
        stack=stack.name,
        image=stack.images.authelia,
        user=stack.uids.authelia,
        entrypoint=["/app/authelia"],
        command=["--config", f"{MOUNTS['authelia']['config']}/configuration.yml"],
        env=env,
        mounts=[
            _bind(stack, "authelia", "config"),
            _bind(stack, "authelia", "secrets"),
            _bind(stack, "authelia", "identity"),
            Mount("volume", volume_name(stack, "authelia"), "/data", read_only=False),
        ],
        networks=[internal_network(stack)],
        aliases=["authelia"],
        memory="512m",
        healthcheck=Healthcheck(_http_probe(f"http://127.0.0.1:{stack.authelia_port}/auth/api/health")),
        owned_volumes={volume_name(stack, "authelia"): stack.uids.authelia},
    )


def agentgateway_spec(stack: Stack) -> ContainerSpec:
    remote = any(b.kind == "url" for b in stack.enabled_backends)
    return ContainerSpec(
        service="agentgateway",
        name=container_name(stack, "agentgateway"),
        stack=stack.name,
        image=stack.images.agentgateway,
        user=stack.uids.agentgateway,
        command=["-f", f"{MOUNTS['agentgateway']['config']}/config.yaml"],
        mounts=[_bind(stack, "agentgateway", "config"), _bind(stack, "agentgateway", "secrets")],
        # Remote backends (Home Assistant) are reached through the edge network.
        networks=[internal_network(stack), edge_network(stack)] if remote else [internal_network(stack)],
        aliases=["agentgateway"],
        memory="512m",
        healthcheck=None,  # the image has no shell or HTTP client; readiness is probed from outside
    )


def ingress_spec(stack: Stack) -> ContainerSpec:
    return ContainerSpec(
        service="ingress",
        name=container_name(stack, "ingress"),
        stack=stack.name,
        image=stack.images.ingress,
        user=stack.uids.ingress,
        command=["caddy", "run", "--config", f"{MOUNTS['ingress']['config']}/Caddyfile", "--adapter", "caddyfile"],
        entrypoint=[],
        env={"HOME": "/tmp", "XDG_CONFIG_HOME": "/tmp/config", "XDG_DATA_HOME": "/tmp/data"},
        mounts=[_bind(stack, "ingress", "config")],
        # Published only on loopback: Tailscale Funnel (or a local client) is the only way in.
        networks=[edge_network(stack), internal_network(stack)],
        # The official image's /usr/bin/caddy carries the file capability cap_net_bind_service=+ep:
        # the kernel refuses to exec it unless that capability is in the bounding set. Under
        # no-new-privileges and a non-root uid it is still never effective.
        cap_add=["NET_BIND_SERVICE"],
        ports=[f"127.0.0.1:{stack.ingress_port}:{INGRESS_LISTEN_PORT}"],
        healthcheck=Healthcheck(_http_probe(f"http://127.0.0.1:{INGRESS_HEALTH_PORT}/healthz")),
    )


def backend_spec(stack: Stack, backend: Backend, rendered: Rendered) -> ContainerSpec:
    if backend.kind == "build":
        image = next(b.image for b in rendered.builds if b.backend == backend.name)
    else:
        assert backend.image is not None
        image = backend.image
    mounts = [Mount("bind" if v.is_host_path else "volume", v.source, v.target, v.read_only) for v in backend.volumes]
    return ContainerSpec(
        service=f"backend-{backend.name}",
        name=container_name(stack, f"backend-{backend.name}"),
        stack=stack.name,
        networks=[internal_network(stack)],
        image=image,
        user=backend.user,
        env=dict(backend.env),
        mounts=mounts,
        aliases=[backend.name],
        read_only=backend.read_only_rootfs,
        memory=backend.limits.memory,
        cpus=backend.limits.cpus,
        pids=backend.limits.pids,
        healthcheck=None,
    )


def stack_containers(stack: Stack, rendered: Rendered) -> list[ContainerSpec]:
    """Every container, in start order: Redis, Authelia, backends, agentgateway, the ingress."""
    backends = [backend_spec(stack, b, rendered) for b in stack.enabled_backends if b.kind != "url"]
    return [redis_spec(stack), authelia_spec(stack), *backends, agentgateway_spec(stack), ingress_spec(stack)]
