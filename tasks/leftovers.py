"""After the services: what the inventory no longer declares goes, its containers first, then the
networks left unused (data volumes and host folders are kept unless purged)."""

from pyinfra.api import deploy

from mcpgate.hostops.context import DeployContext
from mcpgate.hostops.engine import prune_containers, prune_networks
from mcpgate.model.network_plan import stack_networks


@deploy("Containers and networks no longer declared")
def stack_leftovers(ctx: DeployContext, every_service_ran: bool, purge: tuple[str, ...] = ()) -> None:
    """Data volumes and host folders are kept (and said so); a backend named in ``purge`` loses its volumes."""
    wanted = [spec.name for spec in ctx.containers]
    prune_containers(
        name="containers the inventory no longer declares", containers=wanted, stack=ctx.stack.name, purge=purge
    )
    prune_networks(
        name="networks the stack no longer uses",
        networks=stack_networks(ctx.stack),
        containers=wanted,
        every_service_ran=every_service_ran,
        stack=ctx.stack.name,
    )
