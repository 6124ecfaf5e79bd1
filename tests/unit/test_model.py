"""The inventory model: what it accepts, what it derives, and every mistake it refuses by name."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from mcpgate.errors import InventoryError
from mcpgate.model import load_stack
from tests.conftest import BASE_STACK

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation that sets data[path]; path is dotted, list items by number: "backends.0.tools"."""

    def apply(d: dict[str, Any]) -> None:
        node: Any = d
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        last = parts[-1]
        node[int(last) if last.isdigit() else last] = value

    return apply


def _delete(path: str) -> Mutation:
    def apply(d: dict[str, Any]) -> None:
        node: Any = d
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[part]
        del node[parts[-1]]

    return apply


def _append(path: str, value: Any) -> Mutation:
    def apply(d: dict[str, Any]) -> None:
        d[path].append(copy.deepcopy(value))

    return apply


def _both(*mutations: Mutation) -> Mutation:
    def apply(d: dict[str, Any]) -> None:
        for m in mutations:
            m(d)

    return apply


NOTES = BASE_STACK["backends"][0]
CLIENT = BASE_STACK["clients"][0]

# (id, mutation, substrings the message must contain)
BAD_INPUTS: list[tuple[str, Mutation, list[str]]] = [
    (
        "unknown-scope-on-tool",
        _set("backends.0.tools", {"notes:read": ["search"], "notes:wirte": ["write"]}),
        ["backends[0] (notes).tools['notes:wirte']", "unknown scope 'notes:wirte'", "declare it under scopes"],
    ),
    (
        "unknown-whole-target-scope",
        _set("backends.1.scope", "home:contrl"),
        ["backends[1] (home-assistant).scope", "unknown scope 'home:contrl'"],
    ),
    ("duplicate-backend", _append("backends", NOTES), ["backend 'notes' is declared twice"]),
    (
        "duplicate-tool-across-scopes",
        _set("backends.0.tools", {"notes:read": ["search", "read"], "notes:write": ["read", "delete"]}),
        ["tool 'read' is listed under both 'notes:read' and 'notes:write'"],
    ),
    (
        "duplicate-tool-same-scope",
        _set("backends.0.tools", {"notes:read": ["search", "search"], "notes:write": ["write"]}),
        ["tool 'search' is listed twice"],
    ),
    ("target-with-underscore", _set("backends.0.name", "notes_vault"), ["backends[0].name", "contains '_'"]),
    ("backend-reserved-name", _set("backends.0.name", "redis"), ["backend name 'redis' is taken"]),
    ("backend-uppercase", _set("backends.0.name", "Notes"), ["backends[0].name", "a DNS label"]),
    ("hostname-invalid-label", _set("hostname", "mcp_gw.example-tailnet.ts.net"), ["hostname", "not a valid DNS"]),
    ("hostname-public-suffix", _set("hostname", "ts.net"), ["hostname", "public suffix"]),
    ("hostname-uppercase", _set("hostname", "MCP.example-tailnet.ts.net"), ["hostname", "lower case"]),
    ("hostname-single-label", _set("hostname", "gateway"), ["hostname", "fully qualified"]),
    (
        "hostname-not-funnel-name",
        _set("hostname", "mcp.example.org"),
        ["hostname", "<node>.<tailnet>.ts.net", "tailscale.enabled = False"],
    ),
    (
        "hostname-tailnet-only",
        _set("hostname", "example-tailnet.ts.net"),
        ["hostname", "MagicDNS name <node>.<tailnet>.ts.net"],
    ),
    (
        "redirect-not-https",
        _set("clients.0.redirect_uris", ["http://claude.example/cb"]),
        ["clients[0].redirect_uris", "absolute https://", "loopback"],
    ),
    (
        "redirect-relative",
        _set("clients.0.redirect_uris", ["/callback"]),
        ["clients[0].redirect_uris", "absolute https://"],
    ),
    (
        "redirect-fragment",
        _set("clients.0.redirect_uris", ["https://app.example/cb#x"]),
        ["clients[0].redirect_uris", "#fragment"],
    ),
    (
        "claude-wrong-auth-method",
        _set("clients.0.auth_method", "client_secret_basic"),
        ["clients[0]", "client_secret_post", "client_secret_basic"],
    ),
    ("no-user", _set("users", []), ["users: is empty", "add who may sign in", '"name": "alice"']),
    ("users-missing", _delete("users"), ["users: is required"]),
    ("duplicate-user", _append("users", BASE_STACK["users"][0]), ["user 'alice' is declared twice"]),
    ("bad-user-name", _set("users.0.name", "Alice Smith"), ["users[0].name", "lower case"]),
    ("bad-email", _set("users.0.email", "alice"), ["users[0].email", "not an e-mail address"]),
    ("duplicate-client", _append("clients", CLIENT), ["client 'claude-ai' is declared twice"]),
    (
        "port-clash-gateway-admin",
        _set("gateway_port", 15021),
        ["gateway_port: 15021 clashes with agentgateway's own readiness port"],
    ),
    ("ingress-port-privileged", _set("ingress_port", 80), ["ingress_port", "greater than or equal to 1024"]),
    ("image-unpinned", _set("images", {"redis": "redis"}), ["images.redis", "has no tag", "pin an exact version"]),
    ("image-latest", _set("images", {"ingress": "caddy:latest"}), ["images.ingress", "'latest'"]),
    (
        "backend-image-unpinned",
        _set("backends.0", {**NOTES, "build": None, "image": "ghcr.io/x/notes"}),
        ["backends[0].image", "has no tag"],
    ),
    (
        "authelia-wrong-version",
        _set("images", {"authelia": "authelia/authelia:4.39.22"}),
        ["images.authelia", "4.39.20", "break MCP clients"],
    ),
    (
        "backend-image-and-url",
        _set("backends.1.image", "ghcr.io/x/ha:1.0"),
        ["exactly one of image, build or url"],
    ),
    (
        "backend-tools-and-scope",
        _set("backends.0.scope", "notes:read"),
        ["exactly one of tools", "or scope"],
    ),
    ("backend-no-port", _set("backends.0.port", None), ["set port"]),
    ("url-backend-with-volumes", _set("backends.1.volumes", [{"source": "/srv", "target": "/x"}]), ["remote url"]),
    ("url-not-absolute", _set("backends.1.url", "homeassistant:8123/api/mcp"), ["absolute http(s) URL"]),
    (
        "volume-docker-socket",
        _set("backends.0.volumes", [{"source": "/var/run/docker.sock", "target": "/var/run/docker.sock"}]),
        [
            "backends[0].volumes[0].source",
            "is the Docker socket",
            "root on the host",
            "would hand the backend the host",
        ],
    ),
    ("volume-relative-target", _set("backends.0.volumes", [{"source": "/srv/n", "target": "vault"}]), ["target"]),
    ("empty-tools", _set("backends.0.tools", {}), ["tools is empty"]),
    ("standard-scope-redeclared", _set("scopes", {**BASE_STACK["scopes"], "openid": "x"}), ["standard OpenID scope"]),
    ("scope-bad-name", _set("scopes", {**BASE_STACK["scopes"], "Notes Read": "x"}), ["must look like 'notes:read'"]),
    ("scope-unused", _set("scopes", {**BASE_STACK["scopes"], "extra:thing": "x"}), ["'extra:thing' is declared but"]),
    ("client-unknown-scope", _set("clients.0.scopes", ["notes:reed"]), ["clients[0] (claude-ai).scopes", "notes:reed"]),
    (
        "no-enabled-backend",
        _both(_set("backends.0.enabled", False), _set("backends.1.enabled", False)),
        ["none is enabled"],
    ),
    ("typo-field", _set("backends.0.tool", {"notes:read": ["x"]}), ["backends[0].tool", "unknown field"]),
    ("base-dir-relative", _set("base_dir", "opt/mcpgate"), ["base_dir", "absolute path"]),
    ("base-dir-root", _set("base_dir", "/"), ["base_dir"]),
    ("env-bad-name", _set("backends.0.env", {"MY-VAR": "1"}), ["environment variable name 'MY-VAR'"]),
    ("user-not-numeric", _set("backends.0.user", "notes"), ["numeric uid:gid"]),
    ("memory-limit", _set("backends.0.limits", {"memory": "lots"}), ["memory limit 'lots'"]),
    ("service-uid-root", _set("uids", {"authelia": "0:0"}), ["uids.authelia", "non-root"]),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [(m, e) for _, m, e in BAD_INPUTS], ids=[i for i, _, _ in BAD_INPUTS]
)
def test_bad_input_is_refused_with_a_message_naming_the_problem(
    stack_data: dict[str, Any], mutation: Mutation, expected: list[str]
) -> None:
    mutation(stack_data)
    with pytest.raises(InventoryError) as info:
        load_stack("gateway.lan", stack_data)
    message = str(info.value)
    assert "gateway.lan" in message
    for part in expected:
        assert part in message, f"{part!r} not in:\n{message}"


def test_the_table_covers_at_least_25_distinct_mistakes() -> None:
    assert len({i for i, _, _ in BAD_INPUTS}) >= 25


def test_every_problem_is_reported_at_once(stack_data: dict[str, Any]) -> None:
    stack_data["backends"][0]["tools"] = {"notes:read": ["search"], "nope:x": ["write"]}
    stack_data["scopes"]["spare:scope"] = "never used"
    with pytest.raises(InventoryError) as info:
        load_stack("gateway.lan", stack_data)
    assert len(info.value.problems) >= 2


def test_missing_or_wrong_type_data_is_named() -> None:
    with pytest.raises(InventoryError, match="no 'mcpgate' data"):
        load_stack("h", None)
    with pytest.raises(InventoryError, match="must be a dict, not list"):
        load_stack("h", [])


def test_derived_urls(stack_data: dict[str, Any]) -> None:
    stack = load_stack("gateway.lan", stack_data)
    assert stack.issuer == "https://mcp-gateway.example-tailnet.ts.net/auth"
    assert stack.resource == "https://mcp-gateway.example-tailnet.ts.net/mcp"
    assert stack.scopes_supported == ["notes:read", "notes:write", "home:control", "offline_access"]


def test_disabled_backend_scopes_are_not_advertised(stack_data: dict[str, Any]) -> None:
    stack_data["backends"][1]["enabled"] = False
    stack = load_stack("gateway.lan", stack_data)
    assert "home:control" not in stack.scopes_supported
    assert [b.name for b in stack.enabled_backends] == ["notes"]
    assert stack.token_secrets == []


def test_loopback_redirects_and_public_clients_are_allowed(stack_data: dict[str, Any]) -> None:
    stack_data["clients"].append(
        {
            "id": "claude-code",
            "name": "Claude Code",
            "redirect_uris": ["http://localhost:33418/callback", "http://127.0.0.1:6274/oauth/callback"],
            "auth_method": "none",
            "scopes": ["notes:read"],
        }
    )
    stack = load_stack("gateway.lan", stack_data)
    client = stack.clients[1]
    assert client.public
    assert stack.client_tool_scopes(client) == ["notes:read"]
    # Authelia lets every client ask for every scope; the gateway enforces the limit.
    assert set(stack.registered_scopes) >= {"openid", "offline_access", "profile", "groups", *stack.scopes}


def test_a_new_backend_is_only_data(stack_data: dict[str, Any]) -> None:
    stack_data["scopes"]["calendar:read"] = "Read the calendar"
    stack_data["backends"].append(
        {"name": "calendar", "image": "ghcr.io/example/cal-mcp:2.1.0", "port": 9000, "tools": {"calendar:read": ["x"]}}
    )
    stack = load_stack("gateway.lan", stack_data)
    assert stack.enabled_backends[-1].target_url == "http://calendar:9000/mcp"


def test_local_hostname_without_tailscale(stack_data: dict[str, Any]) -> None:
    stack_data["hostname"] = "mcp-gateway.home.test"
    stack_data["tailscale"] = {"enabled": False}
    assert load_stack("local", stack_data).issuer == "https://mcp-gateway.home.test/auth"


def test_digest_pinned_images_are_accepted(stack_data: dict[str, Any]) -> None:
    stack_data["images"] = {"redis": "redis@sha256:" + "a" * 64}
    assert load_stack("h", stack_data).images.redis.endswith("a" * 64)


DIGEST = "@sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("field", "image"),
    [
        ("redis", f"redis:7.4.2-alpine{DIGEST}"),
        ("ingress", f"caddy:2.8.4-alpine{DIGEST}"),
        ("authelia", f"authelia/authelia:4.39.20{DIGEST}"),
        ("agentgateway", f"cr.agentgateway.dev/agentgateway:v1.4.1{DIGEST}"),
        ("redis", f"registry.example:5000/redis:7.4.2{DIGEST}"),
    ],
)
def test_a_tag_may_carry_its_digest(stack_data: dict[str, Any], field: str, image: str) -> None:
    stack_data["images"] = {field: image}
    assert getattr(load_stack("h", stack_data).images, field) == image


def test_a_build_base_may_carry_its_digest(stack_data: dict[str, Any]) -> None:
    stack_data["backends"][0]["base_image"] = f"python:3.12.14-slim-bookworm{DIGEST}"
    assert load_stack("h", stack_data).backends[0].base_image.endswith(DIGEST)


@pytest.mark.parametrize(
    ("field", "image", "message"),
    [
        ("redis", "redis:7.4.2@sha256:abc", "64 hex characters, this one has 3"),
        ("redis", f"redis:latest{DIGEST}", "not 'latest'"),
        ("authelia", f"authelia/authelia:4.39.22{DIGEST}", "4.39.20 tag"),
        ("authelia", f"authelia/authelia{DIGEST}", "4.39.20 tag"),
    ],
)
def test_bad_digest_pins_are_refused(stack_data: dict[str, Any], field: str, image: str, message: str) -> None:
    stack_data["images"] = {field: image}
    with pytest.raises(InventoryError) as err:
        load_stack("h", stack_data)
    assert f"images.{field}" in str(err.value) and message in str(err.value)


def test_group_grants_are_checked(stack_data: dict[str, Any]) -> None:
    stack_data["users"][0]["groups"] = ["family"]
    stack_data["groups"] = {"family": ["notes:read", "notes:wrtie"], "Bad Group": []}
    with pytest.raises(InventoryError) as err:
        load_stack("h", stack_data)
    text = str(err.value)
    assert "groups['family']: unknown scope 'notes:wrtie'" in text
    assert "group name 'Bad Group'" in text


def test_a_person_granted_nothing_is_refused(stack_data: dict[str, Any]) -> None:
    stack_data["groups"] = {"family": ["notes:read"]}
    with pytest.raises(InventoryError) as err:
        load_stack("h", stack_data)
    assert "users[0] (alice): is in no group that groups grants scopes to" in str(err.value)


def test_user_scopes_are_checked(stack_data: dict[str, Any]) -> None:
    stack_data["users"][0]["scopes"] = ["notes:raed"]
    with pytest.raises(InventoryError) as err:
        load_stack("h", stack_data)
    assert "users[0] (alice).scopes: unknown scope 'notes:raed'" in str(err.value)


def test_the_consent_screen_names_a_clients_limit(stack_data: dict[str, Any]) -> None:
    stack_data["clients"][0]["scopes"] = ["notes:read"]
    stack = load_stack("h", stack_data)
    assert stack.consent_name(stack.clients[0]) == "Claude.ai (tools limited to: notes:read)"
