"""agentgateway in front of the real notes backend: Authelia's JWTs in, per-tool scopes enforced."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from mcpgate.secrets import key_id_for
from tests.e2e.harness import INGRESS_PORT, Deployer, RunResult
from tests.e2e.mcp_client import McpClient
from tests.e2e.oauth import Flow, Session, login_alice

HOSTNAME = "mcp-gateway.home.test"
ISSUER = f"https://{HOSTNAME}/auth"
RESOURCE = f"https://{HOSTNAME}/mcp"


def _session() -> Session:
    return Session(f"http://127.0.0.1:{INGRESS_PORT}", HOSTNAME)


def MCP(token: str | None) -> McpClient:
    return McpClient(f"http://127.0.0.1:{INGRESS_PORT}", HOSTNAME, token)


@pytest.fixture(scope="module")
def read_token(deployer: Deployer, first_run: RunResult, gateway: None) -> str:
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


def test_a_well_formed_token_from_the_real_key_is_accepted(deployer: Deployer, read_token: str) -> None:
    # The control for the refusals below: the same construction, valid, gets through.
    r = MCP(_forged(deployer)).post(
        "initialize",
        {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}},
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "case",
    ["no token", "expired", "another audience", "another issuer", "another key"],
)
def test_bad_tokens_get_401(deployer: Deployer, read_token: str, case: str) -> None:
    now = int(time.time())
    token = {
        "no token": None,
        "expired": lambda: _forged(deployer, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "another audience": lambda: _forged(deployer, aud=["https://other.example/mcp"]),
        "another issuer": lambda: _forged(deployer, iss="https://evil.example/auth"),
        "another key": lambda: _forged(deployer, _key=RSAKey.generate_key(2048)),
    }[case]
    r = MCP(token() if token else None).post(
        "initialize",
        {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}},
    )
    assert r.status_code == 401, f"{case}: {r.status_code} {r.text[:200]}"
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_a_flood_of_mcp_requests_is_cut_off_by_the_bucket(deployer: Deployer, read_token: str) -> None:
    """agentgateway's /mcp bucket (rate_limits: bursts of 200, 20 a second): 400 requests from 16
    clients at once get some 429s; the bucket then refills for the tests after this one. Bounded:
    400 requests, one keep-alive connection per client, loopback only."""
    from concurrent.futures import ThreadPoolExecutor

    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}

    def burst(_: int) -> list[int]:
        with httpx.Client(headers={**MCP(read_token).headers}, timeout=30) as client:
            url = f"http://127.0.0.1:{INGRESS_PORT}/mcp"
            return [client.post(url, json=body).status_code for _ in range(25)]

    with ThreadPoolExecutor(16) as pool:
        codes = [c for batch in pool.map(burst, range(16)) for c in batch]
    limited = codes.count(429)
    print(f"\n/mcp flood: {len(codes)} requests, {limited} answered 429")
    assert limited > 0, f"no request was limited: {sorted(set(codes))}"
    assert set(codes) <= {200, 400, 404, 429}, sorted(set(codes))
    time.sleep(11)  # 200 tokens at 20 a second
    assert MCP(read_token).post("ping").status_code != 429
