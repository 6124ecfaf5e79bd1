"""Build the whole mcpgate stack on every host of the inventory.

    pyinfra -y inventory/home.py deploy.py

Order: where the containers log (the host's journal, kept as the inventory's audit block says), the
Docker engine, every config and secret, networks/volumes, then the MCP backends
(started, not yet waited for), Redis, Authelia (healthy, users' TOTP and subjects seeded), the
backends ready, the ingress, agentgateway (probed from the ingress), the containers and networks
the inventory no longer declares (data volumes are kept), and last Tailscale Funnel, so the public
URL only ever points at a ready stack.

To run only some services (configs are always brought up to date):
    pyinfra -y inventory/home.py deploy.py --data mcpgate_components=redis,authelia

To remove the data volumes of a backend taken out of the inventory (host folders are never removed):
    pyinfra -y inventory/home.py deploy.py --data mcpgate_purge=scratch

To restore a new host from the inventory's backup repository (see the README's "Backups and restore"):
    pyinfra -y inventory/home.py deploy.py --data mcpgate_restore=latest
"""

from pyinfra import host

from mcpgate.hostops.context import (
    COMPONENTS,
    components_for,
    context_for,
    purge_for,
    restore_for,
    snapshot_query,
)
from mcpgate.hostops.deploy_file import name_deploy_file
from mcpgate.hostops.snapshot import register
from tasks.agentgateway import agentgateway
from tasks.authelia import authelia
from tasks.backends import backends, backends_ready
from tasks.backup import backup_schedule, backup_tools, restore_first_check, restore_stack_data
from tasks.container_logs import container_logs
from tasks.docker_engine import docker_engine
from tasks.ingress import ingress
from tasks.leftovers import stack_leftovers
from tasks.prerequisites import stack_prerequisites
from tasks.redis import redis
from tasks.stack_files import stack_files
from tasks.tailscale import tailscale

# pyinfra orders operations from the call stack; this file named as a module keeps that cheap.
name_deploy_file(__file__)

# Validate the inventory and render everything before any operation touches the host; every task
# is handed this one context.
ctx = context_for(host)
components = components_for(host)
purge = purge_for(host, ctx.stack)
# A restore onto a host that runs the stack, or holds its data, is refused here (unless overwrite).
restore = restore_for(host, ctx)
# The operations below read the host from one snapshot, gathered again only after a change.
register(snapshot_query(ctx))

# First: a host without the journal the inventory logs to is refused before anything is made.
container_logs(ctx)
backup_tools(ctx)
if restore:
    # First: a repository that is not this store's and this host's stops the deploy before it makes anything.
    restore_first_check(ctx, restore)
if "docker" in components:
    docker_engine(ctx)
stack_files(ctx)
stack_prerequisites(ctx)
if restore:
    # Into the volumes and folders just made, before any container that uses them starts.
    restore_stack_data(ctx, restore)
# The backends need nothing of the rest: they start first and are waited for after Authelia.
for name, task in (
    ("backends", backends),
    ("redis", redis),
    ("authelia", authelia),
    ("backends", backends_ready),
    ("ingress", ingress),
    ("agentgateway", agentgateway),
):
    if name in components:
        task(ctx)
stack_leftovers(ctx, every_service_ran=components == COMPONENTS, purge=purge)
backup_schedule(ctx)
if ctx.stack.tailscale.enabled and "tailscale" in components:
    tailscale(ctx)
