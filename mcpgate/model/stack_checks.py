"""What no single field shows: the checks of a whole :class:`~mcpgate.model.Stack`, one concern each.

Each function returns a list of problems, every one a line that starts with the field it is about
(``backends[0] (notes).scope: unknown scope ...``); Stack's model validator reports them together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..layout import AGENTGATEWAY_INTERNAL_PORTS, SERVICES, volume_name
from .durations import duration_seconds
from .fields import GROUP_NAME, split_uid
from .mount_paths import at_or_under
from .network_plan import assign_subnets, stack_networks

if TYPE_CHECKING:
    from .stack_model import Stack

# Tailscale's own WireGuard port; the ingress cannot publish on it when Tailscale runs.
_TAILSCALE_PORT = 41641


def duplicate_names(stack: Stack) -> list[str]:
    """Users, backends and clients each named once."""
    problems: list[str] = []
    for field, kind, names in (
        ("users", "user", [u.name for u in stack.users]),
        ("backends", "backend", [b.name for b in stack.backends]),
        ("clients", "client", [c.id for c in stack.clients]),
    ):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                problems.append(f"{field}: {kind} {name!r} is declared twice; names must be unique")
            seen.add(name)
    return problems


def _declared_hint(stack: Stack) -> str:
    return ", ".join(sorted(stack.scopes))


def tool_scope_problems(stack: Stack) -> list[str]:
    """Every scope a backend's tools need is declared, and every declared scope is needed."""
    problems: list[str] = []
    for i, b in enumerate(stack.backends):
        for scope in b.scopes:
            if scope not in stack.scopes:
                where = "scope" if b.scope else f"tools[{scope!r}]"
                problems.append(
                    f"backends[{i}] ({b.name}).{where}: unknown scope {scope!r}; "
                    f"declare it under scopes or use one of: {_declared_hint(stack)}"
                )
    used = {s for b in stack.backends for s in b.scopes}
    for scope in stack.scopes:
        if scope not in used:
            problems.append(f"scopes: {scope!r} is declared but no backend's tools need it; remove it")
    return problems


def grant_problems(stack: Stack) -> list[str]:
    """What clients, groups and people are granted is declared, and each person is granted something."""
    problems: list[str] = []

    def unknown(where: str, scopes: list[str]) -> None:
        for scope in scopes:
            if scope not in stack.scopes:
                problems.append(f"{where}: unknown scope {scope!r}; use one of: {_declared_hint(stack)}")

    for i, c in enumerate(stack.clients):
        unknown(f"clients[{i}] ({c.id}).scopes", c.scopes or [])
    for group, granted in stack.groups.items():
        bad_name = GROUP_NAME.problem(group)
        if bad_name:
            problems.append(f"groups: {bad_name}")
        unknown(f"groups[{group!r}]", granted)
    for i, u in enumerate(stack.users):
        unknown(f"users[{i}] ({u.name}).scopes", u.scopes or [])
        if stack.groups and u.scopes is None and not any(g in stack.groups for g in u.groups):
            problems.append(
                f"users[{i}] ({u.name}): is in no group that groups grants scopes to, so could use no tool; "
                f"add the user to one of: {', '.join(stack.groups)}, or give the user scopes"
            )
    return problems


def usable_problems(stack: Stack) -> list[str]:
    """Some client and person may use some enabled backend's scope: otherwise the gateway gets no
    rule at all, which agentgateway 1.4 refuses to load (and an empty rule set would allow every
    tool to every token, were it ever given one)."""
    in_use = stack.tool_scopes_in_use
    for client in stack.clients:
        by_client = set(stack.client_tool_scopes(client)) & set(in_use)
        if any(by_client & set(stack.user_tool_scopes(u)) for u in stack.users):
            return []
    clients = "; ".join(f"{c.id} may use {', '.join(stack.client_tool_scopes(c)) or 'no scope'}" for c in stack.clients)
    return [
        "clients, users, groups: no client may use any enabled backend's scope for any person "
        f"(enabled backends need {', '.join(in_use)}; {clients}): the gateway would have no rule to load and "
        "refuse to start; give a client and a person one of those scopes"
    ]


def enabled_problems(stack: Stack) -> list[str]:
    return [] if any(b.enabled for b in stack.backends) else ["backends: none is enabled; enable at least one"]


def network_problems(stack: Stack) -> list[str]:
    """The pool has a slot for each of the stack's networks (network_plan lays them out)."""
    try:
        assign_subnets(stack.network_pool, stack_networks(stack), {})
    except ValueError as err:
        return [str(err)]
    return []


def port_problems(stack: Stack) -> list[str]:
    """The published ports clash with no port agentgateway or Tailscale keeps for itself."""
    problems: list[str] = []
    if stack.gateway_port in AGENTGATEWAY_INTERNAL_PORTS:
        role = AGENTGATEWAY_INTERNAL_PORTS[stack.gateway_port]
        problems.append(
            f"gateway_port: {stack.gateway_port} clashes with agentgateway's own {role} port; choose another"
        )
    if stack.tailscale.enabled and stack.ingress_port == _TAILSCALE_PORT:
        problems.append(f"ingress_port: {_TAILSCALE_PORT} is Tailscale's own port; choose another")
    return problems


def funnel_problems(stack: Stack) -> list[str]:
    """With Tailscale Funnel, the hostname is the node's MagicDNS name."""
    if not stack.tailscale.enabled:
        return []
    if not stack.hostname.endswith(".ts.net"):
        return [
            f"hostname: with Tailscale Funnel the public name is <node>.<tailnet>.ts.net, "
            f"not {stack.hostname!r}; or set tailscale.enabled = False"
        ]
    if len(stack.hostname.split(".")) != 4:
        return [f"hostname: {stack.hostname!r} must be the node's MagicDNS name <node>.<tailnet>.ts.net"]
    return []


def backend_host_problems(stack: Stack) -> list[str]:
    """Backends reaching into the stack's own folder, or running as one of its services."""
    problems: list[str] = []
    service_uids = stack.uids.by_uid()
    base_dir = stack.base_dir
    own_volumes = {volume_name(stack.name, s.service): s.service for s in SERVICES.values() if s.data}
    for i, b in enumerate(stack.backends):
        writes_host = [v.source for v in b.volumes if v.is_host_path and not v.read_only]
        if writes_host and (b.user is None or split_uid(b.user)[0] == 0):
            runs = "as the image's user (root, unless the image says otherwise)" if b.user is None else "as root"
            problems.append(
                f"backends[{i}] ({b.name}).user: the backend writes to the host folder {writes_host[0]} and runs "
                f"{runs}: a file it made there could be setuid root for every local user; set user to the "
                'folder\'s owner (uid:gid, e.g. "1000:1000"), or mount it read_only'
            )
        for j, v in enumerate(b.volumes):
            if v.source in own_volumes:
                problems.append(
                    f"backends[{i}] ({b.name}).volumes[{j}].source: {v.source!r} is the stack's own "
                    f"{own_volumes[v.source]} data volume (sessions, tokens, the users' second factors); a backend "
                    "may never mount it: give the backend a volume of its own, e.g. "
                    f'"{b.name}-data"'
                )
            if not v.is_host_path:
                continue
            if at_or_under(v.source, base_dir) or at_or_under(base_dir, v.source):
                how = "is" if v.source == base_dir else "is inside" if at_or_under(v.source, base_dir) else "holds"
                problems.append(
                    f"backends[{i}] ({b.name}).volumes[{j}].source: {v.source!r} {how} the stack's own folder "
                    f"base_dir ({base_dir}: Authelia's secrets, the token-signing key, the Redis password); "
                    "mounting it would hand the backend the whole stack; mount a folder outside it, e.g. /srv/notes"
                )
        if b.user is not None:
            uid = split_uid(b.user)[0]
            for service in service_uids.get(uid, []):
                problems.append(
                    f"backends[{i}] ({b.name}).user: uid {uid} is also uids.{service}, which owns that service's "
                    "secret files on the host; give the backend a uid of its own (e.g. the owner of its data)"
                )
    return problems


def secret_name_problems(stack: Stack) -> list[str]:
    """Each secret a person supplies goes to exactly one place."""
    places: dict[str, list[str]] = {}
    for i, b in enumerate(stack.backends):
        if b.token_secret:
            places.setdefault(b.token_secret, []).append(f"backends[{i}] ({b.name}).token_secret")
        for j, s in enumerate(b.secrets):
            places.setdefault(s.name, []).append(f"backends[{i}] ({b.name}).secrets[{j}].name")
    if stack.tailscale.enabled:
        places.setdefault(stack.tailscale.auth_key_secret, []).append("tailscale.auth_key_secret")
    if stack.backup:
        for field in ("s3_access_key_secret", "s3_secret_key_secret"):
            if stack.backup.kind == "s3":
                places.setdefault(getattr(stack.backup, field), []).append(f"backup.{field}")
    problems = []
    for name, where in places.items():
        if len(where) > 1:
            why = (
                "the Tailscale auth key must never reach a backend or the gateway"
                if "tailscale.auth_key_secret" in where
                else "each secret goes to one place, so rotating or revoking it touches one place only"
            )
            problems.append(
                f"{where[0]}: secret {name!r} is also {' and '.join(where[1:])}; {why}: give each its own name "
                "(store the value twice if both really need it)"
            )
    return problems


def backup_problems(stack: Stack) -> list[str]:
    """A local repository inside what it backs up (or the stack's own folder) would hold copies of
    itself, and be lost with the disk it is meant to outlive."""
    if stack.backup is None or stack.backup.kind != "local":
        return []
    repo = stack.backup.repository
    problems = []
    if at_or_under(repo, stack.base_dir) or at_or_under(stack.base_dir, repo):
        problems.append(
            f"backup.repository: {repo!r} overlaps the stack's own folder base_dir ({stack.base_dir}), which a "
            'rebuild replaces; put the repository on a disk of its own, e.g. "/mnt/backup/mcpgate"'
        )
    for i, b in enumerate(stack.backends):
        for j, v in enumerate(b.volumes):
            if v.is_host_path and v.backup and (at_or_under(repo, v.source) or at_or_under(v.source, repo)):
                problems.append(
                    f"backup.repository: {repo!r} overlaps backends[{i}] ({b.name}).volumes[{j}].source "
                    f"{v.source!r}, which is backed up into it: each backup would hold the repository itself; "
                    'put the repository on a disk of its own, e.g. "/mnt/backup/mcpgate"'
                )
    return problems


def lifespan_problems(stack: Stack) -> list[str]:
    """A client whose refresh token would die before the access token it renews."""
    problems = []
    for i, c in enumerate(stack.clients):
        access, refresh = stack.client_lifespans(c)
        if duration_seconds(access) <= duration_seconds(refresh):
            continue
        own = c.access_token_lifespan is not None or c.refresh_token_lifespan is not None
        where = f"clients[{i}] ({c.id})" if own else "access_token_lifespan"
        problems.append(
            f"{where}: the access tokens of client {c.id!r} would live {access!r}, longer than its refresh tokens "
            f"({refresh!r}), which would die before the access token they renew; give refresh_token_lifespan "
            "the longer duration"
        )
    return problems


def stack_problems(stack: Stack) -> list[str]:
    """Every problem of the stack as a whole (its fields each valid), in the order they are reported."""
    problems = [
        *duplicate_names(stack),
        *tool_scope_problems(stack),
        *grant_problems(stack),
        *enabled_problems(stack),
    ]
    # Laying out the networks needs unique, well-formed backends: only then is it asked.
    if not problems:
        problems += network_problems(stack)
        problems += usable_problems(stack)
    problems += [
        *port_problems(stack),
        *funnel_problems(stack),
        *backend_host_problems(stack),
        *secret_name_problems(stack),
        *backup_problems(stack),
        *lifespan_problems(stack),
    ]
    return problems
