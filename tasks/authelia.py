"""Authelia: the OIDC provider, healthy, with every user's TOTP seed and OIDC subject in its database."""

from pyinfra.api import deploy

from mcpgate.hostops.authelia_cli import authelia_identity
from mcpgate.hostops.context import DeployContext
from mcpgate.identity import subjects
from mcpgate.layout import AUTHELIA, AUTHELIA_TOTP
from tasks._service import start_and_wait


@deploy("Authelia")
def authelia(ctx: DeployContext) -> None:
    start_and_wait(ctx, "authelia")
    spec = ctx.container("authelia")
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
