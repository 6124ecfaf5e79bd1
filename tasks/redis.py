"""Redis: Authelia's session store."""

from pyinfra.api import deploy

from mcpgate.hostops.context import DeployContext
from tasks._service import start_and_wait


@deploy("Redis")
def redis(ctx: DeployContext) -> None:
    start_and_wait(ctx, "redis")
