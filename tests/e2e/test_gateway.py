"""agentgateway in front of the real notes backend: Authelia's JWTs in, per-tool scopes enforced.

Every test needs the real agentgateway: where it cannot run the module skips, as one, with the
reason (never a stand-in gateway). What needs no token from Authelia (the 401 and its challenge, the
resource metadata, tokens signed with the stack's own key, the no-scope rule, the bucket) runs
without Authelia; the tests that need Authelia's tokens skip when it is left out of the stack.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from mcpgate.model import Stack, load_stack
from mcpgate.secret_crypto import key_id_for
from tests.e2e.harness import INGRESS_PORT, PROJECT_ROOT, Deployer, RunResult, skip_module_without
from tests.e2e.mcp_client import McpClient
from tests.e2e.oauth import Flow, Session, login_alice

skip_module_without("agentgateway")

HOSTNAME = "mcp-gateway.home.test"
ISSUER = f"https://{HOSTNAME}/auth"
RESOURCE = f"https://{HOSTNAME}/mcp"


def _session() -> Session:
    return Session(f"http://127.0.0.1:{INGRESS_PORT}", HOSTNAME)


def MCP(token: str | None) -> McpClient:
    return McpClient(f"http://127.0.0.1:{INGRESS_PORT}", HOSTNAME, token)


INITIALIZE = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}


@pytest.fixture(scope="module")
def gateway_up(deployer: Deployer, first_run: RunResult, gateway: None) -> Deployer:
    """The test stack with agentgateway in it (Authelia may be left out)."""
    return deployer


@pytest.fixture(scope="module")
def stack() -> Stack:
    import runpy

    ((name, data),) = runpy.run_path(str(PROJECT_ROOT / "inventory" / "local.py"))["local"]
    return load_stack(name, data["mcpgate"])


@pytest.fixture(scope="module")
def read_token(gateway_up: Deployer, authelia: None) -> str:
    deployer = gateway_up
    flow = Flow(_session(), "claude-ai", "openid offline_access notes:read", resource=RESOURCE)
    code = login_alice(flow, deployer.store_file)
    r = flow.token(code, deployer.store_file("clients/claude-ai.secret"))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def _tool_names(listing: dict[str, Any]) -> set[str]:
    return {t["name"] for t in listing["result"]["tools"]}


def test_tools_list_shows_only_the_tools_the_scope_opens(read_token: str) -> None:
    client = MCP(read_token)
    client.initialize()
    names = _tool_names(client.call("tools/list"))
    assert names in ({"search", "read"}, {"notes_search", "notes_read"}), names


def test_search_works_against_the_real_notes_backend(read_token: str) -> None:
    client = MCP(read_token)
    client.initialize()
    name = next(n for n in _tool_names(client.call("tools/list")) if n.endswith("search"))
    result = client.call("tools/call", {"name": name, "arguments": {"query": "home server"}})["result"]
    assert not result.get("isError"), result
    assert "projects/gateway.md" in json.dumps(result)


def test_write_is_refused_with_a_read_token(read_token: str) -> None:
    client = MCP(read_token)
    client.initialize()
    prefix = "notes_" if "notes_search" in _tool_names(client.call("tools/list")) else ""
    r = client.post("tools/call", {"name": f"{prefix}write", "arguments": {"path": "x.md", "content": "pwned"}})
    message = client.message(r) if r.status_code == 200 else {"error": r.status_code}
    assert "error" in message or message.get("result", {}).get("isError"), message


def _forged(deployer: Deployer, **claims: Any) -> str:
    """A token shaped like Authelia's, signed with the stack's own key unless told otherwise."""
    stack_key = RSAKey.import_key(deployer.store_file("authelia/oidc_jwks_rs256.pem"))
    key = claims.pop("_key", None) or stack_key
    kid = key_id_for(deployer.store_file("authelia/oidc_jwks_rs256.pem"))  # even a foreign key claims it
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": [RESOURCE],
        "sub": deployer.store_file("users/alice.sub"),
        "client_id": "claude-ai",
        "scp": ["notes:read"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    return jwt.encode({"alg": "RS256", "kid": kid, "typ": "at+jwt"}, body, key)


def test_a_well_formed_token_from_the_real_key_is_accepted(gateway_up: Deployer) -> None:
    # The control for the refusals below: the same construction, valid, gets through.
    r = MCP(_forged(gateway_up)).post("initialize", INITIALIZE)
    assert r.status_code == 200, r.text


def test_bad_tokens_get_401(gateway_up: Deployer) -> None:
    """Each kind of bad token (none, expired, another audience, issuer or key) is refused alike;
    every kind is tried and the ones not refused are named together."""
    deployer = gateway_up
    now = int(time.time())
    tokens = {
        "no token": None,
        "expired": _forged(deployer, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "another audience": _forged(deployer, aud=["https://other.example/mcp"]),
        "another issuer": _forged(deployer, iss="https://evil.example/auth"),
        "another key": _forged(deployer, _key=RSAKey.generate_key(2048)),
    }
    wrong = []
    for case, token in tokens.items():
        r = MCP(token).post("initialize", INITIALIZE)
        if r.status_code != 401 or not r.headers.get("www-authenticate", "").startswith("Bearer"):
            wrong.append(f"{case}: {r.status_code} {r.headers.get('www-authenticate')!r} {r.text[:200]}")
    assert not wrong, wrong


def test_without_a_token_the_challenge_points_at_the_metadata_and_the_scopes(
    gateway_up: Deployer, stack: Stack
) -> None:
    """What a client first sees (MCP authorization spec): 401 and a challenge naming the public
    resource metadata URL and the scopes to ask for."""
    r = MCP(None).post("initialize", INITIALIZE)
    assert r.status_code == 401, r.text
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("Bearer "), challenge
    assert f'resource_metadata="{stack.resource_metadata_url}"' in challenge, challenge
    # The tools' scopes, and not offline_access (MCP 2026-07-28: a server SHOULD NOT name it here).
    assert 'scope="notes:read notes:write"' in challenge, challenge


@pytest.mark.parametrize("path", ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"])
def test_the_gateway_serves_the_resource_metadata(gateway_up: Deployer, stack: Stack, path: str) -> None:
    """RFC 9728 metadata from the real gateway through the ingress, without a token: the public
    resource, Authelia as its authorization server, the inventory's scopes, bearer in the header."""
    r = _session().request("GET", path)
    assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:300]}"
    doc = r.json()
    assert doc["resource"] == RESOURCE
    assert doc["authorization_servers"] == [ISSUER]
    assert doc["scopes_supported"] == stack.scopes_supported == ["notes:read", "notes:write"]  # no offline_access
    assert doc["bearer_methods_supported"] == ["header"]


def test_a_token_with_none_of_the_servers_scopes_gets_a_step_up_challenge(gateway_up: Deployer, stack: Stack) -> None:
    """The no-scope rule: a valid token carrying only Authelia's standard scopes may initialize (or, in
    2026-07-28, discover), but anything else is refused with 403, which the ingress turns into a
    step-up challenge."""
    client = MCP(_forged(gateway_up, scp=["openid", "offline_access"]))
    client.initialize()
    r = client.post("tools/list")
    assert r.status_code == 403, f"{r.status_code} {r.text[:300]}"
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="insufficient_scope", '), challenge
    assert f'scope="{" ".join(stack.scopes_supported)}"' in challenge, challenge
    assert f'resource_metadata="{stack.resource_metadata_url}"' in challenge, challenge
    # 2026-07-28's first request, server/discover, goes through like initialize (the MCP SDK retries
    # it right after a sign-in; its answer lists no tool); the next request is refused the same way.
    modern = MCP(_forged(gateway_up, scp=["openid", "offline_access"]))
    modern.headers.update({"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"})
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    discovered = modern.call("server/discover", {"_meta": meta})
    assert "2026-07-28" in discovered["result"]["supportedVersions"], discovered
    modern.headers["Mcp-Method"] = "tools/list"
    r = modern.post("tools/list", {"_meta": meta})
    assert r.status_code == 403 and "insufficient_scope" in r.headers["www-authenticate"], r.text[:300]
    # The control: one of the server's scopes, and the same request is answered.
    allowed = MCP(_forged(gateway_up, scp=["openid", "notes:read"]))
    allowed.initialize()
    assert _tool_names(allowed.call("tools/list")) in ({"search", "read"}, {"notes_search", "notes_read"})


def test_a_flood_of_mcp_requests_is_cut_off_by_the_bucket(gateway_up: Deployer) -> None:
    """agentgateway's /mcp bucket (rate_limits: bursts of 200, 20 a second): 400 requests from 16
    clients at once get some 429s; the bucket then refills for the tests after this one. Bounded:
    400 requests, one keep-alive connection per client, loopback only. The token is a valid one
    signed with the stack's key: the bucket is the gateway's, whoever issued the token."""
    from concurrent.futures import ThreadPoolExecutor

    token = _forged(gateway_up, exp=int(time.time()) + 3600)
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}

    def burst(_: int) -> list[int]:
        with httpx.Client(headers={**MCP(token).headers}, timeout=30) as client:
            url = f"http://127.0.0.1:{INGRESS_PORT}/mcp"
            return [client.post(url, json=body).status_code for _ in range(25)]

    with ThreadPoolExecutor(16) as pool:
        codes = [c for batch in pool.map(burst, range(16)) for c in batch]
    limited = codes.count(429)
    print(f"\n/mcp flood: {len(codes)} requests, {limited} answered 429")
    assert limited > 0, f"no request was limited: {sorted(set(codes))}"
    assert set(codes) <= {200, 400, 404, 429}, sorted(set(codes))
    time.sleep(11)  # 200 tokens at 20 a second
    assert MCP(token).post("ping").status_code != 429
