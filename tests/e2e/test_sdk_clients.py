"""Real MCP clients against the deployed stack: the official MCP Python SDK's own OAuth client
(``OAuthClientProvider``), not this project's hand-written flow, with a person signing in through
Authelia's API in place of a browser.

The SDK chooses what to ask for the way the MCP spec says (the 401 challenge's scope, then the
protected-resource metadata's list, then the authorization server's, else none); other clients
choose otherwise. Each way is reproduced here by hiding from the SDK what it would have used
(``Strategy``), and each must connect with exactly the tools the inventory grants that client and
person (``mcpgate.policy.granted_tools``), or fail with a message saying what to change.
"""

from __future__ import annotations

import enum
import functools
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp.shared.exceptions import MCPError

from mcpgate.model import duration_seconds, load_stack
from mcpgate.policy import granted_tools
from tests.e2e.harness import HOSTNAME, INGRESS_PORT, Deployer, RunResult, docker, name_of, skip_module_without
from tests.e2e.oauth import CLAUDE_CALLBACK, Flow, FlowError, Session, flow_for, login

# Every test signs in at Authelia and calls tools through agentgateway: without either, the module
# skips as one, with the reason.
skip_module_without("authelia", "agentgateway")

RESOURCE = f"https://{HOSTNAME}/mcp"
ISSUER = f"https://{HOSTNAME}/auth"
INSPECTOR_CALLBACK = "http://localhost:6274/oauth/callback"


class Strategy(enum.Enum):
    CHALLENGE = "the scope named in the 401 challenge"
    METADATA = "the protected-resource metadata's scopes_supported"
    SERVER = "the authorization server's scopes_supported"
    NONE = "no scope at all"


class Loopback(httpx2.AsyncBaseTransport):
    """Sends https://<public host>/... to the ingress on 127.0.0.1 with the public Host, as
    Tailscale Funnel would, and hides from the client what its scope ``strategy`` must not see."""

    def __init__(self, strategy: Strategy) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.strategy = strategy
        self.seen: list[tuple[str, str, int]] = []  # method, path, status
        self.token_forms: list[dict[str, str]] = []
        self.challenges: list[str] = []  # every 401's WWW-Authenticate, as the server sent it
        # Each POST to /mcp: its JSON-RPC method, the headers that carry the protocol's state, the status.
        self.rpc: list[tuple[str, dict[str, str], int]] = []
        self.list_results: list[dict[str, Any]] = []  # each tools/list result, as the server sent it

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        assert url.host == HOSTNAME, f"the client left the server: {url}"
        if url.path == "/auth/api/oidc/token":
            body = (await request.aread()).decode()
            self.token_forms.append({k: v[0] for k, v in parse_qs(body).items()})
        rpc_method = ""
        if request.method == "POST" and url.path == "/mcp":
            rpc_method = json.loads(await request.aread()).get("method", "")
        # A copy: the SDK sends the same request object again after it signed in.
        routed = httpx2.Request(
            request.method,
            url.copy_with(scheme="http", host="127.0.0.1", port=INGRESS_PORT),
            headers=request.headers,
            stream=request.stream,
            extensions=request.extensions,
        )
        routed.headers["Host"] = HOSTNAME
        response = await self.inner.handle_async_request(routed)
        self.seen.append((request.method, url.path, response.status_code))
        if response.status_code == 401:
            self.challenges.append(response.headers.get("www-authenticate", ""))
        if rpc_method:
            state = {k: request.headers[k] for k in ("mcp-session-id", "mcp-protocol-version") if k in request.headers}
            self.rpc.append((rpc_method, state, response.status_code))
        if rpc_method == "tools/list" and response.status_code == 200:
            await response.aread()
            self.list_results.append(_rpc_result(response))
            response = await self._rebuilt(response)
        return await self._hide(url.path, response)

    async def _hide(self, path: str, response: httpx2.Response) -> httpx2.Response:
        hide_challenge = self.strategy is not Strategy.CHALLENGE
        hide_metadata = self.strategy in (Strategy.SERVER, Strategy.NONE)
        hide_server = self.strategy is Strategy.NONE
        if response.status_code == 401 and hide_challenge:
            challenge = re.sub(r',\s*scope="[^"]*"', "", response.headers["www-authenticate"])
            return await self._rebuilt(response, headers={"www-authenticate": challenge})
        is_prm = path.startswith("/.well-known/oauth-protected-resource")
        is_asm = "oauth-authorization-server" in path or "openid-configuration" in path
        if response.status_code == 200 and ((is_prm and hide_metadata) or (is_asm and hide_server)):
            await response.aread()
            doc = json.loads(response.content)
            doc.pop("scopes_supported", None)
            return await self._rebuilt(response, content=json.dumps(doc).encode())
        return response

    @staticmethod
    async def _rebuilt(response: httpx2.Response, **changes: Any) -> httpx2.Response:
        await response.aread()
        headers = dict(response.headers)
        headers.pop("content-length", None)
        headers.update(changes.pop("headers", {}))
        return httpx2.Response(response.status_code, headers=headers, content=changes.get("content", response.content))

    async def aclose(self) -> None:
        await self.inner.aclose()


def _rpc_result(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC result of a response, sent as JSON or as one server-sent event."""
    text = response.content.decode()
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        return json.loads(text).get("result", {})
    events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]
    return next((e["result"] for e in events if "result" in e), {})


class Memory:
    """The SDK's token storage: pre-registered client credentials, tokens kept in memory."""

    def __init__(self, client: OAuthClientInformationFull) -> None:
        self.client = client
        self.tokens: OAuthToken | None = None
        self.all_tokens: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.all_tokens.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


@dataclass
class Person:
    """Someone at a browser: signs in with password and TOTP when Authelia asks, and consents."""

    name: str
    password: str
    seed: str
    rewrite_scope: Callable[[str], str] | None = None  # a client that mangles the scope it sends
    session: Session = field(default_factory=lambda: Session(f"http://127.0.0.1:{INGRESS_PORT}", HOSTNAME))
    authorize_urls: list[str] = field(default_factory=list)
    callback: dict[str, str] = field(default_factory=dict)

    async def open(self, url: str) -> None:
        if self.rewrite_scope is not None:
            parts = urlsplit(url)
            qs = {k: v[0] for k, v in parse_qs(parts.query).items()}
            qs["scope"] = self.rewrite_scope(qs.get("scope", ""))
            url = parts._replace(query=urlencode(qs)).geturl()
        self.authorize_urls.append(url)
        flow = flow_for(self.session, url)
        await anyio.to_thread.run_sync(lambda: login(flow, self.name, self.password, self.seed, authorize_url=url))
        self.callback = flow.callback

    async def come_back(self) -> AuthorizationCodeResult:
        return AuthorizationCodeResult(
            code=self.callback["code"], state=self.callback.get("state"), iss=self.callback.get("iss")
        )


@dataclass
class Connection:
    tools: list[str]
    search: str
    transport: Loopback
    storage: Memory
    person: Person
    provider: OAuthClientProvider


def _client_info(deployer: Deployer, client_id: str) -> OAuthClientInformationFull:
    if client_id == "mcp-inspector":
        return OAuthClientInformationFull(
            client_id=client_id,
            redirect_uris=[INSPECTOR_CALLBACK],
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        )
    return OAuthClientInformationFull(
        client_id=client_id,
        client_secret=deployer.store_file(f"clients/{client_id}.secret"),
        redirect_uris=[CLAUDE_CALLBACK],
        token_endpoint_auth_method="client_secret_post",
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
    )


def _person(deployer: Deployer, name: str, rewrite_scope: Callable[[str], str] | None = None) -> Person:
    return Person(
        name, deployer.store_file(f"users/{name}.password"), deployer.store_file(f"users/{name}.totp"), rewrite_scope
    )


def connect(
    deployer: Deployer,
    client_id: str,
    person: Person,
    strategy: Strategy = Strategy.CHALLENGE,
    then: Callable[[ClientSession, OAuthClientProvider], Any] | None = None,
    again: Connection | None = None,
) -> Connection:
    """Connect with the SDK as ``client_id`` for ``person``: initialize, list tools, search. ``again``
    reconnects the client of an earlier connection, with what it kept (tokens, the servers'
    metadata), its access token expired: the first request refreshes it."""
    info = _client_info(deployer, client_id)
    if again is not None:
        storage, provider = again.storage, again.provider
        provider.context.token_expiry_time = 1  # (0 would mean "never expires")
    else:
        storage = Memory(info)
        metadata = OAuthClientMetadata(
            redirect_uris=info.redirect_uris,
            token_endpoint_auth_method=info.token_endpoint_auth_method,
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            client_name=client_id,
        )
        provider = OAuthClientProvider(RESOURCE, metadata, storage, person.open, person.come_back)
    transport = Loopback(strategy)

    async def run() -> Connection:
        async with (
            httpx2.AsyncClient(transport=transport, auth=provider, timeout=60) as http,
            streamable_http_client(RESOURCE, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = sorted(t.name for t in (await session.list_tools()).tools)
            found = await session.call_tool("search", {"query": "gateway"}) if "search" in tools else None
            if then is not None:
                await then(session, provider)
        text = "" if found is None else " ".join(getattr(c, "text", "") for c in found.content)
        return Connection(tools, text, transport, storage, person, provider)

    return anyio.run(run)


def expected_tools(deployer: Deployer, client_id: str, user: str) -> list[str]:
    """What the inventory grants, from the model alone (tool names as the gateway lists them)."""
    described = json.loads(deployer.mcpgate("describe", str(deployer.inventory())).stdout)[0]
    stack = load_stack(described["host"], described["mcpgate"])
    client = next(c for c in stack.clients if c.id == client_id)
    person = next(u for u in stack.users if u.name == user)
    return sorted(t.split("/", 1)[1] for t in granted_tools(stack, client, person))


def expected_lifespan(deployer: Deployer, client_id: str) -> float:
    """How long the client's access tokens live, from the model alone (its own, or the stack's)."""
    described = json.loads(deployer.mcpgate("describe", str(deployer.inventory())).stdout)[0]
    stack = load_stack(described["host"], described["mcpgate"])
    return duration_seconds(stack.client_lifespans(next(c for c in stack.clients if c.id == client_id))[0])


def _lasts(token: OAuthToken, lifespan: float) -> bool:
    """Whether the access token lives ``lifespan`` seconds: its exp - iat, which Authelia's OAuth 2
    provider can put one second short (exp is set when the token request is handled, iat read again
    when the token is signed, each in whole seconds: flow_authorize_code_token.go and
    strategy_jwt_profile.go; a request that straddles a second's boundary, seen under load)."""
    claims = _claims(token)
    return lifespan - 1 <= claims["exp"] - claims["iat"] <= lifespan


def _claims(token: OAuthToken) -> dict[str, Any]:
    import base64

    part = token.access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


@pytest.fixture(scope="module")
def stack_up(deployer: Deployer, first_run: RunResult, gateway: None, authelia: None) -> Deployer:
    return deployer


# --- the unrestricted client, the whole path ------------------------------------------------------


def test_claude_ai_connects_through_the_whole_path(stack_up: Deployer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    conn = connect(stack_up, "claude-ai", _person(stack_up, "alice"))
    assert conn.tools == expected_tools(stack_up, "claude-ai", "alice") == ["delete", "read", "search", "write"]
    assert "gateway.md" in conn.search
    seen = [(m, p, s) for m, p, s in conn.transport.seen]
    assert seen[0] == ("POST", "/mcp", 401)
    assert ("GET", "/.well-known/oauth-protected-resource/mcp", 200) in seen
    assert ("GET", "/.well-known/oauth-authorization-server/auth", 200) in seen  # path-inserted, first try
    (url,) = conn.person.authorize_urls
    qs = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert qs["code_challenge_method"] == "S256" and qs["resource"] == RESOURCE
    # The challenge's scopes, and offline_access, which the challenge no longer names (MCP 2026-07-28):
    # the SDK adds it because Authelia's metadata lists it.
    (challenge,) = conn.transport.challenges
    assert 'scope="notes:read notes:write"' in challenge, challenge
    assert qs["scope"].split() == ["notes:read", "notes:write", "offline_access"]
    (form,) = conn.transport.token_forms
    assert form["client_secret"] == stack_up.store_file("clients/claude-ai.secret")  # client_secret_post
    assert conn.storage.tokens is not None
    claims = _claims(conn.storage.tokens)
    assert claims["client_id"] == "claude-ai" and claims["sub"] == stack_up.store_file("users/alice.sub")
    assert RESOURCE in claims["aud"]
    # Claude's client: its access tokens live 8 hours (Claude refreshes late), Authelia's custom lifespan.
    assert expected_lifespan(stack_up, "claude-ai") == 8 * 3600
    assert _lasts(conn.storage.tokens, 8 * 3600), _claims(conn.storage.tokens)
    assert conn.storage.tokens.refresh_token  # offline_access: the SDK added it (see the scope above)
    # The session is ended cleanly (the SDK warns unless the DELETE answers 200, 204 or 405).
    assert ("DELETE", "/mcp", 204) in seen
    assert not [r for r in caplog.records if "termination failed" in r.getMessage()], caplog.text


# --- every way a client may choose its scopes ---------------------------------------------------


@pytest.mark.parametrize("strategy", list(Strategy), ids=[s.name.lower() for s in Strategy])
def test_every_scope_strategy_connects_with_the_granted_tools(stack_up: Deployer, strategy: Strategy) -> None:
    conn = connect(stack_up, "claude-ai", _person(stack_up, "alice"), strategy)
    assert conn.tools == expected_tools(stack_up, "claude-ai", "alice")
    first_scope = parse_qs(urlsplit(conn.person.authorize_urls[0]).query).get("scope", [""])[0].split()
    if strategy in (Strategy.CHALLENGE, Strategy.METADATA):
        # the full grant at the first sign-in
        assert len(conn.person.authorize_urls) == 1
        assert {"notes:read", "notes:write"} <= set(first_scope)
    else:
        # asked for none of the server's scopes: refused with a step-up challenge, then asked again
        assert not {"notes:read", "notes:write"} & set(first_scope)
        assert ("POST", "/mcp", 403) in conn.transport.seen
        assert len(conn.person.authorize_urls) == 2
        again = parse_qs(urlsplit(conn.person.authorize_urls[1]).query)["scope"][0].split()
        assert {"notes:read", "notes:write"} <= set(again)


@pytest.mark.parametrize(
    "mangle",
    [lambda s: f"  {s.replace(' ', '  ')} ", lambda s: " offline_access"],
    ids=["stray-whitespace", "leading-space-offline-access-only"],
)
def test_a_scope_string_with_stray_whitespace_still_connects(stack_up: Deployer, mangle: Callable) -> None:
    mangled = {"done": False}

    def once(scope: str) -> str:  # the client's first request is mangled; a step-up is not
        if mangled["done"]:
            return scope
        mangled["done"] = True
        return mangle(scope)

    conn = connect(stack_up, "claude-ai", _person(stack_up, "alice", once))
    assert conn.tools == expected_tools(stack_up, "claude-ai", "alice")


def test_a_client_asking_for_scopes_the_server_does_not_have_is_told_which(stack_up: Deployer) -> None:
    """A fixed `read write` (as Claude once sent) cannot be granted: the sign-in fails, and the
    message names the scope to change."""
    with pytest.raises(BaseException) as err:
        connect(stack_up, "claude-ai", _person(stack_up, "alice", lambda s: "read write"))
    refused = _innermost(err.value)
    assert isinstance(refused, FlowError), repr(err.value)
    assert "invalid_scope" in str(refused) and "not allowed to request scope 'read'" in str(refused)


def _innermost(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


# --- per-client and per-person limits -----------------------------------------------------------


def test_a_restricted_client_connects_and_sees_only_its_tools(stack_up: Deployer) -> None:
    refused: dict[str, Any] = {}

    async def try_write(session: ClientSession, _: OAuthClientProvider) -> None:
        with pytest.raises(MCPError) as err:
            await session.call_tool("write", {"path": "x.md", "content": "not allowed"})
        refused["write"] = str(err.value)

    conn = connect(stack_up, "mcp-inspector", _person(stack_up, "alice"), then=try_write)
    assert conn.tools == expected_tools(stack_up, "mcp-inspector", "alice") == ["read", "search"]
    assert "gateway.md" in conn.search
    assert refused["write"] == "Unknown tool: write"  # the gateway's answer to a tool it does not allow
    # It asked for, and was granted, every scope: the limit is the gateway's.
    assert {"notes:read", "notes:write"} <= set(_claims(conn.storage.tokens)["scp"])
    # A client without lifespans of its own: the stack's (1 hour).
    assert expected_lifespan(stack_up, "mcp-inspector") == 3600
    assert _lasts(conn.storage.tokens, 3600), _claims(conn.storage.tokens)


def test_two_people_get_two_tool_lists(stack_up: Deployer) -> None:
    alice = connect(stack_up, "claude-ai", _person(stack_up, "alice"))
    bob = connect(stack_up, "claude-ai", _person(stack_up, "bob"))
    assert alice.tools == expected_tools(stack_up, "claude-ai", "alice") == ["delete", "read", "search", "write"]
    assert bob.tools == expected_tools(stack_up, "claude-ai", "bob") == ["read", "search"]


def test_a_refreshed_token_keeps_the_same_limits(stack_up: Deployer) -> None:
    after: dict[str, Any] = {}

    async def refresh_then_list(session: ClientSession, provider: OAuthClientProvider) -> None:
        provider.context.token_expiry_time = 1  # expired (0 would mean "never expires")
        after["tools"] = sorted(t.name for t in (await session.list_tools()).tools)

    conn = connect(stack_up, "mcp-inspector", _person(stack_up, "bob"), then=refresh_then_list)
    assert len(conn.storage.all_tokens) == 2, "no refresh happened"
    first, refreshed = conn.storage.all_tokens
    assert first.access_token != refreshed.access_token
    assert after["tools"] == conn.tools == expected_tools(stack_up, "mcp-inspector", "bob") == ["read", "search"]
    assert len(conn.person.authorize_urls) == 1  # refreshed, not signed in again


def test_a_client_whose_limits_shrink_loses_the_dropped_tools(stack_up: Deployer) -> None:
    before = connect(stack_up, "claude-ai", _person(stack_up, "alice"))
    assert before.tools == ["delete", "read", "search", "write"]
    shrunk = stack_up.inventory("_stack['clients'][0]['scopes'] = ['notes:read']")
    sign_ins = len(before.person.authorize_urls)
    try:
        result = stack_up.deploy(shrunk)
        assert result.returncode == 0, result.output[-4000:]
        # The connector comes back with its stored refresh token: its next token opens less.
        after = connect(stack_up, "claude-ai", before.person, again=before)
        assert len(before.storage.all_tokens) == 2, "no refresh happened"
        assert len(after.person.authorize_urls) == sign_ins, "signed in again instead of refreshing"
        assert after.tools == ["read", "search"]
    finally:
        restored = stack_up.deploy()
        assert restored.returncode == 0, restored.output[-4000:]


# --- MCP 2026-07-28: stateless (server/discover, no initialize, no session id) -------------------
# Claude's hosted runtime still runs the handshake (the tests above); the SDK's own default client
# (`mcp.Client`, mode "auto") probes server/discover and takes 2026-07-28 where the server speaks it.
# Each test walks one long flow (both modes, both clients, two people...) rather than many items.

MODERN = "2026-07-28"
MODES = ("auto", MODERN)  # the SDK's default, and the version pinned (no probe at all)
T = TypeVar("T")


def _provider(deployer: Deployer, client_id: str, person: Person) -> tuple[Memory, OAuthClientProvider]:
    info = _client_info(deployer, client_id)
    storage = Memory(info)
    metadata = OAuthClientMetadata(
        redirect_uris=info.redirect_uris,
        token_endpoint_auth_method=info.token_endpoint_auth_method,
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        client_name=client_id,
    )
    return storage, OAuthClientProvider(RESOURCE, metadata, storage, person.open, person.come_back)


@dataclass
class Modern:
    """The SDK's `mcp.Client` in ``mode`` as ``client_id`` for ``person``: what it keeps (tokens)
    lives as long as this object, across connections."""

    deployer: Deployer
    client_id: str
    person: Person
    mode: str
    strategy: Strategy = Strategy.CHALLENGE

    def __post_init__(self) -> None:
        self.storage, self.provider = _provider(self.deployer, self.client_id, self.person)
        self.transport = Loopback(self.strategy)

    def run(self, body: Callable[[Client], Awaitable[T]]) -> T:
        async def go() -> T:
            async with (
                httpx2.AsyncClient(transport=self.transport, auth=self.provider, timeout=60) as http,
                Client(streamable_http_client(RESOURCE, http_client=http), mode=self.mode) as client,
            ):
                return await body(client)

        return anyio.run(go)

    def methods(self) -> list[str]:
        """The JSON-RPC methods it sent that were answered (not refused with 401/403)."""
        return [m for m, _, status in self.transport.rpc if status not in (401, 403)]


async def _tools(client: Client) -> list[str]:
    return sorted(t.name for t in (await client.list_tools(cache_mode="bypass")).tools)


async def _search(client: Client) -> str:
    found = await client.call_tool("search", {"query": "gateway"})
    return " ".join(getattr(c, "text", "") for c in found.content)


async def _refused(client: Client, tool: str) -> str:
    with pytest.raises(MCPError) as err:
        await client.call_tool(tool, {"path": "x.md", "content": "not allowed"})
    return str(err.value)


def _restart(service: str) -> None:
    """Restart one of the test stack's containers and wait until it answers again."""
    name = name_of(service)
    docker("restart", "-t", "5", name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if service == "agentgateway":  # through the ingress, as a client would reach it
            probe = httpx.get(
                f"http://127.0.0.1:{INGRESS_PORT}/.well-known/oauth-protected-resource/mcp",
                headers={"Host": HOSTNAME},
                timeout=5,
            )
            if probe.status_code == 200:
                return
        else:  # a backend has no port on the host: ask from inside it
            port = "import socket; socket.create_connection(('127.0.0.1', 8080), 1)"
            if docker("exec", name, "python3", "-c", port, check=False).returncode == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"{name} did not answer within 60 s of its restart")


def _check_modern(conn: Modern) -> None:
    """It spoke 2026-07-28: no initialize, no session id, the version on every request; it probed
    server/discover first in mode auto, and nothing in a pinned mode."""
    methods = conn.methods()
    assert "initialize" not in methods, methods
    assert methods[0] == ("server/discover" if conn.mode == "auto" else "tools/list"), methods
    if conn.mode != "auto":
        assert "server/discover" not in methods, methods
    for method, state, _ in conn.transport.rpc:
        assert "mcp-session-id" not in state, (method, state)
        assert state.get("mcp-protocol-version") == MODERN, (method, state)
    # A per-person tool list: never cached for another person, and not reused.
    assert conn.transport.list_results, "no tools/list answered"
    for result in conn.transport.list_results:
        assert result.get("cacheScope") == "private" and result.get("ttlMs") == 0, {
            k: v for k, v in result.items() if k != "tools"
        }


async def _whole_session(client: Client, provider: OAuthClientProvider) -> dict[str, Any]:
    """List and search; list again with the access token expired (a refresh); then restart
    agentgateway, and then the notes backend, each time listing and searching again."""
    seen: dict[str, Any] = {"version": client.protocol_version}
    seen["tools"] = await _tools(client)
    seen["search"] = await _search(client)
    provider.context.token_expiry_time = 1  # expired (0 would mean "never")
    seen["refreshed"] = await _tools(client)
    for service in ("agentgateway", "backend-notes"):
        await anyio.to_thread.run_sync(_restart, service)
        seen[f"after {service}"] = (await _tools(client), await _search(client))
    return seen


def test_the_sdk_client_speaks_2026_07_28_through_the_whole_path(stack_up: Deployer) -> None:
    """Both modes (auto, the version pinned), the unrestricted and the restricted client, two
    people, a refresh, and a restart of agentgateway and of the notes backend in the middle."""
    alice, bob = _person(stack_up, "alice"), _person(stack_up, "bob")  # one browser each, kept
    for mode in MODES:
        # Alice with Claude's client: every tool her groups grant; a refresh mid-session; restarts.
        conn = Modern(stack_up, "claude-ai", alice, mode)
        seen = conn.run(functools.partial(_whole_session, provider=conn.provider))
        assert seen["version"] == MODERN, mode
        assert seen["tools"] == expected_tools(stack_up, "claude-ai", "alice") == ["delete", "read", "search", "write"]
        assert "gateway.md" in seen["search"]
        _check_modern(conn)
        # offline_access: not in the server's challenge, but the SDK adds it from Authelia's
        # metadata, is granted a refresh token, and refreshes with it.
        assert conn.transport.challenges and all("offline_access" not in c for c in conn.transport.challenges)
        (url,) = alice.authorize_urls[-1:]
        assert "offline_access" in parse_qs(urlsplit(url).query)["scope"][0].split()
        first, refreshed = conn.storage.all_tokens
        assert first.refresh_token and first.access_token != refreshed.access_token, mode
        assert conn.transport.token_forms[-1]["grant_type"] == "refresh_token"
        lifespan = expected_lifespan(stack_up, "claude-ai")
        assert _lasts(first, lifespan) and _lasts(refreshed, lifespan), mode  # refreshed too
        assert seen["refreshed"] == seen["tools"]
        for service in ("agentgateway", "backend-notes"):
            tools, search = seen[f"after {service}"]
            assert tools == seen["tools"] and "gateway.md" in search, (mode, service)

        # Bob with Claude's client: only what his group grants.
        bob_claude = Modern(stack_up, "claude-ai", bob, mode)
        assert bob_claude.run(_tools) == expected_tools(stack_up, "claude-ai", "bob") == ["read", "search"]
        _check_modern(bob_claude)

        # Alice with the restricted client: its limit, though she may write, and write refused.
        async def restricted(client: Client) -> tuple[list[str], str, str]:
            return await _tools(client), await _search(client), await _refused(client, "write")

        inspector = Modern(stack_up, "mcp-inspector", alice, mode)
        tools, search, refused = inspector.run(restricted)
        assert tools == expected_tools(stack_up, "mcp-inspector", "alice") == ["read", "search"]
        assert "gateway.md" in search and refused == "Unknown tool: write"
        _check_modern(inspector)


def _scopeless_token(deployer: Deployer, person: Person) -> OAuthToken:
    """A token of Claude's client that carries none of the server's scopes (only openid and
    offline_access), got by hand: what a client holds that signed in before the server had scopes."""
    flow = Flow(person.session, "claude-ai", "openid offline_access", resource=RESOURCE)
    code = login(flow, person.name, person.password, person.seed)
    r = flow.token(code, deployer.store_file("clients/claude-ai.secret"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert not {"notes:read", "notes:write"} & set(body["scope"].split()), body["scope"]
    return OAuthToken(
        access_token=body["access_token"],
        token_type="Bearer",
        expires_in=body["expires_in"],
        refresh_token=body.get("refresh_token"),
        scope=body["scope"],
    )


async def _step_up_outcome(client: Client) -> tuple[str, list[str]]:
    return client.protocol_version, await _tools(client)


def test_a_scopeless_token_steps_up_in_2026_07_28(stack_up: Deployer) -> None:
    """A token with none of the server's scopes is refused with the step-up challenge at tools/list;
    the SDK signs the person in again for the server's scopes and connects in 2026-07-28. Two ways to
    hold one: a token kept from before (both modes), and a sign-in that asked for no scope at all
    (mode auto: its first request, server/discover, is the one retried right after that sign-in, and
    goes through like initialize; refused there, the SDK fell back to the handshake, measured)."""
    alice = _person(stack_up, "alice")
    granted = expected_tools(stack_up, "claude-ai", "alice")
    for mode in MODES:
        held = Modern(stack_up, "claude-ai", alice, mode)
        held.storage.tokens = _scopeless_token(stack_up, alice)
        sign_ins = len(alice.authorize_urls)
        assert held.run(_step_up_outcome) == (MODERN, granted), mode
        # The first request (server/discover in mode auto) goes through; tools/list is refused, and
        # the SDK steps up there.
        answered = [(m, s) for m, _, s in held.transport.rpc]
        refused_at = answered.index(("tools/list", 403))
        assert answered[:refused_at] == ([("server/discover", 200)] if mode == "auto" else []), answered
        assert len(alice.authorize_urls) == sign_ins + 1, "no step-up sign-in"
        again = parse_qs(urlsplit(alice.authorize_urls[-1]).query)["scope"][0].split()
        assert {"notes:read", "notes:write"} <= set(again), again
        _check_modern(held)

    fresh = Modern(stack_up, "claude-ai", alice, "auto", Strategy.NONE)
    sign_ins = len(alice.authorize_urls)
    assert fresh.run(_step_up_outcome) == (MODERN, granted), fresh.transport.rpc
    first = parse_qs(urlsplit(alice.authorize_urls[sign_ins]).query).get("scope", [""])[0].split()
    assert not {"notes:read", "notes:write"} & set(first), first
    assert ("tools/list", 403) in [(m, s) for m, _, s in fresh.transport.rpc]
    assert len(alice.authorize_urls) == sign_ins + 2
    _check_modern(fresh)
