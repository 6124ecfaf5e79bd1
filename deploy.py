"""Build the whole mcpgate stack on every host of the inventory.

    pyinfra -y inventory/home.py deploy.py

Order: the Docker engine, every config and secret, networks/volumes/images, then Redis, Authelia
(healthy, users' TOTP and subjects seeded), the MCP backends, agentgateway, the ingress, and last
Tailscale Funnel, so the public URL only ever points at a ready stack.
"""

from pyinfra import host

from mcpgate.deploy import context_for
from tasks.containers import agentgateway, authelia, backends, ingress, redis, stack_prerequisites
from tasks.docker_engine import docker_engine
from tasks.stack_files import stack_files
from tasks.tailscale import tailscale

# Validate the inventory and render everything before any operation touches the host.
ctx = context_for(host)

docker_engine()
stack_files()
stack_prerequisites()
redis()
authelia()
backends()
agentgateway()
ingress()
if ctx.stack.tailscale.enabled:
    tailscale()
