"""One host's whole stack (:class:`Stack`), what it derives, and :func:`load_stack`, which builds it
from inventory data or names every problem in it."""

from __future__ import annotations

from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from ..layout import AGENTGATEWAY, AUTH_PREFIX, MCP_PATH, network_slots
from .addresses import Hostname, NetworkPool, is_loopback_host
from .durations import Duration, duration_seconds
from .fields import ScopeDescriptions, StackName
from .mcp_backend import Backend
from .mount_paths import BaseDir
from .people import CLAUDE_ACCESS_TOKEN_LIFESPAN, Client, User
from .settings import Audit, Backup, Docker, Images, RateLimits, ServiceUids, Session, Tailscale, settings_example
from .strict import Strict

# What Authelia 4.39's discovery advertises as scopes_supported (a fixed list, internal/oidc/discovery.go):
# a client that asks for "every scope the authorization server supports" asks for these.
AUTHELIA_DISCOVERY_SCOPES = ("offline_access", "openid", "profile", "email", "address", "phone", "groups")

# The OIDC endpoints a browser-based public client calls with fetch(): it exchanges and refreshes
# its code at the token endpoint, revokes on sign-out and may read userinfo. The authorization
# endpoint is a top-level navigation (no CORS), and introspection is for resource servers.
CORS_ENDPOINTS = ("token", "revocation", "userinfo")

# What an empty list should have had, with a tiny example.
_EMPTY_HINTS = {
    "users": 'add who may sign in, e.g. [{"name": "alice", "display_name": "Alice", "email": "alice@example.org"}]',
    "scopes": 'declare the scopes your tools need, e.g. {"notes:read": "Search and read notes"}',
    "backends": (
        "add the MCP server to put behind the gateway, e.g. "
        '[{"name": "notes", "image": "ghcr.io/example/notes-mcp:1.0.0", "port": 8080, "scope": "notes:read"}]'
    ),
    "clients": (
        "register the OAuth client that connects, e.g. Claude.ai: "
        '[{"id": "claude-ai", "name": "Claude.ai", "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"]}]'
    ),
}


class Stack(Strict):
    """One host's whole stack."""

    # The public name clients reach the stack at (https://<hostname>): with Tailscale, the node's
    # <node>.<tailnet>.ts.net name. The OAuth issuer, the MCP resource and every URL derive from it.
    hostname: Hostname
    # Prefix of every container, network and volume the stack owns on the host's engine; two
    # stacks with different names never touch each other's (the tests deploy under their own).
    name: StackName = "mcpgate"
    # The stack's own folder on the host; normalised ("/opt/mcpgate/" is "/opt/mcpgate").
    base_dir: BaseDir = "/opt/mcpgate"
    # The port the ingress is published on, on the host's loopback only (Tailscale Funnel proxies to it).
    ingress_port: int = Field(default=8088, ge=1024, le=65535)
    # agentgateway's port inside the stack's networks (never published on the host).
    gateway_port: int = Field(default=AGENTGATEWAY.port, ge=1024, le=65535)
    # The private IPv4 range the stack's Docker networks are carved from (a /28 each: the edge
    # network, Redis/Authelia's, the gateway's, and one per backend). Change it only if it clashes
    # with a network the host already has.
    network_pool: NetworkPool = "172.31.252.0/22"
    images: Images = Field(default_factory=Images)
    docker: Docker = Field(default_factory=Docker)
    tailscale: Tailscale = Field(default_factory=Tailscale)
    uids: ServiceUids = Field(default_factory=ServiceUids)
    session: Session = Field(default_factory=Session)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    audit: Audit = Field(default_factory=Audit)
    # Backups of the host's state with restic (None: the deploy sets none up).
    backup: Backup | None = None
    users: list[User]
    scopes: ScopeDescriptions
    # group -> scopes its members may use. With no groups here and no user's own scopes, every
    # person may use every scope; once either is given, a person may use only what is granted.
    groups: dict[str, list[str]] = Field(default_factory=dict)
    backends: list[Backend]
    clients: list[Client]
    # How long an access token (the JWT the gateway checks) and a refresh token live
    # (refresh_token_lifespan), for every client that sets no lifespan of its own.
    access_token_lifespan: Duration = "1h"
    refresh_token_lifespan: Duration = "30d"

    # These two take the field's name for their message, so they stay validators of the model.
    @field_validator(*_EMPTY_HINTS)
    @classmethod
    def _not_empty(cls, v: Any, info: ValidationInfo) -> Any:
        if not v:
            raise ValueError(f"is empty: {_EMPTY_HINTS[info.field_name or '']}")
        return v

    @field_validator("tailscale", "docker", "images", "uids", "session", "backup", "audit", mode="before")
    @classmethod
    def _settings_are_dicts(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, dict | BaseModel) or (v is None and info.field_name == "backup"):
            return v
        field = info.field_name or ""
        raise ValueError(f'is a dict of settings, not {v!r}: write "{field}": {settings_example(field, v)}')

    # --- derived, once -------------------------------------------------------------------------

    @property
    def public_url(self) -> str:
        """The stack's public origin: every URL a client or a browser is given starts with it."""
        return f"https://{self.hostname}"

    @property
    def issuer(self) -> str:
        """Authelia's OIDC issuer: the public origin and the prefix Authelia is served under."""
        return f"{self.public_url}{AUTH_PREFIX}"

    @property
    def resource(self) -> str:
        """The MCP endpoint and the access tokens' audience (RFC 8707 resource)."""
        return f"{self.public_url}{MCP_PATH}"

    @property
    def resource_metadata_url(self) -> str:
        """Where the MCP endpoint's protected-resource metadata is (RFC 9728, path-inserted)."""
        return f"{self.public_url}/.well-known/oauth-protected-resource{MCP_PATH}"

    @property
    def edge_gateway_address(self) -> str:
        """The edge network's bridge address (its subnet is the pool's first slot): the peer of every
        connection through the published port (docker-proxy connects from it), i.e. tailscaled's."""
        return str(next(network_slots(self.network_pool)[0].hosts()))

    @property
    def enabled_backends(self) -> list[Backend]:
        return [b for b in self.backends if b.enabled]

    @cached_property
    def tool_scopes_in_use(self) -> list[str]:
        """The scopes the enabled backends' tools need, in inventory order."""
        seen: list[str] = []
        for b in self.enabled_backends:
            for s in b.scopes:
                if s not in seen:
                    seen.append(s)
        return seen

    @property
    def scopes_supported(self) -> list[str]:
        """Scopes an MCP client should ask for (the 401 challenge's ``scope``, the resource metadata's
        ``scopes_supported``): those of enabled backends. Not ``offline_access``: MCP 2026-07-28 says a
        resource server SHOULD NOT name it there; a client that wants refresh tokens adds it because
        Authelia's own metadata lists it (the MCP SDK and Claude do), or asks for it itself."""
        return list(self.tool_scopes_in_use)

    @property
    def registered_scopes(self) -> list[str]:
        """What every client may ask Authelia for: the standard OIDC scopes (what discovery
        advertises) and every declared scope. Narrower per-client lists would fail a client's whole
        sign-in with invalid_scope; the limits are enforced at the gateway instead."""
        return ["openid", *(s for s in AUTHELIA_DISCOVERY_SCOPES if s != "openid"), *self.scopes]

    def client_lifespans(self, client: Client) -> tuple[int | str, int | str]:
        """How long the client's access and refresh tokens live: its own, else the stack's; a client
        that redirects to Claude gets at least CLAUDE_ACCESS_TOKEN_LIFESPAN (Claude refreshes late)."""
        access = client.access_token_lifespan
        if access is None:
            access = self.access_token_lifespan
            if client.is_claude and duration_seconds(access) < duration_seconds(CLAUDE_ACCESS_TOKEN_LIFESPAN):
                access = CLAUDE_ACCESS_TOKEN_LIFESPAN
        refresh = client.refresh_token_lifespan
        if refresh is None:
            refresh = self.refresh_token_lifespan
        return access, refresh

    @property
    def longest_access_token_lifespan(self) -> int | str:
        """The longest an access token of any client lives: how long a retired signing key must
        stay published, and a token signed with it keeps working."""
        return max((self.client_lifespans(c)[0] for c in self.clients), key=duration_seconds)

    def client_tool_scopes(self, client: Client) -> list[str]:
        """Scopes whose tools the client may use."""
        return list(client.scopes) if client.scopes is not None else list(self.scopes)

    @property
    def limits_people(self) -> bool:
        return bool(self.groups) or any(u.scopes is not None for u in self.users)

    def user_tool_scopes(self, user: User) -> list[str]:
        """Scopes whose tools the person may use: every scope, or their own and their groups' grants."""
        if not self.limits_people:
            return list(self.scopes)
        granted = set(user.scopes or [])
        for group in user.groups:
            granted.update(self.groups.get(group, []))
        return [s for s in self.scopes if s in granted]

    def consent_name(self, client: Client) -> str:
        """The client's name on Authelia's consent screen, which also says what it is limited to."""
        if client.scopes is None:
            return client.name
        return f"{client.name} (tools limited to: {', '.join(client.scopes) or 'none'})"

    @property
    def cors_origins(self) -> list[str]:
        """Origins that may call Authelia's OIDC endpoints from a browser: the pages of browser-based
        public clients, i.e. their non-loopback https redirect URIs' origins. Confidential clients
        (Claude.ai) call the token endpoint from their servers, and native clients from no page at
        all: with no browser-based public client there is no CORS."""
        origins: list[str] = []
        for c in self.clients:
            if not c.public:
                continue
            for uri in c.redirect_uris:
                parts = urlsplit(uri)
                host = parts.hostname or ""
                if parts.scheme != "https" or not host or is_loopback_host(host):
                    continue
                host = f"[{host}]" if ":" in host else host
                origin = f"https://{host}" + (f":{parts.port}" if parts.port not in (None, 443) else "")
                if origin not in origins:
                    origins.append(origin)
        return origins

    @property
    def cors_endpoints(self) -> list[str]:
        """The endpoints Authelia answers CORS on (none without a browser-based public client)."""
        return list(CORS_ENDPOINTS) if self.cors_origins else []

    @property
    def token_secrets(self) -> list[str]:
        """User-supplied secrets the gateway sends to enabled backends (``token_secret``)."""
        return [b.token_secret for b in self.enabled_backends if b.token_secret]

    @property
    def backend_secrets(self) -> list[str]:
        """User-supplied secrets handed to enabled backends' containers (``secrets``)."""
        return [name for b in self.enabled_backends for name in b.secret_names]

    @property
    def settable_secrets(self) -> list[str]:
        """Every secret name the inventory mentions (disabled backends too, so it can be set first)."""
        names = [n for b in self.backends for n in ([b.token_secret] if b.token_secret else []) + b.secret_names]
        if self.tailscale.enabled:
            names.append(self.tailscale.auth_key_secret)
        if self.backup:
            names += self.backup.secret_names
        return names
