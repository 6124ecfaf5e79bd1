"""The four services' files: Redis' config, Authelia's config, secrets, keys and TOTP seeds,
agentgateway's config, public keys and backend tokens, and the ingress' Caddyfile.

Each ``render_*`` function reads a :class:`~mcpgate.rendered.RenderInput` and adds its folders and
files to a :class:`~mcpgate.rendered.RenderOutput`; :func:`mcpgate.render.render_stack` calls them
in the order the deploy writes them.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

from . import layout
from .consent import consent_locale
from .identity import TOTP, subjects, totp_yaml
from .layout import (
    AGENTGATEWAY,
    AGENTGATEWAY_JWKS,
    AUTH_PREFIX,
    AUTHELIA,
    AUTHELIA_CONSENT_LOCALE,
    AUTHELIA_JWKS_KEY,
    AUTHELIA_JWKS_RETIRING_KEY,
    AUTHELIA_SECRET_ENV,
    AUTHELIA_TOTP,
    INGRESS,
    REDIS,
    token_path,
)
from .model import image_tag
from .policy import allowed_expression, compile_rules, no_usable_scope
from .rendered import RenderInput, RenderOutput
from .secret_crypto import ARGON2, key_id_for

# Where an issuer https://<host>/auth is looked up (RFC 8414, OIDC discovery, and builds of Claude
# that drop the path), mapped to the document Authelia serves under its own prefix.
DISCOVERY_ALIASES = tuple(
    (f"/.well-known/{document}{suffix}", f"{AUTH_PREFIX}/.well-known/{document}")
    for suffix in (AUTH_PREFIX, "")
    for document in ("oauth-authorization-server", "openid-configuration")
)

# What a person reads when their client's token carries none of the server's scopes.
STEP_UP_DESCRIPTION = (
    "The access token grants none of this server's scopes. Connect again and allow them: {scopes}. "
    "A client that asks for fixed scopes must be set to ask for these."
)

# agentgateway 1.4's answer (403, text/plain) to a request its authorization policy denies
# (ProxyError::AuthorizationFailed): the no-scope rule, the only one this stack gives it.
GATEWAY_DENIAL = "authorization failed"
# Set by agentgateway on every answer that got past its route's authorization policy (a backend's
# answer, or its MCP layer's), and never on that denial: agentgateway 1.4 runs a route's response
# header policy only when the request side reached it, which comes after authorization (so its
# 401 and its bucket's 429 lack it too). The ingress rewrites only a 403 without it, and strips it
# from every answer. A backend cannot remove it (the gateway sets it over the backend's answer).
GATEWAY_PASSED_HEADER = "X-Mcpgate-Passed-Gateway"

# The request headers a backend may see (agentgateway passes a client's headers on to its
# backends): what the MCP Streamable HTTP transport needs (2025-06-18 and 2026-07-28: content
# negotiation, the session, the negotiated version, resuming a stream, SEP-2243's routing headers
# and a tool's own Mcp-Param-<name> headers) and the forwarding headers the ingress sets itself.
# agentgateway adds its own afterwards (its upstream session id, a backend's token).
# Lower case: agentgateway's CEL sees header names so.
BACKEND_REQUEST_HEADERS = (
    "accept",
    "content-type",
    "last-event-id",
    "mcp-method",
    "mcp-name",
    "mcp-protocol-version",
    "mcp-session-id",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
)
BACKEND_REQUEST_HEADER_PREFIXES = ("mcp-param-",)


def backend_headers_expression() -> str:
    """agentgateway CEL: the request's headers, only those a backend may see."""
    names = ", ".join(json.dumps(n) for n in BACKEND_REQUEST_HEADERS)
    prefixes = " || ".join(f"k.startsWith({json.dumps(p)})" for p in BACKEND_REQUEST_HEADER_PREFIXES)
    return f"request.headers.filterKeys(k, k in [{names}] || {prefixes})"


def render_redis(given: RenderInput, out: RenderOutput) -> None:
    """redis.conf; its password sits in it, so the whole folder is private."""
    owner = given.stack.uids.redis
    out.service_dirs(REDIS, owner)
    conf = given.template("redis/redis.conf.j2", redis_password=given.secrets.redis_password())
    out.file(REDIS.host_file("config", REDIS.config), conf, mode=0o600, owner=owner, service="redis", secret=True)


def render_authelia(given: RenderInput, out: RenderOutput) -> None:
    """Its configuration, scalar secrets, signing keys, and the users' TOTP seeds to import (its users
    database is merged on the host: :attr:`Rendered.authelia_users`)."""
    stack, secrets = given.stack, given.secrets
    owner = stack.uids.authelia
    out.service_dirs(AUTHELIA, owner)

    def add(role: str, name: str, content: str, *, secret: bool, service: str = "authelia") -> None:
        out.file(AUTHELIA.host_file(role, name), content, mode=0o600, owner=owner, service=service, secret=secret)

    stack_lifespans = (stack.access_token_lifespan, stack.refresh_token_lifespan)
    clients = [
        {
            "id": c.id,
            "name": stack.consent_name(c),
            "public": c.public,
            "auth_method": c.auth_method,
            "digest": None if c.public else secrets.client_secret_digest(c.id),
            "redirect_uris": c.redirect_uris,
            "consent": c.consent,
            "consent_duration": c.consent_duration,
            "scopes": stack.registered_scopes,
            # A lifespan of its own (Authelia's lifespans.custom) where it differs from the stack's.
            "lifespans": None if lifespans == stack_lifespans else {"access": lifespans[0], "refresh": lifespans[1]},
        }
        for c in stack.clients
        for lifespans in [stack.client_lifespans(c)]
    ]
    # The signing key first (Authelia signs with the first RS256 key); during a rollover the retiring
    # one after it, published in its JWKS so that tokens it signed still verify.
    key_files = [AUTHELIA_JWKS_KEY, AUTHELIA_JWKS_RETIRING_KEY]
    jwks = [
        {"key_id": key_id_for(pem), "file": AUTHELIA.container_file("secrets", name), "name": name, "pem": pem}
        for name, pem in zip(key_files, secrets.oidc_signing_keys(), strict=False)
    ]
    configuration = given.template(
        "authelia/configuration.yml.j2",
        authelia_version=image_tag(stack.images.authelia),
        jwks=jwks,
        clients=clients,
        totp=TOTP,
        argon2=ARGON2,
    )
    add("config", AUTHELIA.config, configuration, secret=False)
    scalar = {
        "session_secret": secrets.session_secret(),
        "redis_password": secrets.redis_password(),
        "storage_encryption_key": secrets.storage_encryption_key(),
        "oidc_hmac_secret": secrets.oidc_hmac_secret(),
        "reset_password_jwt_secret": secrets.reset_password_jwt_secret(),
    }
    for name in AUTHELIA_SECRET_ENV:
        add("secrets", name, scalar[name], secret=True)
    for key in jwks:
        add("secrets", key["name"], key["pem"], secret=True)
    # Read by the storage CLI the deploy runs, not at start: no restart when it changes.
    add("identity", AUTHELIA_TOTP, totp_yaml(stack, secrets), secret=True, service="")
    # Read from disk on each request for it (server.asset_path): no restart either.
    folder = AUTHELIA.host_dir("assets")
    for sub in reversed(PurePosixPath(AUTHELIA_CONSENT_LOCALE).parents):
        if str(sub) != ".":
            out.dir(f"{folder}/{sub}", 0o700, owner)
    add("assets", AUTHELIA_CONSENT_LOCALE, consent_locale(stack), secret=False, service="")


def render_agentgateway(given: RenderInput, out: RenderOutput) -> None:
    """Its config (routes, JWT validation, CEL rules), Authelia's public keys, and backend tokens."""
    stack, secrets = given.stack, given.secrets
    owner = stack.uids.agentgateway
    out.service_dirs(AGENTGATEWAY, owner)

    def add(role: str, name: str, content: str, *, secret: bool) -> None:
        out.file(
            AGENTGATEWAY.host_file(role, name), content, mode=0o600, owner=owner, service="agentgateway", secret=secret
        )

    # The public half of Authelia's signing key, from the same store: agentgateway needs no network
    # to verify tokens, and Authelia would answer 400 to a JWKS fetch that lacks the public
    # X-Forwarded-Proto/Host (it builds its issuer from them).
    add(
        "config",
        AGENTGATEWAY_JWKS,
        json.dumps(secrets.oidc_public_jwks(), indent=2, sort_keys=True) + "\n",
        secret=False,
    )
    rules = compile_rules(stack, subjects(stack, secrets))
    config = given.template(
        "agentgateway/config.yaml.j2",
        rules=rules,
        audit_allowed=allowed_expression(rules),
        no_scope_rule=no_usable_scope(stack),
        backends=stack.enabled_backends,
        token_path=token_path,
        session_key=secrets.gateway_session_key(),
        backend_headers=backend_headers_expression(),
        passed_header=GATEWAY_PASSED_HEADER,
    )
    add("config", AGENTGATEWAY.config, config, secret=True)
    for name in stack.token_secrets:
        add("secrets", name, given.token(name), secret=True)


def render_ingress(given: RenderInput, out: RenderOutput) -> None:
    """The Caddyfile: canonical paths only, Authelia under its prefix, discovery aliases, the MCP endpoint."""
    stack = given.stack
    out.service_dirs(INGRESS, stack.uids.ingress, mode=0o750)
    challenge_scope = " ".join(stack.scopes_supported)
    step_up = STEP_UP_DESCRIPTION.format(scopes=challenge_scope)
    # Every path a route of the ingress takes (the handles of its template), as one regexp.
    routed = [
        f"{re.escape(AUTH_PREFIX)}(?:/|$)",
        *(f"{re.escape(alias)}$" for alias, _ in DISCOVERY_ALIASES),
        f"(?:{re.escape(layout.MCP_PATH)}|/\\.well-known/oauth-protected-resource)(?:/|$)",
    ]
    caddyfile = given.template(
        "ingress/Caddyfile.j2",
        routed_paths="^(?:" + "|".join(routed) + ")",
        gateway_denial=GATEWAY_DENIAL,
        passed_header=GATEWAY_PASSED_HEADER,
        discovery_aliases=DISCOVERY_ALIASES,
        challenge_scope=challenge_scope,
        step_up_description=step_up,
        step_up_body=json.dumps({"error": "insufficient_scope", "error_description": step_up}),
    )
    out.file(
        INGRESS.host_file("config", INGRESS.config),
        caddyfile,
        mode=0o640,
        owner=stack.uids.ingress,
        service="ingress",
        secret=False,
    )
