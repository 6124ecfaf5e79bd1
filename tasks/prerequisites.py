"""What the services stand on, made before them: the egress firewall, the stack's networks, its data
volumes and the backends' host folders."""

from pyinfra.api import deploy

from mcpgate.egress import egress_firewall as egress_rules
from mcpgate.hostops.context import DeployContext
from mcpgate.hostops.engine import docker_networks, docker_volume
from mcpgate.hostops.filesync import data_directory
from mcpgate.hostops.firewall import egress_firewall
from mcpgate.model.network_plan import stack_networks


@deploy("Networks, volumes and data folders")
def stack_prerequisites(ctx: DeployContext) -> None:
    # First: an egress backend never runs, not even once, without the rules that keep it to the internet.
    egress_firewall(name="egress firewall", stack=ctx.stack.name, wanted=egress_rules(ctx.stack))
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
