"""The stack's containers, in dependency order, each waited for before the next one needs it."""

from pyinfra import host
from pyinfra.api import deploy

from mcpgate.container_specs import GATEWAY_READINESS_PORT, stack_networks
from mcpgate.deploy import context_for
from mcpgate.hostops import (
    SUBJECTS_MARKER,
    TOTP_MARKER,
    authelia_identity,
    data_directory,
    docker_container,
    docker_image,
    docker_networks,
    docker_volume,
    prune_containers,
    prune_networks,
    wait_healthy,
)
from mcpgate.identity import subjects
from mcpgate.layout import AUTHELIA, AUTHELIA_TOTP
from mcpgate.snapshot import SnapshotQuery

# How long a service may take to become ready after a (re)start.
READY_TIMEOUT = {"redis": 60, "authelia": 180, "agentgateway": 120, "ingress": 60}


def snapshot_query(ctx) -> SnapshotQuery:
    """Everything the stack's operations will read from the host, for one snapshot (mcpgate.snapshot)."""
    authelia_volumes = [v for c in ctx.containers if c.service == "authelia" for v in c.owned_volumes]
    return SnapshotQuery(
        base_dir=ctx.stack.base_dir,
        stack=ctx.stack.name,
        networks=tuple(sorted(n.name for n in stack_networks(ctx.stack))),
        volumes=tuple(v for c in ctx.containers for v in c.owned_volumes),
        images=tuple(sorted({c.image for c in ctx.containers})),
        markers=tuple((v, m) for v in authelia_volumes[:1] for m in (TOTP_MARKER, SUBJECTS_MARKER)),
        paths=tuple(v.source for b in ctx.stack.enabled_backends for v in b.volumes if v.is_host_path),
        probes=tuple((c.name, _gateway_probe(ctx)) for c in ctx.containers if c.service == "agentgateway"),
    )


@deploy("Networks, volumes and data folders")
def stack_prerequisites() -> None:
    ctx = context_for(host)
    networks = stack_networks(ctx.stack)
    docker_networks(
        name=f"networks {', '.join(n.name for n in networks)}",
        networks=networks,
        pool=ctx.stack.network_pool,
        stack=ctx.stack.name,
    )
    for spec in ctx.containers:
        for volume, owner in spec.owned_volumes.items():
            docker_volume(name=f"volume {volume}", volume=volume, owner=owner, stack=ctx.stack.name)
    for backend in ctx.stack.enabled_backends:
        for v in backend.volumes:
            if v.is_host_path:
                data_directory(name=f"{backend.name}: {v.source}", path=v.source, owner=backend.user)


def _gateway_probe(ctx) -> str:
    """agentgateway's image has no shell or HTTP client: ask for its readiness endpoint from the
    ingress, the one container that shares a network with it (and ships wget)."""
    return (
        f"docker exec {ctx.container('ingress').name} wget -q -O /dev/null "
        f"http://agentgateway:{GATEWAY_READINESS_PORT}/healthz/ready"
    )


def _start(ctx, service: str) -> None:
    """The service's image present and its container as specified (started, or restarted on a change)."""
    spec = ctx.container(service)
    build = ctx.rendered.build_of(spec.image)
    if build is None:
        docker_image(name=f"image {spec.image}", ref=spec.image)
    else:
        docker_image(
            name=f"build {spec.image}",
            ref=spec.image,
            build_dir=f"{ctx.stack.base_dir}/{build.dir}",
            build_args={"BASE_IMAGE": build.base_image} if build.base_image else {},
        )
    digest = ctx.rendered.config_digest(service)
    docker_container(name=f"container {spec.name}", spec=spec, base_dir=ctx.stack.base_dir, config_digest=digest)


def _wait(ctx, service: str, probe: str | None = None) -> None:
    spec = ctx.container(service)
    wait_healthy(
        name=f"{spec.name} ready",
        container=spec.name,
        timeout=READY_TIMEOUT.get(service, 90),
        probe=probe,
    )


def _run(ctx, service: str, probe: str | None = None) -> None:
    _start(ctx, service)
    _wait(ctx, service, probe)


@deploy("Redis")
def redis() -> None:
    _run(context_for(host), "redis")


@deploy("Authelia")
def authelia() -> None:
    ctx = context_for(host)
    _run(ctx, "authelia")
    spec = ctx.container("authelia")
    authelia_identity(
        name="users' TOTP seeds and OIDC subjects",
        container=spec.name,
        volume=next(iter(spec.owned_volumes)),
        owner=ctx.stack.uids.authelia,
        config=AUTHELIA.config_file,
        totp_file=AUTHELIA.container_file("identity", AUTHELIA_TOTP),
        totp_digest=ctx.rendered.authelia_totp.sha256,
        subjects=subjects(ctx.stack, ctx.secrets),
    )


def _backend_services(ctx) -> list[str]:
    return [spec.service for spec in ctx.containers if spec.service.startswith("backend-")]


@deploy("MCP backends")
def backends() -> None:
    """Started first: they need nothing of the rest, so their start overlaps Redis' and Authelia's."""
    ctx = context_for(host)
    for service in _backend_services(ctx):
        _start(ctx, service)


@deploy("MCP backends ready")
def backends_ready() -> None:
    ctx = context_for(host)
    for service in _backend_services(ctx):
        _wait(ctx, service)


@deploy("agentgateway")
def agentgateway() -> None:
    ctx = context_for(host)
    _run(ctx, "agentgateway", probe=_gateway_probe(ctx))


@deploy("Ingress")
def ingress() -> None:
    _run(context_for(host), "ingress")


@deploy("Containers and networks no longer declared")
def stack_leftovers(every_service_ran: bool) -> None:
    ctx = context_for(host)
    wanted = [spec.name for spec in ctx.containers]
    prune_containers(name="containers the inventory no longer declares", containers=wanted, stack=ctx.stack.name)
    prune_networks(
        name="networks the stack no longer uses",
        networks=stack_networks(ctx.stack),
        containers=wanted,
        every_service_ran=every_service_ran,
        stack=ctx.stack.name,
    )
