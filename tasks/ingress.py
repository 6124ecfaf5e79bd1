"""The ingress: the one published port, in front of Authelia and agentgateway."""

from pyinfra.api import deploy

from mcpgate.hostops.context import DeployContext
from tasks._service import start_and_wait


@deploy("Ingress")
def ingress(ctx: DeployContext) -> None:
    start_and_wait(ctx, "ingress")
