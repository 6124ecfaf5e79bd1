"""Who signs in (:class:`User`) and what connects on their behalf (:class:`Client`, an OAuth client)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .addresses import RedirectUris
from .durations import Duration
from .fields import ClientId, Email, GroupNames, UserName
from .strict import Strict, raise_all

CLAUDE_REDIRECT_URIS = (
    "https://claude.ai/api/mcp/auth_callback",
    "https://claude.com/api/mcp/auth_callback",
)
# The access-token lifespan a client that redirects to Claude gets unless it sets its own (or the
# stack's is longer). Claude's hosted runtime is reported to refresh late (claude-ai-mcp #228, #247,
# #702: "connection expired", tools gone after a 401): a token that outlives a working day's
# conversation rarely meets that. What it costs is in the README ("Token lifetimes").
CLAUDE_ACCESS_TOKEN_LIFESPAN = "8h"


class User(Strict):
    """A person who may sign in (password + TOTP)."""

    # The sign-in name; the store keeps the person's password, TOTP seed and subject under it.
    name: UserName
    # The name Authelia's pages show.
    display_name: str = Field(min_length=1)
    # Their address, as Authelia's users database needs one.
    email: Email
    # The groups of Stack.groups this person is in.
    groups: GroupNames = Field(default_factory=list)
    # Scopes this person may use besides those their groups grant (see Stack.groups).
    scopes: list[str] | None = None


class Client(Strict):
    """An OAuth client registered in Authelia (Claude.ai, Claude Code, MCP Inspector...)."""

    # The OAuth client_id; the store keeps the client's secret under it.
    id: ClientId
    # The name the consent page shows.
    name: str = Field(min_length=1)
    # Where Authelia may send the client back with its code: exact URLs (Claude.ai's are
    # CLAUDE_REDIRECT_URIS).
    redirect_uris: RedirectUris
    # Claude.ai sends its pre-registered secret in the POST body (client_secret_post).
    auth_method: Literal["client_secret_post", "client_secret_basic", "none"] = "client_secret_post"
    # Scopes whose tools this client may use; None means every declared scope. The client may still
    # ask for and be granted any scope (clients ask for what the server advertises, and a refused
    # scope would fail the whole sign-in): the gateway allows a tool only to the clients listed here.
    scopes: list[str] | None = None
    # Default: "pre-configured" (the person's consent is remembered for consent_duration) for a
    # confidential client, whose identity its secret proves; "explicit" (asked every time) for a
    # public one, which any program can impersonate (RFC 8252 section 8.6). See _default_consent.
    consent: Literal["explicit", "implicit", "pre-configured"] = "pre-configured"
    consent_duration: Duration = "1 week"
    # How long this client's tokens live (Authelia's duration syntax, or whole seconds). None: the
    # stack's access_token_lifespan / refresh_token_lifespan; for a client that redirects to Claude,
    # an access token lives at least CLAUDE_ACCESS_TOKEN_LIFESPAN (Stack.client_lifespans).
    access_token_lifespan: Duration | None = None
    refresh_token_lifespan: Duration | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_consent(cls, data: Any) -> Any:
        if isinstance(data, dict) and "consent" not in data:
            data = {**data, "consent": "explicit" if data.get("auth_method") == "none" else "pre-configured"}
        return data

    @model_validator(mode="after")
    def _client_rules(self) -> Client:
        problems: list[str] = []
        if self.is_claude and self.auth_method != "client_secret_post":
            problems.append(
                f"client {self.id!r} redirects to Claude.ai, which sends its secret with client_secret_post; "
                f"set auth_method: client_secret_post (not {self.auth_method})"
            )
        if self.public and self.consent != "explicit":
            problems.append(
                f"client {self.id!r} is public (auth_method none): consent {self.consent!r} would hand tokens to "
                "any program that presents this client id and a loopback callback, without the person seeing a "
                "consent screen (RFC 8252 section 8.6: a public client's identity cannot be proven, so every "
                "request is asked); use consent: explicit (the default for public clients)"
            )
        if self._explicit("consent_duration") and self.consent != "pre-configured":
            problems.append(
                f"client {self.id!r}: consent_duration applies only with consent: pre-configured "
                f"(this client's consent is {self.consent!r}); remove it"
            )
        raise_all(problems)
        return self

    @property
    def public(self) -> bool:
        return self.auth_method == "none"

    @property
    def is_claude(self) -> bool:
        """Whether Claude (claude.ai / claude.com) is this client: it redirects to Claude's callback."""
        return any(u in CLAUDE_REDIRECT_URIS for u in self.redirect_uris)
