"""The stack's own settings blocks: images, Docker, Tailscale, service uids, session, rate limits."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .addresses import AptSource, LoginServer
from .durations import Duration
from .fields import SecretName, ServiceUidGid, split_uid
from .image_refs import AUTHELIA_VERSION, AutheliaImage, PinnedImage
from .strict import Strict, raise_all


def settings_example(field: str, value: Any) -> str:
    """The dict a settings block should be, for someone who wrote a plain value."""
    if field == "tailscale" and isinstance(value, bool):
        return f'{{"enabled": {value}}}'
    if field == "docker" and isinstance(value, str):
        return f'{{"install": "{value}"}}'
    return {
        "tailscale": '{"enabled": False}',
        "docker": '{"install": "existing"}',
        "images": '{"redis": "redis:7.4.2-alpine"}',
        "uids": '{"redis": "10379:10379"}',
        "session": '{"remember_me": "1 day"}',
        "limits": '{"memory": "256m", "cpus": 0.5, "pids": 128}',
    }[field]


class Images(Strict):
    """Pinned images for the stack's own services."""

    redis: PinnedImage = "redis:7.4.2-alpine"
    authelia: AutheliaImage = f"authelia/authelia:{AUTHELIA_VERSION}"
    agentgateway: PinnedImage = "cr.agentgateway.dev/agentgateway:v1.4.1"
    ingress: PinnedImage = "caddy:2.8.4-alpine"


class Docker(Strict):
    """Where the Docker engine comes from."""

    # docker-ce: Docker's apt repository; debian: the distribution's docker.io;
    # existing: a working engine is already there and is left alone.
    install: Literal["docker-ce", "debian", "existing"] = "docker-ce"


class Tailscale(Strict):
    """Tailscale node and Funnel. Off for the local demo and CI."""

    enabled: bool = True
    auth_key_secret: SecretName = "tailscale-auth-key"
    # False after True turns mcpgate's Funnel off (removes its mount / of https://<hostname>:443).
    funnel: bool = True
    # The control server the node joins (tailscale up --login-server): None is Tailscale's; e.g. a
    # headscale's URL. A control server without Funnel (headscale) needs funnel = False.
    login_server: LoginServer | None = None
    # Where the tailscale package comes from: None is Tailscale's own apt repository (signed with
    # their key, downloaded by the deploy); otherwise one apt source line, e.g. a mirror or a local
    # repository, which carries its own trust (signed-by=... or trusted=yes).
    apt_source: AptSource | None = None


class ServiceUids(Strict):
    """uid:gid each stack service runs as; config and secret files on the host are owned by it."""

    redis: ServiceUidGid = "10379:10379"
    authelia: ServiceUidGid = "10091:10091"
    agentgateway: ServiceUidGid = "10300:10300"
    ingress: ServiceUidGid = "10080:10080"

    @model_validator(mode="after")
    def _one_uid_each(self) -> ServiceUids:
        # Each service's secrets are 0600 files owned by its uid: a shared uid lets one read the other's.
        raise_all(
            [
                f"{' and '.join(f'uids.{f}' for f in fields)} are both uid {uid}: each service's secret "
                "files are readable by its uid alone, so a shared uid lets one read the other's "
                "(e.g. Authelia's signing key); give each service its own uid"
                for uid, fields in self.by_uid().items()
                if len(fields) > 1
            ]
        )
        return self

    def by_uid(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for field in ServiceUids.model_fields:
            out.setdefault(split_uid(getattr(self, field))[0], []).append(field)
        return out


class Session(Strict):
    """Authelia's sign-in session: the cookie that keeps a browser signed in on the sign-in pages."""

    # How long "remember me" keeps a browser signed in (Authelia's own default is a month). People
    # sign in here only to connect a client or when a refresh token runs out, so a long cookie buys
    # little, while anyone at that browser could approve a new client without password and TOTP for
    # as long as it lasts. A day covers an afternoon of connecting clients.
    remember_me: Duration = "1 day"


class RateLimits(Strict):
    """How much one client may ask for. The ingress hands Authelia each Funnel client's own address
    (trusting X-Forwarded-For only from tailscaled's side of the published port), so these count
    per client address, except the MCP bucket."""

    # Authelia's regulation, per client address (not per user: one address could otherwise keep a
    # user locked out): this many failed sign-ins within sign_in_window ban the address for
    # sign_in_ban. TOTP codes have Authelia's own per-address limit besides.
    sign_in_failures: int = Field(default=5, ge=1, le=100)
    sign_in_window: Duration = "10 minutes"
    sign_in_ban: Duration = "15 minutes"
    # agentgateway's token bucket for /mcp. agentgateway 1.4 keeps local buckets per route, not per
    # client, so this caps all clients together: a flood cannot reach the backends.
    mcp_requests_per_second: int = Field(default=20, ge=1, le=100000)
    mcp_burst: int = Field(default=200, ge=1, le=1000000)
