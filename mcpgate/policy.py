"""Per-tool authorization: the inventory's grants compiled to agentgateway CEL rules.

A tool needs one scope (the inventory's ``tools`` map). agentgateway allows a call only when a rule
holds, and each rule asks for all of:

- the scope, matched exactly in Authelia's ``scp`` claim, a JSON list:
  ``jwt.scp.exists(s, s == 'notes:read')``. Not ``'notes:read' in jwt.scp``: in agentgateway's CEL,
  ``in`` on a string is a substring test, so a token whose ``scp`` were the string "notes:readall"
  would pass; ``exists`` on a string is an error, which counts as false;
- the client (``jwt.client_id``) being one whose ``scopes`` include it;
- the person (``jwt.sub``, the subject pinned per user from the secrets store) being one the
  inventory lists and grants it (with no ``groups`` or user ``scopes``, every listed person is
  granted every scope). Always bound, so a person taken out of the inventory loses every tool at
  the gateway's next config reload, not when their token expires.

Every rule is an ``allow``; agentgateway denies a call when rules exist and none allows it, so a
tool the inventory does not list is denied.

Example::

    rules = compile_rules(stack, subjects(stack, secrets))
    # [{"allow": "mcp.tool.target == 'notes' && mcp.tool.name in ['search', 'read'] && "
    #            "jwt.scp.exists(s, s == 'notes:read') && jwt.client_id in ['claude-ai'] && "
    #            "jwt.sub in ['5f0c...']"}, ...]
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from importlib.machinery import PathFinder
from typing import Any

from .model import Backend, Client, Stack, User


def _lit(value: str) -> str:
    # Names are validated to plain characters, so a single-quoted CEL literal needs no escaping;
    # refuse anything that would.
    if "'" in value or "\\" in value:
        raise ValueError(f"{value!r} cannot be written as a CEL literal")
    return f"'{value}'"


def _list(values: list[str]) -> str:
    return "[" + ", ".join(_lit(v) for v in values) + "]"


def has_scope(scope: str) -> str:
    """CEL that holds when the token's scp list holds exactly ``scope``."""
    return f"jwt.scp.exists(s, s == {_lit(scope)})"


def _who_may(stack: Stack, scope: str, subjects: dict[str, str]) -> str | None:
    """The client and person conditions for ``scope``; None when nobody may use it."""
    clients = [c.id for c in stack.clients if scope in stack.client_tool_scopes(c)]
    if not clients:
        return None
    people = [subjects[u.name] for u in stack.users if scope in stack.user_tool_scopes(u)]
    if not people:
        return None
    return f"jwt.client_id in {_list(clients)} && jwt.sub in {_list(people)}"


def backend_rules(stack: Stack, backend: Backend, subjects: dict[str, str]) -> list[dict[str, str]]:
    target = f"mcp.tool.target == {_lit(backend.name)}"
    tools_by_scope: dict[str, list[str] | None] = {backend.scope: None} if backend.scope else dict(backend.tools or {})
    rules = []
    for scope, tools in tools_by_scope.items():
        who = _who_may(stack, scope, subjects)
        if who is None:
            continue
        which = "" if tools is None else f" && mcp.tool.name in {_list(tools)}"
        rules.append({"allow": f"{target}{which} && {has_scope(scope)} && {who}"})
    return rules


def compile_rules(stack: Stack, subjects: dict[str, str]) -> list[dict[str, str]]:
    """The mcpAuthorization rules for every enabled backend, in inventory order. ``subjects`` maps
    each user to the ``sub`` their tokens carry (``mcpgate.identity.subjects``)."""
    return [rule for b in stack.enabled_backends for rule in backend_rules(stack, b, subjects)]


def allowed_expression(rules: list[dict[str, str]]) -> str:
    """One CEL expression true when one of the tool rules allows the call (they are all allows), for
    the access log: agentgateway answers a refused call as it does a tool the backend lacks."""
    return " || ".join(f"({r['allow']})" for r in rules)


def lacks_server_scope(stack: Stack) -> str:
    """CEL that holds when the verified token carries none of this server's scopes."""
    return f"!(has(jwt.scp) && jwt.scp.exists(s, s in {_list(stack.tool_scopes_in_use)}))"


# The first request of each protocol era: the handshake's initialize, and 2026-07-28's server/discover.
FIRST_REQUESTS = ("initialize", "server/discover")


def no_usable_scope(stack: Stack) -> str:
    """CEL for the route's HTTP authorization: an MCP request, other than a first request
    (``initialize``, or 2026-07-28's ``server/discover``), whose token carries none of this server's
    scopes. Such a request is refused (403) and the ingress answers it with a step-up challenge
    naming the scopes.

    On an MCP route agentgateway evaluates this after mcpAuthentication, so ``jwt`` holds the
    verified claims (without a token mcpAuthentication has already answered 401). The first request
    goes through: it is the request a client retries right after signing in, and a client (the MCP
    SDK among them) acts on a step-up challenge only for a later request. Measured with the SDK
    2.3.0: refused there, a client that signed in with no scope falls back from 2026-07-28 to the
    handshake (its server/discover failed); let through, it stays on 2026-07-28 and steps up at
    tools/list. Neither answer lists a tool. A ``scp`` that is not a list, or a body that is not one
    JSON-RPC request, makes the rule an error, which counts as false: the request goes on, and the
    tool rules open nothing.
    """
    return (
        f"request.path == '/mcp' && !(json(request.body).method in {_list(list(FIRST_REQUESTS))}) && "
        f"{lacks_server_scope(stack)}"
    )


def token_claims(scp: Any, client_id: str | None = None, sub: str | None = None) -> dict[str, Any]:
    """The claims of an access token as the rules see them (``jwt``)."""
    claims: dict[str, Any] = {"scp": scp}
    if client_id is not None:
        claims["client_id"] = client_id
    if sub is not None:
        claims["sub"] = sub
    return claims


def evaluate(rules: list[dict[str, str]], target: str, tool: str, claims: dict[str, Any]) -> bool:
    """Decide like agentgateway: any allow rule that evaluates to true allows; errors count as false."""
    context = {"jwt": claims, "mcp": {"tool": {"name": tool, "target": target}}}
    for rule in rules:
        try:
            if _compiled(rule["allow"]).execute(context) is True:
                return True
        except (ValueError, TypeError, RuntimeError, KeyError):
            continue
    return False


@functools.lru_cache(maxsize=1024)
def _compiled(expression: str) -> Any:
    """A CEL program, compiled once per expression (the matrix evaluates each many times)."""
    return _cel().compile(expression)


@functools.cache
def _cel() -> Any:
    """The CEL extension module alone. ``import cel`` also runs the package's ``__init__``, which
    imports its command-line REPL (rich, prompt_toolkit: half a second of CPU) and an opt-in
    standard library this module never registers; the compiled module is all ``compile`` needs.
    It is registered as ``cel.cel``, so a later ``import cel`` finds and reuses it."""
    if "cel.cel" in sys.modules:
        return sys.modules["cel.cel"]
    package = importlib.util.find_spec("cel")
    spec = PathFinder.find_spec("cel.cel", package.submodule_search_locations if package else None)
    if spec is None or spec.loader is None:
        return importlib.import_module("cel.cel")  # not where pip puts it: the ordinary import says why
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["cel.cel"] = module
    return module


def tool_scopes(backend: Backend) -> dict[str, str]:
    """tool -> the scope it needs; ``"*"`` for a backend with one scope for every tool."""
    return backend.tool_scopes or {"*": backend.scope or ""}


@dataclass(frozen=True)
class PolicyRow:
    target: str
    tool: str  # "*" for a whole-target scope
    scope: str
    allowed: dict[tuple[str, str], bool]  # (client id, user name) -> allowed


def policy_matrix(stack: Stack, subjects: dict[str, str]) -> list[PolicyRow]:
    """Each enabled tool for each client and person, with a token holding every scope the server
    advertises (what a client gets when it asks for them), evaluated with the compiled rules."""
    rules = compile_rules(stack, subjects)
    scp = stack.scopes_supported
    rows = []
    for b in stack.enabled_backends:
        for tool, scope in tool_scopes(b).items():
            probe = tool if tool != "*" else "any-tool"
            allowed = {
                (c.id, u.name): evaluate(rules, b.name, probe, token_claims(scp, c.id, subjects[u.name]))
                for c in stack.clients
                for u in stack.users
            }
            rows.append(PolicyRow(target=b.name, tool=tool, scope=scope, allowed=allowed))
    return rows


def _person(user: User) -> str:
    return f"{user.name} ({', '.join(user.groups)})" if user.groups else user.name


def format_matrix(stack: Stack, subjects: dict[str, str]) -> str:
    """One block per client: each tool, the scope it needs, and which person may use it there."""
    rows = policy_matrix(stack, subjects)
    names = [f"{r.target}/{r.tool}" for r in rows]
    width = max([len("tool"), *map(len, names)])
    scope_width = max([len("scope"), *(len(r.scope) for r in rows)])
    people = [_person(u) for u in stack.users]
    widths = [max(len(p), 5) for p in people]
    header = (
        "tool".ljust(width) + "  " + "scope".ljust(scope_width) + "  "
        + "  ".join(p.ljust(w) for p, w in zip(people, widths, strict=True))
    ).rstrip()  # fmt: skip
    blocks = []
    for client in stack.clients:
        limit = "every scope" if client.scopes is None else "only " + (", ".join(client.scopes) or "no scope")
        lines = [f"client {client.id} ({limit}):", header, "-" * len(header)]
        for name, row in zip(names, rows, strict=True):
            cells = [
                ("allow" if row.allowed[(client.id, u.name)] else "-").ljust(w)
                for u, w in zip(stack.users, widths, strict=True)
            ]
            lines.append((name.ljust(width) + "  " + row.scope.ljust(scope_width) + "  " + "  ".join(cells)).rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def granted_tools(stack: Stack, client: Client, user: User) -> list[str]:
    """The tools (``target/tool``) a client may call for a person, from the model alone: what the
    compiled rules must agree with, and what the end-to-end tests expect to see listed."""
    allowed = set(stack.client_tool_scopes(client)) & set(stack.user_tool_scopes(user))
    return [f"{b.name}/{tool}" for b in stack.enabled_backends for tool, s in tool_scopes(b).items() if s in allowed]
