"""The OAuth 2.1 flow against the real Authelia, through the ingress, the way Claude.ai drives it.

Every test here talks to Authelia: where it could not be built the module skips, as one, with the
reason (tests/e2e/harness.py, ``skip_module_without``).
"""

from __future__ import annotations

import os
import secrets as pysecrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet, RSAKey

from tests.e2e.harness import (
    INGRESS_PORT,
    LOCAL_IMAGES,
    PROJECT_ROOT,
    Deployer,
    RunResult,
    authelia_unavailable,
    skip_module_without,
)
from tests.e2e.oauth import CLAUDE_CALLBACK, Flow, Session, fresh_totp, jwt_parts, login_alice, token_request

skip_module_without("authelia")

HOSTNAME = "mcp-gateway.home.test"
ISSUER = f"https://{HOSTNAME}/auth"
RESOURCE = f"https://{HOSTNAME}/mcp"
SCOPE = "openid offline_access notes:read notes:write"


def session(**headers: str) -> Session:
    """A browser of its own, at an address of its own (as tailscaled names a Funnel client): Authelia
    bans addresses after failed sign-ins, and the refusal tests must not add up to a ban."""
    headers.setdefault("X-Forwarded-For", f"192.0.2.{pysecrets.randbelow(250) + 1}")
    return Session(f"http://127.0.0.1:{INGRESS_PORT}", HOSTNAME, extra_headers=dict(headers))


def secret(deployer: Deployer, name: str) -> str:
    return deployer.store_file(name)


def do_login(deployer: Deployer, flow: Flow) -> str:
    return login_alice(flow, deployer.store_file)


def jwks() -> KeySet:
    r = session().request("GET", "/auth/jwks.json")
    assert r.status_code == 200
    return KeySet.import_key_set(r.json())


# --- Authelia's own validator on what mcpgate renders ---------------------------------------------


def _validate(render_dir: Path) -> subprocess.CompletedProcess[str]:
    """`authelia config validate` in the pinned image, with the rendered files mounted as the deploy does."""
    from mcpgate.container_specs import authelia_spec
    from mcpgate.model import load_stack

    env = authelia_spec(load_stack("x", _local_data())).env
    args = ["docker", "run", "--rm", "--network", "none"]
    for k, v in env.items():
        args += ["-e", f"{k}={v}"]
    from mcpgate.layout import AUTHELIA

    # Every folder the deploy mounts (Authelia checks that server.asset_path exists).
    for role, target in AUTHELIA.mounts.items():
        args += ["-v", f"{render_dir}/{AUTHELIA.host_dir(role)}:{target}:ro"]
    args += ["--entrypoint", "/app/authelia", LOCAL_IMAGES["authelia"], "config", "validate", "--config"]
    args.append("/config/configuration.yml")
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def _local_data() -> dict:
    import runpy

    return runpy.run_path(str(PROJECT_ROOT / "inventory" / "local.py"))["local"][0][1]["mcpgate"]


@pytest.fixture(scope="module")
def authelia_image() -> str:
    reason = authelia_unavailable()
    if reason:
        pytest.skip(reason)
    return LOCAL_IMAGES["authelia"]


def _render(inventory: str, tmp_path: Path) -> Path:
    """``mcpgate render`` as a user runs it; the host's folder, readable by the validator's uid."""
    env = {**os.environ, "MCPGATE_SECRETS_DIR": str(tmp_path / "secrets")}

    def mcpgate(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mcpgate", *args], capture_output=True, text=True, cwd=PROJECT_ROOT, env=env,
            input=stdin,
        )  # fmt: skip

    for name in ("home-assistant-token",) if inventory.endswith("home.py") else ():
        assert mcpgate("secrets", "set", inventory, name, stdin="test-token").returncode == 0
    r = mcpgate("render", inventory, "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    # render makes --out and the host's folder private (0700) and marks --out as its own.
    (host_dir,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    for p in [tmp_path / "out", host_dir, *host_dir.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o044 | (0o011 if p.is_dir() else 0))
    return host_dir


def test_authelia_validates_every_rendered_config(authelia_image: str, tmp_path: Path) -> None:
    for inventory in ("inventory/home.py", "inventory/local.py"):
        result = _validate(_render(inventory, tmp_path / Path(inventory).stem))
        assert result.returncode == 0, f"{inventory}: {result.stdout}{result.stderr}"
        assert "Configuration parsed and loaded successfully without errors" in result.stdout + result.stderr, inventory


def test_authelia_rejects_a_broken_config(authelia_image: str, tmp_path: Path) -> None:
    host_dir = _render("inventory/local.py", tmp_path)
    config = host_dir / "authelia/config/configuration.yml"
    text = config.read_text()
    assert "access_token_signed_response_alg: RS256" in text
    config.write_text(
        text.replace("access_token_signed_response_alg: RS256", "access_token_signed_response_alg: RS257")
    )
    result = _validate(host_dir)
    assert result.returncode != 0
    assert "RS257" in result.stdout + result.stderr


# --- discovery through the ingress -----------------------------------------------------------------


# Where clients look for the authorization server's metadata (RFC 8414 and OpenID Discovery, with and
# without the issuer's path): every one answers Authelia's document for the public issuer.
DISCOVERY_PATHS = (
    "/.well-known/oauth-authorization-server/auth",
    "/.well-known/openid-configuration/auth",
    "/auth/.well-known/openid-configuration",
    "/auth/.well-known/oauth-authorization-server",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
)


def test_discovery_at_every_well_known_url(first_run: RunResult) -> None:
    for path in DISCOVERY_PATHS:
        r = session().request("GET", path)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:300]}"
        doc = r.json()
        assert doc["issuer"] == ISSUER, path
        assert "S256" in doc["code_challenge_methods_supported"], path
        assert doc["jwks_uri"] == f"{ISSUER}/jwks.json", path
        assert doc["token_endpoint"] == f"{ISSUER}/api/oidc/token", path


def test_client_sent_forwarded_headers_cannot_change_the_issuer(first_run: RunResult) -> None:
    for headers in (
        {"X-Forwarded-Host": "evil.example"},
        {"X-Forwarded-Proto": "http"},
        {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http", "Forwarded": "host=evil.example;proto=http"},
    ):
        r = session(**headers).request("GET", "/.well-known/openid-configuration")
        assert r.status_code == 200, f"{headers}: {r.text[:300]}"
        assert r.json()["issuer"] == ISSUER, headers


# --- the flow --------------------------------------------------------------------------------------


def _check_access_token(token: str, scopes: list[str]) -> dict:
    header, claims = jwt_parts(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    keys = jwks()
    assert header["kid"] in [k.kid for k in keys.keys]
    verified = jwt.decode(token, keys, algorithms=["RS256"])  # signature checked here
    assert verified.claims["iss"] == ISSUER
    assert RESOURCE in verified.claims["aud"]
    assert isinstance(verified.claims["scp"], list)
    assert sorted(verified.claims["scp"]) == sorted(scopes)
    assert verified.claims["client_id"] == "claude-ai"
    for claim in ("sub", "exp", "iat", "jti"):
        assert claim in verified.claims
    assert claims == verified.claims
    return verified.claims


def test_full_flow_as_claude_does_it(deployer: Deployer, first_run: RunResult) -> None:
    flow = Flow(session(), "claude-ai", SCOPE, resource=RESOURCE)
    code = do_login(deployer, flow)
    r = flow.token(code, secret(deployer, "clients/claude-ai.secret"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"].lower() == "bearer"
    claims = _check_access_token(body["access_token"], SCOPE.split())
    assert claims["sub"] == secret(deployer, "users/alice.sub")
    # Claude's client asks for offline_access itself (the server's challenge no longer names it): it
    # gets a refresh token, and an access token of its own lifespan (8 hours: Claude refreshes late).
    assert body.get("refresh_token"), body.keys()
    assert claims["exp"] - claims["iat"] == 8 * 3600, claims
    assert abs(body["expires_in"] - 8 * 3600) <= 5, body["expires_in"]  # counted from when it answered

    # The refresh token works and yields another valid JWT for the same resource.
    refresh = token_request(
        session(),
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "resource": RESOURCE},
        "claude-ai",
        secret(deployer, "clients/claude-ai.secret"),
        how="post",
    )
    assert refresh.status_code == 200, refresh.text
    refreshed = _check_access_token(refresh.json()["access_token"], SCOPE.split())
    assert refreshed["exp"] - refreshed["iat"] == 8 * 3600  # the client's lifespan on a refresh too


def test_without_resource_the_audience_is_still_the_mcp_endpoint(deployer: Deployer, first_run: RunResult) -> None:
    flow = Flow(session(), "claude-ai", "openid notes:read", resource=None)
    r = flow.token(do_login(deployer, flow), secret(deployer, "clients/claude-ai.secret"))
    assert r.status_code == 200, r.text
    _, claims = jwt_parts(r.json()["access_token"])
    assert claims["aud"] == [RESOURCE]
    assert claims["scp"] == ["openid", "notes:read"]


def test_a_token_signed_by_another_key_does_not_verify(first_run: RunResult) -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": jwks().keys[0].kid})
    forged = jwt.encode({"alg": "RS256", "kid": other.kid, "typ": "at+jwt"}, {"iss": ISSUER}, other)
    with pytest.raises(BadSignatureError):
        jwt.decode(forged, jwks(), algorithms=["RS256"])


# --- refusals --------------------------------------------------------------------------------------


def _started(deployer: Deployer, **kw: str) -> Flow:
    flow = Flow(session(), "claude-ai", SCOPE, resource=RESOURCE, **kw)
    r = flow.authorize()
    assert r.status_code in (302, 303) and flow.flow_id, r.text
    return flow


def test_wrong_password_is_refused(deployer: Deployer, first_run: RunResult) -> None:
    flow = _started(deployer)
    r = flow.first_factor("alice", "not-the-password")
    assert r.json()["status"] == "KO"


def test_wrong_totp_is_refused(deployer: Deployer, first_run: RunResult) -> None:
    flow = _started(deployer)
    assert flow.first_factor("alice", secret(deployer, "users/alice.password")).json()["status"] == "OK"
    good = fresh_totp(secret(deployer, "users/alice.totp"))
    wrong = f"{(int(good) + 500_000) % 1_000_000:06d}"
    assert flow.second_factor(wrong).json()["status"] == "KO"


def test_a_replayed_totp_code_is_refused(deployer: Deployer, first_run: RunResult) -> None:
    seed = secret(deployer, "users/alice.totp")
    code = fresh_totp(seed)
    first = _started(deployer)
    assert first.first_factor("alice", secret(deployer, "users/alice.password")).json()["status"] == "OK"
    assert first.second_factor(code).json()["status"] == "OK"
    again = _started(deployer)
    again.session = session()  # a new browser: it must sign in again
    assert again.authorize().status_code in (302, 303)
    assert again.first_factor("alice", secret(deployer, "users/alice.password")).json()["status"] == "OK"
    assert again.second_factor(code).json()["status"] == "KO"


def test_a_pkce_verifier_that_does_not_match_is_refused(deployer: Deployer, first_run: RunResult) -> None:
    flow = Flow(session(), "claude-ai", SCOPE, resource=RESOURCE)
    code = do_login(deployer, flow)
    r = flow.token(code, secret(deployer, "clients/claude-ai.secret"), code_verifier="x" * 64)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"


def test_an_unregistered_redirect_uri_is_refused(deployer: Deployer, first_run: RunResult) -> None:
    flow = Flow(session(), "claude-ai", SCOPE, resource=RESOURCE, redirect_uri="https://evil.example/callback")
    r = flow.authorize()
    location = r.headers.get("location", "")
    # Never sent to the unregistered URI: Authelia shows its own error page instead.
    assert location.startswith(f"{ISSUER}/consent/completion?"), location
    qs = parse_qs(urlsplit(location).query)
    assert qs["error"] == ["invalid_request"]
    assert "redirect_uri" in qs["error_hint"][0]


def test_a_resource_outside_the_audience_is_refused(deployer: Deployer, first_run: RunResult) -> None:
    flow = Flow(session(), "claude-ai", SCOPE, resource="https://other.example/mcp")
    r = flow.authorize()
    location = r.headers.get("location", "")
    assert location.startswith(CLAUDE_CALLBACK), location
    qs = parse_qs(urlsplit(location).query)
    assert qs["error"] == ["invalid_target"]
    assert qs["state"] == [flow.state]
    assert "code" not in qs


def test_a_client_secret_sent_the_wrong_way_is_refused(deployer: Deployer, first_run: RunResult) -> None:
    flow = Flow(session(), "claude-ai", SCOPE, resource=RESOURCE)
    code = do_login(deployer, flow)
    r = flow.token(code, secret(deployer, "clients/claude-ai.secret"), how="basic")
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client"


def test_the_consent_screen_names_a_limited_clients_limit(deployer: Deployer, first_run: RunResult) -> None:
    """The restricted client may ask for every scope, so the consent screen must say what it can do."""
    flow = Flow(
        session(), "mcp-inspector", "notes:read notes:write offline_access", RESOURCE,
        redirect_uri="http://localhost:6274/oauth/callback",
    )  # fmt: skip
    assert flow.authorize(prompt="consent").status_code in (302, 303)
    assert flow.first_factor("alice", secret(deployer, "users/alice.password")).json()["status"] == "OK"
    r = flow.second_factor(fresh_totp(secret(deployer, "users/alice.totp")))
    redirect = r.json()["data"]["redirect"]
    for _ in range(5):
        parts = urlsplit(redirect)
        if "/consent" in parts.path:
            break
        redirect = flow.session.request("GET", f"{parts.path}?{parts.query}").headers["location"]
    flow_id = parse_qs(urlsplit(redirect).query)["flow_id"][0]
    data = flow.session.request("GET", f"/auth/api/oidc/consent?flow_id={flow_id}").json()["data"]
    assert data["client_id"] == "mcp-inspector"
    assert data["client_description"] == "MCP Inspector (tools limited to: notes:read)"
    assert set(data["scopes"]) == {"notes:read", "notes:write", "offline_access"}


def test_every_client_may_ask_for_what_the_servers_advertise(first_run: RunResult) -> None:
    """No scope selection a client may use is refused before the sign-in page: the authorization
    server's whole list, no scope at all, a leading space, a double space."""
    for scope in ("offline_access openid profile email address phone groups", "", " offline_access",
                  "notes:read  notes:write"):  # fmt: skip
        flow = Flow(session(), "claude-ai", scope, RESOURCE)
        r = flow.authorize(**({} if scope else {"scope": ""}))
        assert r.status_code in (302, 303), f"{scope!r}: {r.text[:300]}"
        assert "error=" not in r.headers["location"], (scope, r.headers["location"])
        assert flow.flow_id, (scope, r.headers["location"])


def test_failed_sign_ins_ban_the_address_not_the_person(deployer: Deployer, first_run: RunResult) -> None:
    """Authelia counts failures per client address, which the ingress passes on from tailscaled's
    X-Forwarded-For: an attacker's address is banned after rate_limits.sign_in_failures (5), and the
    person still signs in from their own address. Bounded: 7 sign-in attempts."""
    attacker = f"198.51.100.{pysecrets.randbelow(250) + 1}"
    owner = f"203.0.113.{pysecrets.randbelow(250) + 1}"
    password = secret(deployer, "users/alice.password")

    def attempt(address: str, pw: str) -> str:
        flow = Flow(session(**{"X-Forwarded-For": address}), "claude-ai", SCOPE, resource=RESOURCE)
        assert flow.authorize().status_code in (302, 303)
        return flow.first_factor("alice", pw).json()["status"]

    for _ in range(5):
        assert attempt(attacker, "not-the-password") == "KO"
    assert attempt(attacker, password) == "KO", "the attacker's address should now be banned"
    assert attempt(owner, password) == "OK", "alice is locked out by someone else's failures"
