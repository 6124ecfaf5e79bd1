"""What every service's task does: its image present, its container as specified, then waited for."""

from mcpgate.hostops.context import DeployContext
from mcpgate.hostops.engine import docker_container, docker_image, wait_healthy

# How long a service may take to become ready after a (re)start.
READY_TIMEOUT = {"redis": 60, "authelia": 180, "agentgateway": 120, "ingress": 60}


def start(ctx: DeployContext, service: str) -> None:
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


def wait(ctx: DeployContext, service: str) -> None:
    """Until the service is ready: healthy, or running and its probe answers (``ctx.ready_probe``)."""
    spec = ctx.container(service)
    wait_healthy(
        name=f"{spec.name} ready",
        container=spec.name,
        timeout=READY_TIMEOUT.get(service, 90),
        probe=ctx.ready_probe(service),
        own_check=ctx.own_check(service),
    )


def start_and_wait(ctx: DeployContext, service: str) -> None:
    start(ctx, service)
    wait(ctx, service)
