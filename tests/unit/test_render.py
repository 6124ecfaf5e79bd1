"""Rendering: deterministic bytes, the right owners and modes, and configs that get the hard parts right."""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcpgate.layout import AUTHELIA_SECRET_ENV
from mcpgate.model import Stack, load_stack
from mcpgate.render import Rendered, render_stack
from mcpgate.render_services import DISCOVERY_ALIASES
from mcpgate.secrets import SecretStore, StackSecrets
from mcpgate.validate import authelia_config, reference_dir, validate_rendered

REF = reference_dir()
needs_reference = pytest.mark.skipif(
    REF is None,
    reason="upstream schemas not found: no shared/reference beside or above the checkout, MCPGATE_REFERENCE_DIR unset",
)


@pytest.fixture
def rendered(stack: Stack, secrets: StackSecrets) -> Rendered:
    return render_stack(stack, secrets)


def _yaml(rendered: Rendered, path: str) -> Any:
    return yaml.safe_load(rendered.file(path).content)


def test_rendering_twice_is_byte_identical(stack: Stack, secrets: StackSecrets, store: SecretStore) -> None:
    first = render_stack(stack, secrets)
    second = render_stack(stack, StackSecrets(SecretStore(store.root), stack))
    assert [(f.path, f.content, f.mode, f.owner) for f in first.files] == [
        (f.path, f.content, f.mode, f.owner) for f in second.files
    ]
    assert first.dirs == second.dirs
    assert [b.image for b in first.builds] == [b.image for b in second.builds]


def test_secret_files_are_0600_in_0700_folders(rendered: Rendered) -> None:
    dirs = {d.path: d for d in rendered.dirs}
    for f in rendered.files:
        if f.secret:
            assert f.mode == 0o600, f.path
            parent = f.path.rsplit("/", 1)[0]
            assert dirs[parent].mode == 0o700, parent
            assert dirs[parent].owner == f.owner, f.path


def test_no_secret_value_appears_in_a_non_secret_file(rendered: Rendered, secrets: StackSecrets) -> None:
    values = secrets.values_that_must_not_leak()
    assert "ha-long-lived-token" in values and secrets.client_secret("claude-ai") in values
    for f in rendered.files:
        if not f.secret:
            for v in values:
                assert v.encode() not in f.content, f.path


def test_authelia_configuration(rendered: Rendered, stack: Stack, secrets: StackSecrets) -> None:
    config = authelia_config(rendered)
    assert config["server"]["address"] == "tcp://0.0.0.0:9091/auth"
    assert config["server"]["disable_healthcheck"] is True  # read-only root filesystem
    cookie = config["session"]["cookies"][0]
    assert cookie == {"domain": stack.hostname, "authelia_url": f"https://{stack.hostname}/auth"}
    assert config["session"]["redis"] == {"host": "redis", "port": 6379}
    assert config["storage"] == {"local": {"path": "/data/db.sqlite3"}}
    assert "filesystem" in config["notifier"]
    assert config["authentication_backend"]["file"]["password"]["argon2"]["variant"] == "argon2id"
    assert config["access_control"] == {
        "default_policy": "deny",
        "rules": [{"domain": stack.hostname, "policy": "two_factor"}],
    }
    oidc = config["identity_providers"]["oidc"]
    assert set(oidc["scopes"]) == set(stack.scopes)
    (jwk,) = oidc["jwks"]
    assert jwk["algorithm"] == "RS256"
    # The template filter put the store's signing key there, whole.
    assert jwk["key"].strip() == secrets.oidc_private_key_pem().strip()
    (client,) = oidc["clients"]
    assert client["client_id"] == "claude-ai"
    assert client["client_secret"].startswith("$pbkdf2-sha512$")
    assert client["public"] is False
    assert client["token_endpoint_auth_method"] == "client_secret_post"
    assert client["redirect_uris"] == [
        "https://claude.ai/api/mcp/auth_callback",
        "https://claude.com/api/mcp/auth_callback",
    ]
    assert client["require_pkce"] is True and client["pkce_challenge_method"] == "S256"
    assert client["access_token_signed_response_alg"] == "RS256"
    assert client["audience"] == [f"https://{stack.hostname}/mcp"]
    assert client["requested_audience_mode"] == "implicit"
    assert client["grant_types"] == ["authorization_code", "refresh_token"]
    assert "offline_access" in client["scopes"] and "openid" in client["scopes"]
    assert set(stack.scopes) <= set(client["scopes"])
    assert client["authorization_policy"] == "two_factor"
    # Claude's client refreshes late: its access tokens live 8 hours (the stack's 1 hour otherwise).
    assert oidc["lifespans"]["access_token"] == "1h" and oidc["lifespans"]["refresh_token"] == "30d"
    assert client["lifespan"] == "claude-ai"
    assert oidc["lifespans"]["custom"] == {"claude-ai": {"access_token": "8h", "refresh_token": "30d"}}


def test_each_client_gets_its_own_token_lifespans(stack_data: dict[str, Any], tmp_path: Path) -> None:
    """A client's own lifespans become an Authelia custom lifespan named after it; a client with
    the stack's own gets none (Authelia's global lifespans apply)."""
    stack_data["clients"][0]["access_token_lifespan"] = "1 day"
    stack_data["clients"][0]["refresh_token_lifespan"] = 7776000
    stack_data["clients"].append(
        {"id": "cli", "name": "CLI", "redirect_uris": ["http://127.0.0.1:7777/cb"], "auth_method": "none"}
    )
    stack_data["clients"].append(
        {
            "id": "short",
            "name": "Short",
            "redirect_uris": ["http://127.0.0.1:7778/cb"],
            "auth_method": "none",
            "access_token_lifespan": "5 minutes",
        }
    )
    stack = load_stack("gateway.lan", stack_data)
    store = SecretStore.for_host(tmp_path / "secrets", "gateway.lan")
    store.set("tokens/home-assistant-token", "x")
    oidc = authelia_config(render_stack(stack, StackSecrets(store, stack)))["identity_providers"]["oidc"]
    assert oidc["lifespans"]["custom"] == {
        "claude-ai": {"access_token": "1 day", "refresh_token": 7776000},
        "short": {"access_token": "5 minutes", "refresh_token": "30d"},
    }
    by_id = {c["client_id"]: c for c in oidc["clients"]}
    assert by_id["claude-ai"]["lifespan"] == "claude-ai" and by_id["short"]["lifespan"] == "short"
    assert "lifespan" not in by_id["cli"]
    if REF is not None:
        validate_rendered(render_stack(stack, StackSecrets(store, stack)), REF)


def test_authelia_secrets_are_files_never_inline(rendered: Rendered) -> None:
    text = rendered.file("authelia/config/configuration.yml").content.decode()
    for key in ("secret:", "password:", "encryption_key:", "hmac_secret:", "jwt_secret:"):
        assert not re.search(rf"^[ \t]*{key}[ \t]*\S", text, re.M), key
    assert '{{ secret "/secrets/oidc_jwks_rs256.pem" | mindent 10 "|" | msquote }}' in text
    names = {f.path.rsplit("/", 1)[1] for f in rendered.files if f.path.startswith("authelia/secrets/")}
    assert names == {*AUTHELIA_SECRET_ENV, "oidc_jwks_rs256.pem"}


def test_users_database_is_merged_on_the_host_not_rendered(rendered: Rendered, secrets: StackSecrets) -> None:
    users = rendered.authelia_users
    assert users["alice"]["password"] == secrets.user_password_hash("alice")
    assert users["alice"]["displayname"] == "Alice"
    assert not [f.path for f in rendered.files if f.path.endswith("users.yml")]
    config = authelia_config(rendered)
    assert config["authentication_backend"]["file"] == {
        "path": "/data/users.yml",
        "watch": True,
        "password": config["authentication_backend"]["file"]["password"],
    }
    assert config["authentication_backend"]["password_change"] == {"disable": False}
    assert config["identity_validation"]["elevated_session"] == {
        "require_second_factor": True,
        "skip_second_factor": True,
    }


def test_totp_import_file_carries_the_seed_as_authelia_stores_it(rendered: Rendered, secrets: StackSecrets) -> None:
    (entry,) = _yaml(rendered, "authelia/identity/totp.yml")["totp_configurations"]
    assert entry["username"] == "alice"
    assert (entry["algorithm"], entry["digits"], entry["period"]) == ("SHA1", 6, 30)
    assert base64.b64decode(entry["secret"]).decode() == secrets.user_totp_seed("alice")


def test_agentgateway_configuration(rendered: Rendered, stack: Stack) -> None:
    config = _yaml(rendered, "agentgateway/config/config.yaml")
    (bind,) = config["binds"]
    assert bind["port"] == 3000
    (route,) = bind["listeners"][0]["routes"]
    paths = [m["path"]["exact"] for m in route["matches"]]
    assert "/mcp" in paths and "/.well-known/oauth-protected-resource/mcp" in paths
    authn = route["policies"]["mcpAuthentication"]
    assert authn["issuer"] == stack.issuer
    assert authn["audiences"] == [stack.resource]
    assert authn["jwks"] == {"file": "/config/jwks.json"}
    assert authn["resourceMetadata"]["resource"] == stack.resource
    advertised = authn["resourceMetadata"]["scopesSupported"]
    assert advertised == ["notes:read", "notes:write", "home:control"]  # no offline_access (MCP 2026-07-28)
    assert "jwtAuth" not in route["policies"]
    targets = {t["name"]: t for t in route["backends"][0]["mcp"]["targets"]}
    assert targets["notes"]["mcp"]["host"] == "http://notes:8080/mcp"
    ha = targets["home-assistant"]
    assert ha["mcp"]["host"] == "http://homeassistant.lan:8123/api/mcp"
    assert ha["policies"]["backendAuth"] == {"key": {"file": "/secrets/home-assistant-token"}}
    rules = route["policies"]["mcpAuthorization"]["rules"]
    assert len(rules) == 3 and all("jwt.scp.exists(" in r["allow"] for r in rules)
    # iss and aud are checked only when present unless required: require them.
    assert set(authn["jwtValidationOptions"]["requiredClaims"]) == {"exp", "iss", "aud", "sub"}


def test_the_gateway_passes_on_only_the_mcp_headers_and_marks_what_got_past_its_policies(rendered: Rendered) -> None:
    """Issue 22: a backend sees an allow-list of a client's headers (agentgateway replaces the
    header set with those; tests/e2e/test_gateway_chain.py proves it on the real gateway), and every
    answer past the route's policies carries the mark the ingress tells the gateway's denial by."""
    from mcpgate.render_services import GATEWAY_PASSED_HEADER, backend_headers_expression

    (route,) = _yaml(rendered, "agentgateway/config/config.yaml")["binds"][0]["listeners"][0]["routes"]
    expression = route["policies"]["transformations"]["request"]["replace"]
    assert expression == backend_headers_expression()
    assert expression.startswith("request.headers.filterKeys(k, k in [")
    for needed in ("accept", "content-type", "mcp-session-id", "mcp-protocol-version", "last-event-id", "mcp-method"):
        assert f'"{needed}"' in expression
    assert 'k.startsWith("mcp-param-")' in expression
    for never in ("authorization", "cookie", "user-agent", "tailscale", "remote-user", "x-client-ip", "host"):
        assert f'"{never}' not in expression
    assert route["policies"]["responseHeaderModifier"] == {"set": {GATEWAY_PASSED_HEADER: "1"}}


def test_gateway_jwks_is_the_public_half_of_authelias_key(rendered: Rendered, secrets: StackSecrets) -> None:
    from joserfc import jwt
    from joserfc.jwk import KeySet, RSAKey

    jwks = json.loads(rendered.file("agentgateway/config/jwks.json").content)
    (jwk,) = jwks["keys"]
    assert "d" not in jwk and "p" not in jwk  # public only
    assert jwk["kid"] == secrets.oidc_key_id() and jwk["alg"] == "RS256" and jwk["use"] == "sig"
    # A token signed with Authelia's private key verifies with the rendered public set.
    private = RSAKey.import_key(secrets.oidc_private_key_pem())
    token = jwt.encode({"alg": "RS256", "kid": jwk["kid"]}, {"iss": "x"}, private)
    assert jwt.decode(token, KeySet.import_key_set(jwks)).claims == {"iss": "x"}


def test_backend_token_file_is_the_stored_token(rendered: Rendered) -> None:
    f = rendered.file("agentgateway/secrets/home-assistant-token")
    assert f.content == b"ha-long-lived-token" and f.secret and f.mode == 0o600


@pytest.fixture(scope="module")
def ingress(tmp_path_factory: pytest.TempPathFactory, signing_key_pem: str) -> tuple[Stack, str]:
    """The stack and its rendered Caddyfile, rendered once for the ingress tests."""
    from tests.conftest import BASE_STACK

    stack = load_stack("gateway.lan", copy.deepcopy(BASE_STACK))
    store = SecretStore.for_host(tmp_path_factory.mktemp("ingress") / "secrets", "gateway.lan")
    store.set("authelia/oidc_jwks_rs256.pem", signing_key_pem)
    store.set("tokens/home-assistant-token", "ha-long-lived-token")
    rendered = render_stack(stack, StackSecrets(store, stack))
    return stack, rendered.file("ingress/config/Caddyfile").content.decode()


def _snippet(caddy: str, name: str) -> str:
    return caddy.split(f"\n({name}) {{\n", 1)[1].split("\n}\n", 1)[0]


def test_ingress_sets_forwarded_headers_itself(ingress: tuple[Stack, str]) -> None:
    stack, caddy = ingress
    headers = _snippet(caddy, "upstream_headers")
    assert f"header_up Host {stack.hostname}" in headers
    assert f"header_up X-Forwarded-Host {stack.hostname}" in headers
    assert "header_up X-Forwarded-Proto https" in headers
    # Only X-Forwarded-For is believed, and only from the edge network's gateway (tailscaled's side
    # of the published port); Proto and Host are always the ingress' own.
    assert f"trusted_proxies {stack.edge_gateway_address}/32" in headers
    assert caddy.count(f"trusted_proxies {stack.edge_gateway_address}/32") == 1
    assert "uri strip_prefix" not in caddy and "handle_path" not in caddy  # /auth is never stripped
    assert "respond 404" in caddy
    assert "reverse_proxy agentgateway:3000" in caddy
    assert caddy.count("import upstream_headers") == 3 + len(DISCOVERY_ALIASES)


def test_ingress_drops_every_client_forwarding_header(ingress: tuple[Stack, str]) -> None:
    """Issue 11, finding 5: each header the fuzz checks for is deleted on the way up (one of them
    by the X-Original-* wildcard); X-Forwarded-For stays Caddy's own."""
    from tests.e2e.ingress_fuzz import FORBIDDEN_HEADERS, GATEWAY_FORBIDDEN_HEADERS

    caddy = ingress[1]
    deleted = re.findall(r"^\theader_up -(\S+)$", _snippet(caddy, "upstream_headers"), re.M)
    for name in FORBIDDEN_HEADERS:
        assert any(re.fullmatch(d.replace("*", ".*"), name, re.I) for d in deleted), name
    assert not any(re.fullmatch(d.replace("*", ".*"), "X-Forwarded-For", re.I) for d in deleted)
    gateway = re.findall(r"^\theader_up -(\S+)$", _snippet(caddy, "to_gateway"), re.M)
    assert set(GATEWAY_FORBIDDEN_HEADERS) <= set(gateway)
    assert "protocols h1\n" in caddy  # no h2c


def test_ingress_rewrites_only_an_unmarked_403_and_strips_the_mark(ingress: tuple[Stack, str]) -> None:
    """Issue 22: only agentgateway's own denial, the one answer without its mark, becomes a step-up
    (a backend's 403 of the same text and length does not); no client sees the mark."""
    from mcpgate.render_services import GATEWAY_DENIAL, GATEWAY_PASSED_HEADER

    to_gateway = _snippet(ingress[1], "to_gateway")
    matcher = to_gateway.split("@insufficient_scope {\n", 1)[1].split("\n\t}", 1)[0]
    assert [line.strip() for line in matcher.splitlines()] == [
        "status 403",
        "header Content-Type text/plain",
        f"header Content-Length {len(GATEWAY_DENIAL)}",
        f"header !{GATEWAY_PASSED_HEADER}",
    ]
    assert f"\theader_down -{GATEWAY_PASSED_HEADER}\n" in to_gateway
    assert ingress[1].count("import to_gateway") == 2


def _site(caddy: str) -> str:
    return caddy.split("\n:8080 {\n", 1)[1].split("\n}\n", 1)[0]


def test_ingress_challenges_name_the_servers_scopes_without_offline_access(ingress: tuple[Stack, str]) -> None:
    """MCP 2026-07-28 (authorization): a server SHOULD NOT put offline_access in the 401 challenge's
    scope; the step-up challenge names the same scopes."""
    _, caddyfile = ingress
    scopes = re.findall(r'scope=\\?"([^"\\]*)\\?"', caddyfile)
    assert len(scopes) == 2, scopes  # the 401 and the step-up challenge
    assert all(s.split() == ["notes:read", "notes:write", "home:control"] for s in scopes), scopes
    assert "offline_access" not in caddyfile


def test_ingress_checks_a_request_before_routing_it(ingress: tuple[Stack, str]) -> None:
    """One route, in the order written: the path, the forward-auth endpoints and the body are
    checked before any handle can pass a request on."""
    site = _site(ingress[1])
    assert site.startswith("\t# One route") and site.count("\n\troute {\n") == 1
    steps = [
        "respond @noncanonical 400",
        "respond @forward_auth 404",
        "request_body {\n\t\t\tmax_size 1MiB\n\t\t}",
        "respond @too_large 413",
        "respond @unframed 411",
        "respond @cut_short 400",
        "handle @authelia {",
        "handle @discovery1 {",
        "handle @mcp {",
        "\t\trespond 404\n\t}",
    ]
    positions = [site.index(step) for step in steps]
    assert positions == sorted(positions)
    assert "@forward_auth path_regexp (?i)^/auth/api/(authz|verify)(/|$)" in site


def test_ingress_routes_match_exactly(ingress: tuple[Stack, str]) -> None:
    """Issue 11, finding 4: routes are exact, case-sensitive regexes (Caddy's path matcher
    lower-cases and trims trailing dots and spaces); each discovery alias is one exact path."""
    site = _site(ingress[1])
    assert re.search(r"\bpath /", site) is None and re.search(r"\bhandle /", site) is None
    assert "@authelia path_regexp ^/auth(/|$)\n" in site
    assert "@mcp path_regexp ^/(mcp|\\.well-known/oauth-protected-resource)(/|$)\n" in site
    for i, (alias, target) in enumerate(DISCOVERY_ALIASES, start=1):
        found = re.search(rf"@discovery{i} path_regexp (\S+)\n", site)
        assert found is not None
        regex = found.group(1)
        assert re.fullmatch(regex, alias) and not re.search(regex, alias.upper())
        assert not re.search(regex, alias + "x") and not re.search(regex, "/x" + alias)
        assert f"handle @discovery{i} {{\n\t\t\trewrite * {target}\n" in site


def _noncanonical(caddy: str) -> re.Pattern[str]:
    line = re.search(r"@noncanonical expression `\{http\.request\.orig_uri\}\.matches\(r\"(.+)\"\)`\n", caddy)
    assert line is not None
    return re.compile(line.group(1))  # RE2 syntax, and the same in Python's re for this pattern


@pytest.mark.parametrize(
    "target",
    [
        "/mcp/..%2f..%2fauth/api/oidc/token",
        "/x/../auth/api/health",
        "/%61uth/api/health",
        "/mcp;/../auth",
        "/auth/%2e%2e/mcp",
        "/auth/%2E%2E/mcp",
        "//auth/api/health",
        "/auth/./api",
        "/auth/api/health/.",
        "/auth/api/health/..",
        "/auth/api/health/..?x=1",
        "/auth\\..\\mcp",
        "/auth/%5c",
        "/auth/%25",
        "/auth/%00",
        "/auth/%c0%ae",
        "/auth/%7E",
        "/auth/#x",
        "/auth/ x",
        "/auth/\u00e9",
        "/auth/%zz",
        "/auth/%",
        "http://evil.example/auth",
        "*",
    ],
)
def test_ingress_refuses_a_path_not_in_canonical_form(ingress: tuple[Stack, str], target: str) -> None:
    assert _noncanonical(ingress[1]).search(target), target


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "/auth",
        "/auth/",
        "/AUTH/api/health",  # canonical, and no route: 404
        "/auth/locales/zh-CN/portal.json",
        "/auth/static/js/index.Bx9f-3aQ.js",
        "/auth/api/oidc/authorization?redirect_uri=https%3A%2F%2Fclaude.ai%2Fapi%2Fmcp%2Fauth_callback&state=..%2F",
        "/auth/api/oidc/authorization?x=/../;\\//#",
        "/mcp",
        "/mcp/",
        "/mcp%20",
        "/auth/%C3%A9",
        "/auth/a:b@c!$&'()*+,=",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/openid-configuration/auth",
    ],
)
def test_ingress_passes_a_canonical_path(ingress: tuple[Stack, str], target: str) -> None:
    assert not _noncanonical(ingress[1]).search(target), target


def test_ingress_canonical_check_is_the_fuzz_model(ingress: tuple[Stack, str]) -> None:
    """The Caddyfile's regex and the fuzz's own definition of canonical form agree, on every
    escape and on thousands of generated targets."""
    import random

    from tests.e2e.ingress_fuzz import canonical_problem

    regex = _noncanonical(ingress[1])
    targets = [f"/auth/%{b:02X}x" for b in range(256)] + [f"/auth/%{b:02x}" for b in range(256)]
    tokens = "/ / a Z auth . .. %2e %2F %41 %20 %3a %25 % %z %C3%A9 %c1 %00 %7f ; \\ ? # ~ - _ @ : ' \" [ * +".split()  # noqa: SIM905
    tokens += [" ", "\u00e9"]
    draw = random.Random(11)
    for _ in range(4000):
        head = draw.choice(["/", "/", "/", "", "http://h/"])
        targets.append(head + "".join(draw.choice(tokens) for _ in range(draw.randint(0, 8))))
    for target in targets:
        if target:
            assert bool(regex.search(target)) == (canonical_problem(target) is not None), target


def test_ingress_limits_and_checks_bodies(ingress: tuple[Stack, str]) -> None:
    """Issue 11, finding 8: a body over 1 MiB (413), without Content-Length (411) or shorter than its
    Content-Length (400) is answered by the ingress."""
    site = _site(ingress[1])
    assert "int({http.request.header.Content-Length}) > 1048576`\n\t\trespond @too_large 413" in site
    assert '{http.request.header.Content-Length} == "" && ({http.request.body} != ""' in site
    assert "size(bytes({http.request.body})) != int({http.request.header.Content-Length})" in site


def test_redis_requires_its_password(rendered: Rendered, secrets: StackSecrets) -> None:
    conf = rendered.file("redis/config/redis.conf").content.decode()
    assert f"requirepass {secrets.redis_password()}\n" in conf
    assert "appendonly yes" in conf and "dir /data" in conf


def test_build_context_is_content_addressed(stack: Stack, secrets: StackSecrets) -> None:
    (build,) = render_stack(stack, secrets).builds
    assert build.backend == "notes" and build.dir == "build/notes"
    assert re.fullmatch(r"mcpgate-local/notes:[0-9a-f]{16}", build.image)


def test_only_enabled_backends_are_rendered(stack_data: dict[str, Any], tmp_path: Path) -> None:
    stack_data["backends"][1]["enabled"] = False
    stack = load_stack("h", stack_data)
    rendered = render_stack(stack, StackSecrets(SecretStore(tmp_path / "s"), stack))  # no HA token needed
    assert "home-assistant" not in rendered.file("agentgateway/config/config.yaml").content.decode()


@needs_reference
def test_rendered_configs_validate_against_upstream_schemas(rendered: Rendered) -> None:
    assert validate_rendered(rendered, REF) == []


@needs_reference
def test_schema_validation_catches_a_broken_config(rendered: Rendered) -> None:
    broken = rendered.file("agentgateway/config/config.yaml")
    text = broken.content.decode().replace("mcpAuthentication:", "mcpAuthenticaton:")
    rendered.files[rendered.files.index(broken)] = type(broken)(**{**broken.__dict__, "content": text.encode()})
    problems = validate_rendered(rendered, REF)
    assert any("agentgateway config" in p for p in problems)


# --- the consent page's texts (served by Authelia from server.asset_path) ------------------------


def _consent(rendered: Rendered) -> dict[str, Any]:
    from mcpgate.layout import AUTHELIA, AUTHELIA_CONSENT_LOCALE

    f = rendered.file(AUTHELIA.host_file("assets", AUTHELIA_CONSENT_LOCALE))
    assert not f.secret and f.service == ""  # read per request: no restart when it changes
    return json.loads(f.content)


def test_consent_page_says_what_each_scope_allows(rendered: Rendered, stack: Stack) -> None:
    from mcpgate.consent import HEADING_KEY

    texts = _consent(rendered)
    heading = texts[HEADING_KEY]
    assert heading == (
        "The application above asks for the permissions listed below. On mcp-gateway.example-tailnet.ts.net they "
        "mean: “read” (notes:read): Search and read notes. “write” (notes:write): Change notes. "
        "“control” (home:control): Control the house. It asks for"
    )
    # Upstream's keys whose text is not their own name are given (the file replaces Authelia's whole).
    assert texts["Client ID"] == "Client ID: {{client_id}}"
    assert texts["Scope"] == "Scope {{name}}" and texts["Claim"] == "Claim {{name}}"
    # Every scope here has a colon: the list cannot be translated (see mcpgate/consent.py).
    assert "scopes" not in texts
    assert authelia_config(rendered)["server"]["asset_path"] == "/assets"


def test_consent_page_lists_a_scope_without_a_colon_by_its_description(
    stack_data: dict[str, Any], secrets: StackSecrets
) -> None:
    stack_data["scopes"]["calendar"] = "Read your calendar"
    stack_data["backends"][0]["tools"]["calendar"] = ["agenda"]
    stack = load_stack("gateway.lan", stack_data)
    texts = _consent(render_stack(stack, StackSecrets(secrets.store, stack)))
    assert texts["scopes"] == {"calendar": "Read your calendar"}
    # The sentence above the list speaks of the names the list cannot show (those with a colon) only.
    heading = texts["The above application is requesting the following permissions"]
    assert "“read” (notes:read): Search and read notes." in heading
    assert "calendar" not in heading


def test_consent_page_keeps_upstreams_sentence_when_the_list_names_every_scope(
    stack_data: dict[str, Any], secrets: StackSecrets
) -> None:
    from mcpgate.consent import HEADING_KEY

    stack_data["scopes"] = {"notes.read": "Search and read notes", "notes.write": "Change notes"}
    stack_data["backends"] = stack_data["backends"][:1]
    stack_data["backends"][0]["tools"] = {"notes.read": ["search", "read"], "notes.write": ["write", "delete"]}
    stack = load_stack("gateway.lan", stack_data)
    texts = _consent(render_stack(stack, StackSecrets(secrets.store, stack)))
    # i18next finds "scopes.notes.read" in the flat map (its deepFind joins the key's parts back).
    assert texts["scopes"] == {"notes.read": "Search and read notes", "notes.write": "Change notes"}
    assert texts[HEADING_KEY] == HEADING_KEY


@pytest.mark.parametrize(("scope", "shown"), [("notes:read", "read"), ("a:b:c", "b.c"), ("calendar", "calendar")])
def test_the_label_the_portal_shows_for_a_scope(scope: str, shown: str) -> None:
    from mcpgate.consent import listed_as

    assert listed_as(scope) == shown


def test_consent_texts_are_rendered_into_their_own_folder(rendered: Rendered) -> None:
    dirs = {d.path: d for d in rendered.dirs}
    for sub in ("authelia/assets", "authelia/assets/locales", "authelia/assets/locales/en"):
        assert dirs[sub].mode == 0o700
    order = [d.path for d in rendered.dirs]
    assert (
        order.index("authelia/assets")
        < order.index("authelia/assets/locales")
        < order.index("authelia/assets/locales/en")
    )


# --- a signing-key rollover ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def next_signing_key_pem() -> str:
    from mcpgate.secret_crypto import generate_rsa_pem

    return generate_rsa_pem()


def _next_signing_key(monkeypatch: pytest.MonkeyPatch, pem: str) -> None:
    """The key the next rollover makes: its catalogue row's generator gives ``pem``."""
    import dataclasses

    from mcpgate import secret_catalogue

    catalogue = tuple(
        dataclasses.replace(s, generate=lambda: pem) if s.path == secret_catalogue.SIGNING_KEY else s
        for s in secret_catalogue.CATALOGUE
    )
    monkeypatch.setattr(secret_catalogue, "CATALOGUE", catalogue)


@pytest.fixture
def rolled_over(secrets: StackSecrets, next_signing_key_pem: str, monkeypatch: pytest.MonkeyPatch) -> StackSecrets:
    _next_signing_key(monkeypatch, next_signing_key_pem)
    secrets.rollover_start()
    return secrets


def test_a_rollover_signs_with_the_new_key_and_publishes_both(
    stack: Stack, secrets: StackSecrets, signing_key_pem: str, next_signing_key_pem: str, monkeypatch
) -> None:
    from joserfc import jwt
    from joserfc.jwk import KeySet, RSAKey

    from mcpgate.secret_crypto import key_id_for

    old_kid = secrets.oidc_key_id()
    before = render_stack(stack, secrets)
    _next_signing_key(monkeypatch, next_signing_key_pem)
    assert secrets.rollover_start() == (old_kid, key_id_for(next_signing_key_pem))
    during = render_stack(stack, secrets)
    new_kid = secrets.oidc_key_id()
    assert new_kid == key_id_for(next_signing_key_pem) != old_kid

    # Authelia: the new key first (it signs with the first RS256 key), the retiring one after it.
    keys = authelia_config(during)["identity_providers"]["oidc"]["jwks"]
    assert [k["key_id"] for k in keys] == [new_kid, old_kid]
    assert [k["key"].strip() for k in keys] == [next_signing_key_pem.strip(), signing_key_pem.strip()]
    assert '{{ secret "/secrets/oidc_jwks_rs256.retiring.pem"' in during.config("authelia").content.decode()
    assert during.file("authelia/secrets/oidc_jwks_rs256.retiring.pem").content.decode() == signing_key_pem
    assert during.file("authelia/secrets/oidc_jwks_rs256.pem").content.decode() == next_signing_key_pem
    # The gateway: both public keys, so a token signed before the rollover still verifies.
    jwks = KeySet.import_key_set(json.loads(during.file("agentgateway/config/jwks.json").content))
    assert [k.kid for k in jwks.keys] == [new_kid, old_kid]
    for pem, kid in ((signing_key_pem, old_kid), (next_signing_key_pem, new_kid)):
        token = jwt.encode({"alg": "RS256", "kid": kid}, {"iss": "x"}, RSAKey.import_key(pem))
        assert jwt.decode(token, jwks).claims == {"iss": "x"}
    assert during.config_digest("authelia") != before.config_digest("authelia")
    assert during.config_digest("agentgateway") != before.config_digest("agentgateway")
    assert validate_rendered(during, REF) == []

    # Finished: the old key is gone from both; a token it signed no longer verifies.
    assert secrets.rollover_finish() == old_kid
    after = render_stack(stack, secrets)
    keys = authelia_config(after)["identity_providers"]["oidc"]["jwks"]
    assert [k["key_id"] for k in keys] == [new_kid]
    assert not [f for f in after.files if "retiring" in f.path]
    jwks = KeySet.import_key_set(json.loads(after.file("agentgateway/config/jwks.json").content))
    assert [k.kid for k in jwks.keys] == [new_kid]
    old_token = jwt.encode({"alg": "RS256", "kid": old_kid}, {"iss": "x"}, RSAKey.import_key(signing_key_pem))
    from joserfc.errors import InvalidKeyIdError

    with pytest.raises(InvalidKeyIdError):
        jwt.decode(old_token, jwks)


def test_a_rollover_cannot_start_twice_nor_finish_unstarted(rolled_over: StackSecrets) -> None:
    from mcpgate.errors import SecretsError

    with pytest.raises(SecretsError, match="a signing-key rollover is already under way"):
        rolled_over.rollover_start()
    rolled_over.rollover_finish()
    with pytest.raises(SecretsError, match="no signing-key rollover is under way"):
        rolled_over.rollover_finish()


def test_an_interrupted_rollover_start_leaves_one_key(secrets: StackSecrets, stack: Stack) -> None:
    # The retiring copy is written first: interrupted there, it equals the signing key and is ignored.
    secrets.store.set("authelia/oidc_jwks_rs256.retiring.pem", secrets.oidc_private_key_pem())
    rendered = render_stack(stack, secrets)
    assert len(json.loads(rendered.file("agentgateway/config/jwks.json").content)["keys"]) == 1
    assert not [f for f in rendered.files if "retiring" in f.path]
