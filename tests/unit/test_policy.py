"""The inventory's grants (tool -> scope, per-client and per-person limits) compiled to CEL and
evaluated with a real CEL engine exactly as agentgateway decides."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import cel
import pytest

from mcpgate.model import Stack, load_stack
from mcpgate.policy import compile_rules, evaluate, format_matrix, granted_tools, policy_matrix, token_claims

EVERY = ["openid", "offline_access", "notes:read", "notes:write", "home:control"]


def _subjects(stack: Stack) -> dict[str, str]:
    return {u.name: str(uuid.uuid5(uuid.NAMESPACE_URL, u.name)) for u in stack.users}


def _allowed(stack: Stack, target: str, tool: str, scp: Any, client: str = "claude-ai", user: str = "alice") -> bool:
    subjects = _subjects(stack)
    return evaluate(compile_rules(stack, subjects), target, tool, token_claims(scp, client, subjects[user]))


def test_every_tool_against_every_scope(stack: Stack) -> None:
    for backend in stack.enabled_backends:
        tools = backend.tool_scopes or {"any-tool": backend.scope}
        for tool, needed in tools.items():
            for scope in stack.scopes:
                assert _allowed(stack, backend.name, tool, [scope]) == (scope == needed), (backend.name, tool, scope)


@pytest.mark.parametrize(
    ("scp", "why"),
    [
        (["notes:readx"], "near-miss suffix"),
        (["notes:rea"], "near-miss prefix"),
        (["xnotes:read"], "near-miss leading"),
        (["notes"], "scope family only"),
        (["NOTES:READ"], "case differs"),
        (["notes:read notes:write"], "space-joined string as one item"),
        ([], "empty scp"),
        ("notes:read", "scp as a string, not a list: agentgateway errors, which counts as false"),
        (None, "no scp claim"),
    ],
)
def test_near_misses_and_empty_scopes_open_nothing(stack: Stack, scp: Any, why: str) -> None:
    for tool in ("search", "read", "write", "delete"):
        assert not _allowed(stack, "notes", tool, scp), why


def test_a_tool_not_in_the_inventory_is_denied_even_with_every_scope(stack: Stack) -> None:
    assert not _allowed(stack, "notes", "rm_rf", EVERY)
    assert not _allowed(stack, "notes", "", EVERY)
    assert not _allowed(stack, "unknown-target", "search", EVERY)


def test_a_scope_opens_only_its_own_target(stack: Stack) -> None:
    assert _allowed(stack, "home-assistant", "HassTurnOn", ["home:control"])
    assert not _allowed(stack, "home-assistant", "HassTurnOn", ["notes:read", "notes:write"])
    assert not _allowed(stack, "notes", "search", ["home:control"])


def test_several_scopes_in_one_token(stack: Stack) -> None:
    scp = ["openid", "offline_access", "notes:read", "home:control"]
    assert _allowed(stack, "notes", "search", scp)
    assert not _allowed(stack, "notes", "write", scp)


def test_rules_use_exact_list_membership_never_substrings(stack: Stack) -> None:
    # agentgateway's CEL treats `x in <string>` as a substring test (its cel fork, objects.rs), which
    # the engine here does not model: scopes are never tested with `in`, and the client and subject
    # are compared with `in` on a list literal only.
    for rule in compile_rules(stack, _subjects(stack)):
        (kind, expr) = next(iter(rule.items()))
        assert kind == "allow"
        assert "jwt.scp.exists(s, s == '" in expr
        assert "in jwt.scp" not in expr and "contains" not in expr and "jwt.scope" not in expr
        assert "jwt.client_id in ['" in expr
        cel.compile(expr)  # every rule is valid CEL


def test_disabled_backends_get_no_rule(stack_data: dict[str, Any]) -> None:
    stack_data["backends"][1]["enabled"] = False
    stack = load_stack("h", stack_data)
    assert all("home-assistant" not in r["allow"] for r in compile_rules(stack, _subjects(stack)))


# --- per-client limits ----------------------------------------------------------------------------


@pytest.fixture
def two_clients(stack_data: dict[str, Any]) -> Stack:
    stack_data["clients"].append(
        {
            "id": "mcp-inspector",
            "name": "MCP Inspector",
            "redirect_uris": ["http://localhost:6274/oauth/callback"],
            "auth_method": "none",
            "scopes": ["notes:read"],
        }
    )
    return load_stack("h", stack_data)


def test_a_restricted_client_gets_only_its_scopes_whatever_its_token_holds(two_clients: Stack) -> None:
    for tool in ("search", "read"):
        assert _allowed(two_clients, "notes", tool, EVERY, client="mcp-inspector")
    for tool in ("write", "delete"):
        assert not _allowed(two_clients, "notes", tool, EVERY, client="mcp-inspector")
        assert _allowed(two_clients, "notes", tool, EVERY, client="claude-ai")
    assert not _allowed(two_clients, "home-assistant", "HassTurnOn", EVERY, client="mcp-inspector")


@pytest.mark.parametrize("client", [None, "unknown-client", "", "claude-ai-evil", "claude"])
def test_a_token_from_no_registered_client_opens_nothing(two_clients: Stack, client: str | None) -> None:
    subjects = _subjects(two_clients)
    rules = compile_rules(two_clients, subjects)
    claims = token_claims(EVERY, client, subjects["alice"])
    assert not evaluate(rules, "notes", "search", claims)


def test_a_client_with_no_scope_gets_no_tool(stack_data: dict[str, Any]) -> None:
    """Named in no rule (an inventory where no client may use anything is refused: test_model)."""
    stack_data["clients"].append({**stack_data["clients"][0], "id": "limited", "name": "Limited", "scopes": []})
    stack = load_stack("h", stack_data)
    rules = compile_rules(stack, _subjects(stack))
    assert rules and not [r for r in rules if "limited" in r["allow"]]


# --- per-person limits ----------------------------------------------------------------------------


@pytest.fixture
def family(stack_data: dict[str, Any]) -> Stack:
    stack_data["users"][0]["groups"] = ["admins"]
    stack_data["users"].append({"name": "bob", "display_name": "Bob", "email": "bob@example.org", "groups": ["family"]})
    stack_data["users"].append(
        {"name": "carol", "display_name": "Carol", "email": "c@example.org", "groups": [], "scopes": ["home:control"]}
    )
    stack_data["groups"] = {"admins": ["notes:read", "notes:write", "home:control"], "family": ["notes:read"]}
    return load_stack("h", stack_data)


def test_each_person_gets_what_their_groups_and_own_scopes_grant(family: Stack) -> None:
    expected = {
        "alice": {"search", "read", "write", "delete", "HassTurnOn"},
        "bob": {"search", "read"},
        "carol": {"HassTurnOn"},
    }
    for user, tools in expected.items():
        for tool in ("search", "read", "write", "delete"):
            assert _allowed(family, "notes", tool, EVERY, user=user) == (tool in tools), (user, tool)
        assert _allowed(family, "home-assistant", "HassTurnOn", EVERY, user=user) == ("HassTurnOn" in tools)


def test_a_person_outside_the_inventory_opens_nothing(family: Stack) -> None:
    subjects = _subjects(family)
    rules = compile_rules(family, subjects)
    for sub in (None, str(uuid.uuid4()), subjects["alice"][:-1]):
        assert not evaluate(rules, "notes", "search", token_claims(EVERY, "claude-ai", sub))


def test_without_groups_everyone_listed_may_use_everything(stack_data: dict[str, Any]) -> None:
    stack_data["users"].append({"name": "bob", "display_name": "Bob", "email": "bob@example.org"})
    stack = load_stack("h", stack_data)
    assert not stack.limits_people
    subjects = _subjects(stack)
    rules = compile_rules(stack, subjects)
    # Every rule still names the people: a token's sub must be one the inventory lists.
    assert all(f"jwt.sub in ['{subjects['alice']}', '{subjects['bob']}']" in r["allow"] for r in rules)
    assert _allowed(stack, "notes", "write", EVERY, user="bob")
    for sub in (None, str(uuid.uuid4())):
        assert not evaluate(rules, "notes", "write", token_claims(EVERY, "claude-ai", sub))


def test_a_person_taken_out_of_an_inventory_without_groups_loses_every_tool(stack_data: dict[str, Any]) -> None:
    stack_data["users"].append({"name": "bob", "display_name": "Bob", "email": "bob@example.org"})
    before = load_stack("h", stack_data)
    bob = _subjects(before)["bob"]
    assert evaluate(compile_rules(before, _subjects(before)), "notes", "read", token_claims(EVERY, "claude-ai", bob))
    stack_data["users"] = [u for u in stack_data["users"] if u["name"] != "bob"]
    after = load_stack("h", stack_data)
    rules = compile_rules(after, _subjects(after))
    for tool in ("search", "read", "write", "delete"):
        assert not evaluate(rules, "notes", tool, token_claims(EVERY, "claude-ai", bob)), tool
    assert evaluate(rules, "notes", "read", token_claims(EVERY, "claude-ai", _subjects(after)["alice"]))


def test_client_and_person_limits_intersect_and_agree_with_the_model(family: Stack, stack_data: dict) -> None:
    stack_data = {**stack_data, "groups": family.groups, "users": [u.model_dump() for u in family.users]}
    stack_data["clients"] = [
        *stack_data["clients"],
        {
            "id": "reader",
            "name": "Reader",
            "redirect_uris": ["https://reader.example/cb"],
            "scopes": ["notes:read", "home:control"],
        },
    ]
    stack = load_stack("h", stack_data)
    subjects = _subjects(stack)
    rows = policy_matrix(stack, subjects)
    for client, user in itertools.product(stack.clients, stack.users):
        listed = {f"{r.target}/{r.tool}" for r in rows if r.allowed[(client.id, user.name)]}
        assert listed == set(granted_tools(stack, client, user)), (client.id, user.name)
    assert set(granted_tools(stack, stack.clients[1], stack.users[1])) == {"notes/search", "notes/read"}
    assert set(granted_tools(stack, stack.clients[1], stack.users[0])) == {
        "notes/search",
        "notes/read",
        "home-assistant/*",
    }


def test_matrix_table_per_client_and_person(family: Stack) -> None:
    table = format_matrix(family, _subjects(family))
    lines = table.splitlines()
    assert lines[0] == "client claude-ai (every scope):"
    assert lines[1].split() == ["tool", "scope", "alice", "(admins)", "bob", "(family)", "carol"]
    search = next(line for line in lines if line.startswith("notes/search"))
    assert search.split() == ["notes/search", "notes:read", "allow", "allow", "-"]
    hass = next(line for line in lines if line.startswith("home-assistant/*"))
    assert hass.split() == ["home-assistant/*", "home:control", "allow", "-", "allow"]


@pytest.mark.parametrize(
    ("scp", "lacking"),
    [
        (["openid", "offline_access"], True),
        ([], True),
        (None, True),
        (["notes:read"], False),
        (["offline_access", "home:control"], False),
        (["notes:readx"], True),
    ],
)
def test_a_token_with_none_of_the_servers_scopes_is_recognised(stack: Stack, scp: Any, lacking: bool) -> None:
    from mcpgate.policy import lacks_server_scope, no_usable_scope

    jwt = {} if scp is None else {"scp": scp}
    assert cel.evaluate(lacks_server_scope(stack), {"jwt": jwt}) is lacking
    # the whole rule (json() is agentgateway's own; the end-to-end tests run it there)
    assert no_usable_scope(stack).endswith(lacks_server_scope(stack))


@pytest.mark.parametrize(
    ("method", "scp", "refused"),
    [
        ("initialize", ["openid"], False),  # the handshake's first request
        ("server/discover", ["openid"], False),  # 2026-07-28's first request
        ("tools/list", ["openid"], True),
        ("tools/call", [], True),
        ("tools/list", ["notes:read"], False),
        ("server/discover", ["notes:read"], False),
    ],
)
def test_the_no_scope_rule_lets_each_eras_first_request_through(
    stack: Stack, method: str, scp: list[str], refused: bool
) -> None:
    """The whole rule on a real CEL engine; json() is agentgateway's own, so the parsed body stands in
    for it (the end-to-end tests run the rule itself in agentgateway)."""
    from mcpgate.policy import no_usable_scope

    rule = no_usable_scope(stack)
    assert rule.count("json(request.body)") == 1
    context = {"request": {"path": "/mcp"}, "body": {"method": method}, "jwt": {"scp": scp}}
    assert cel.evaluate(rule.replace("json(request.body)", "body"), context) is refused
