"""The tool -> scope policy, evaluated with a real CEL engine exactly as agentgateway decides."""

from __future__ import annotations

from typing import Any

import pytest

from mcpgate.model import Stack, load_stack
from mcpgate.policy import compile_rules, evaluate, format_matrix, policy_matrix

cel = pytest.importorskip("cel", reason="common-expression-language is a test dependency; install .[test]")


def test_every_tool_against_every_scope(stack: Stack) -> None:
    rules = compile_rules(stack)
    for backend in stack.enabled_backends:
        tools = backend.tool_scopes or {"any-tool": backend.scope}
        for tool, needed in tools.items():
            for scope in stack.scopes:
                allowed = evaluate(rules, backend.name, tool, [scope])
                assert allowed == (scope == needed), (backend.name, tool, scope)


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
    rules = compile_rules(stack)
    for tool in ("search", "read", "write", "delete"):
        assert not evaluate(rules, "notes", tool, scp), why


def test_a_tool_not_in_the_inventory_is_denied_even_with_every_scope(stack: Stack) -> None:
    rules = compile_rules(stack)
    everything = list(stack.scopes)
    assert not evaluate(rules, "notes", "rm_rf", everything)
    assert not evaluate(rules, "notes", "", everything)
    assert not evaluate(rules, "unknown-target", "search", everything)


def test_a_scope_opens_only_its_own_target(stack: Stack) -> None:
    rules = compile_rules(stack)
    assert evaluate(rules, "home-assistant", "HassTurnOn", ["home:control"])
    assert not evaluate(rules, "home-assistant", "HassTurnOn", ["notes:read", "notes:write"])
    assert not evaluate(rules, "notes", "search", ["home:control"])


def test_several_scopes_in_one_token(stack: Stack) -> None:
    rules = compile_rules(stack)
    scp = ["openid", "offline_access", "notes:read", "home:control"]
    assert evaluate(rules, "notes", "search", scp)
    assert not evaluate(rules, "notes", "write", scp)


def test_rules_use_exact_list_membership_never_substrings(stack: Stack) -> None:
    # agentgateway's CEL treats `x in <string>` as a substring test (its cel fork, objects.rs), which
    # the engine here does not model: so the rules must not test scopes with `in` at all.
    for rule in compile_rules(stack):
        (kind, expr) = next(iter(rule.items()))
        assert kind == "allow"
        assert "jwt.scp.exists(s, s == '" in expr
        assert "in jwt.scp" not in expr and "contains" not in expr and "jwt.scope" not in expr
        cel.compile(expr)  # every rule is valid CEL


def test_disabled_backends_get_no_rule(stack_data: dict[str, Any]) -> None:
    stack_data["backends"][1]["enabled"] = False
    rules = compile_rules(load_stack("h", stack_data))
    assert all("home-assistant" not in r["allow"] for r in rules)


def test_matrix_table(stack: Stack) -> None:
    rows = {(r.target, r.tool): r.allowed for r in policy_matrix(stack)}
    assert rows[("notes", "search")] == {"notes:read": True, "notes:write": False, "home:control": False}
    assert rows[("home-assistant", "*")]["home:control"]
    table = format_matrix(stack)
    assert table.splitlines()[0].split() == ["tool", "notes:read", "notes:write", "home:control"]
    assert "notes/delete" in table
