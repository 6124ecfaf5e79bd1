"""agentgateway: the MCP gateway, ready when the ingress gets an answer from its readiness endpoint."""

from pyinfra.api import deploy

from mcpgate.hostops.context import DeployContext
from tasks._service import start_and_wait


@deploy("agentgateway")
def agentgateway(ctx: DeployContext) -> None:
    start_and_wait(ctx, "agentgateway")
