"""Per-tool authorization: the tool -> scope map compiled to agentgateway CEL rules.

Every rule is an ``allow``; agentgateway denies a call when rules exist and none allows it, so a
tool the inventory does not list is denied. Scopes are matched exactly against Authelia's ``scp``
claim, a JSON list: ``jwt.scp.exists(s, s == 'notes:read')``. Not ``'notes:read' in jwt.scp``:
in agentgateway's CEL, ``in`` on a string is a substring test, so a token whose ``scp`` were the
string "notes:readall" would pass; ``exists`` on a string is an error, which counts as false.

Example::

    rules = compile_rules(stack)
    # [{"allow": "mcp.tool.target == 'notes' && mcp.tool.name in ['search', 'read'] && "
    #            "jwt.scp.exists(s, s == 'notes:read')"}, ...]
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Backend, Stack


def _lit(value: str) -> str:
    # Names are validated to plain characters, so a single-quoted CEL literal needs no escaping;
    # refuse anything that would.
    if "'" in value or "\\" in value:
        raise ValueError(f"{value!r} cannot be written as a CEL literal")
    return f"'{value}'"


def has_scope(scope: str) -> str:
    """CEL that holds when the token's scp list holds exactly ``scope``."""
    return f"jwt.scp.exists(s, s == {_lit(scope)})"


def backend_rules(backend: Backend) -> list[dict[str, str]]:
    target = f"mcp.tool.target == {_lit(backend.name)}"
    if backend.scope:
        return [{"allow": f"{target} && {has_scope(backend.scope)}"}]
    rules = []
    for scope, tools in (backend.tools or {}).items():
        names = ", ".join(_lit(t) for t in tools)
        rules.append({"allow": f"{target} && mcp.tool.name in [{names}] && {has_scope(scope)}"})
    return rules


def compile_rules(stack: Stack) -> list[dict[str, str]]:
    """The mcpAuthorization rules for every enabled backend, in inventory order."""
    return [rule for b in stack.enabled_backends for rule in backend_rules(b)]


@dataclass(frozen=True)
class PolicyRow:
    target: str
    tool: str  # "*" for a whole-target scope
    allowed: dict[str, bool]  # scope -> allowed with a token holding only that scope


def evaluate(rules: list[dict[str, str]], target: str, tool: str, scp: object) -> bool:
    """Decide like agentgateway: any allow rule that evaluates to true allows; errors count as false."""
    import cel  # the real CEL engine; only needed to print or test the matrix

    context = {"jwt": {"scp": scp}, "mcp": {"tool": {"name": tool, "target": target}}}
    for rule in rules:
        try:
            if cel.evaluate(rule["allow"], context) is True:
                return True
        except (ValueError, TypeError, RuntimeError, KeyError):
            continue
    return False


def policy_matrix(stack: Stack) -> list[PolicyRow]:
    """Each enabled tool against each declared scope, evaluated with the compiled rules."""
    rules = compile_rules(stack)
    rows = []
    for b in stack.enabled_backends:
        tools = list(b.tool_scopes) or ["*"]
        for tool in tools:
            probe = tool if tool != "*" else "any-tool"
            rows.append(
                PolicyRow(
                    target=b.name,
                    tool=tool,
                    allowed={s: evaluate(rules, b.name, probe, [s]) for s in stack.scopes},
                )
            )
    return rows


def format_matrix(stack: Stack) -> str:
    rows = policy_matrix(stack)
    scopes = list(stack.scopes)
    first = [f"{r.target}/{r.tool}" for r in rows]
    width = max([len("tool"), *map(len, first)])
    widths = [max(len(s), 5) for s in scopes]
    header = "tool".ljust(width) + "  " + "  ".join(s.ljust(w) for s, w in zip(scopes, widths, strict=True))
    lines = [header, "-" * len(header)]
    for name, row in zip(first, rows, strict=True):
        cells = [("allow" if row.allowed[s] else "-").ljust(w) for s, w in zip(scopes, widths, strict=True)]
        lines.append(name.ljust(width) + "  " + "  ".join(cells))
    return "\n".join(lines)
