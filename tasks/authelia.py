"""Authelia: its users database holding the inventory's people; the OIDC provider, healthy, with every
user's TOTP seed and OIDC subject in its database."""

from pyinfra.api import deploy

from mcpgate.hostops.authelia_cli import authelia_identity, authelia_users
from mcpgate.hostops.context import DeployContext
from mcpgate.identity import subjects
from mcpgate.layout import AUTHELIA, AUTHELIA_TOTP
from tasks._service import start_and_wait


@deploy("Authelia")
def authelia(ctx: DeployContext) -> None:
    spec = ctx.container("authelia")
    # Before Authelia starts: a new host's Authelia finds its users at its first start.
    authelia_users(
        name="Authelia's users",
        volume=next(iter(spec.owned_volumes)),
        owner=ctx.stack.uids.authelia,
        base_dir=ctx.stack.base_dir,
        users=ctx.rendered.authelia_users,
    )
    start_and_wait(ctx, "authelia")
    authelia_identity(
        name="users' TOTP seeds and OIDC subjects",
        container=spec.name,
        volume=next(iter(spec.owned_volumes)),
        owner=ctx.stack.uids.authelia,
        config=AUTHELIA.config_file,
        totp_file=AUTHELIA.container_file("identity", AUTHELIA_TOTP),
        totp_digest=ctx.rendered.authelia_totp.sha256,
        subjects=subjects(ctx.stack, ctx.secrets),
    )
