"""The MCP backends the stack runs itself: started first, since they need nothing of the rest, so that
their start overlaps Redis' and Authelia's; waited for after those."""

from pyinfra.api import deploy

from mcpgate.hostops.context import DeployContext
from mcpgate.layout import backend_service
from tasks._service import start, wait


def _backend_services(ctx: DeployContext) -> list[str]:
    return [backend_service(b.name) for b in ctx.stack.enabled_backends if b.kind != "url"]


@deploy("MCP backends")
def backends(ctx: DeployContext) -> None:
    for service in _backend_services(ctx):
        start(ctx, service)


@deploy("MCP backends ready")
def backends_ready(ctx: DeployContext) -> None:
    for service in _backend_services(ctx):
        wait(ctx, service)
