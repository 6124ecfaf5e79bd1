"""Tailscale: the node joins the tailnet once, and Funnel serves https://<node>/ to the ingress."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, files, server

from mcpgate.hostops.context import DeployContext, release_for
from mcpgate.hostops.tailnet import tailscale_funnel, tailscale_up
from mcpgate.tailscale_node import TAILSCALE_KEYRING, tailscale_base, tailscale_source


@deploy("Tailscale and Funnel")
def tailscale(ctx: DeployContext) -> None:
    ts = ctx.stack.tailscale
    release = release_for(host)
    if ts.apt_source is None:
        files.download(
            name="Tailscale's apt signing key",
            src=f"{tailscale_base(release)}.noarmor.gpg",
            dest=TAILSCALE_KEYRING,
            mode="0644",
        )
    source = apt.repo(
        name="Tailscale's apt repository" if ts.apt_source is None else "tailscale's apt source (tailscale.apt_source)",
        src=ts.apt_source or tailscale_source(release),
        filename="tailscale",
    )
    # A source just added has no package list yet, and the install's cache_time skips the update
    # when the Docker install updated apt minutes ago: apt would not find tailscale.
    apt.update(name="apt lists with tailscale's source", _if=source.did_change)
    apt.packages(name="Install tailscale", packages=["tailscale"], update=True, cache_time=3600)
    server.service(name="tailscaled enabled and running", service="tailscaled", running=True, enabled=True)
    # A damaged key is reported as damaged, in the store's words, when the node needs it to join.
    key, key_problem = ctx.secrets.optional_token(ts.auth_key_secret, ctx.host)
    tailscale_up(
        name="tailscale up (once)",
        auth_key=key,
        key_problem=key_problem,
        login_server=ts.login_server,
        hostname=ctx.stack.hostname,
        base_dir=ctx.stack.base_dir,
    )
    tailscale_funnel(
        name="Funnel 443 -> ingress" if ts.funnel else "mcpgate's Funnel off",
        hostname=ctx.stack.hostname,
        ingress_port=ctx.stack.ingress_port,
        funnel=ts.funnel,
    )
