"""The audit trail a person reads: who called which tool, through which client, with what outcome,
and who failed to sign in or was banned, from the logs of agentgateway and Authelia.

agentgateway writes one JSON object a line per request (``config.logging.format: json``) with the
fields its access log adds (templates/agentgateway/config.yaml.j2): ``jwt.sub``, ``client.id``,
``scopes``, ``mcp.method.name``, ``mcp.target``, ``gen_ai.tool.name``, ``http.status``, ``error``,
``duration`` and ``mcpgate.allowed`` (the tool rules evaluated again: a refused call answers
"Unknown tool", as one the backend lacks does). Authelia writes logfmt text; a failed sign-in is
``Unsuccessful <factor> authentication attempt by user '<name>'`` (``... and they are banned until
<when>`` once the address is banned), with ``remote_ip``.

Example::

    events = gateway_events(lines, stack, {"4cba...": "alice"}) + authelia_events(auth_lines, stack)
    print(format_table(select(events, since=parse_since("2h", now))))
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import MCPGateError
from .model import Stack
from .policy import tool_scopes

ALLOWED, REFUSED, FAILED = "allowed", "refused", "failed"
SIGN_IN_FAILED, BANNED = "sign-in failed", "banned"
REFUSED_OUTCOMES = (REFUSED, SIGN_IN_FAILED, BANNED)


@dataclass(frozen=True)
class AuditEvent:
    time: datetime
    person: str  # the inventory's user name; "?" with the subject or username in ``detail`` otherwise
    client: str  # OAuth client id, "-" for a sign-in
    tool: str  # target/tool, or the MCP method of a refused request that named no tool, "-" for a sign-in
    outcome: str  # allowed, refused, failed, sign-in failed, banned
    detail: str  # why (a refusal's reason, an error), the sign-in's address
    status: int | None = None  # the gateway's HTTP status
    duration_ms: int | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["time"] = self.time.isoformat().replace("+00:00", "Z")
        return data


# --- agentgateway -------------------------------------------------------------------------------------

_FRACTION = re.compile(r"\.(\d+)")


def parse_time(text: str) -> datetime:
    """An RFC 3339 time as the logs write it (agentgateway drops trailing zeros of the fraction)."""
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text.strip(), count=1)
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _duration_ms(value: Any) -> int | None:
    m = re.fullmatch(r"(\d+)ms", str(value or ""))
    return int(m.group(1)) if m else None


def refusal_reason(stack: Stack, target: str, tool: str, client: str, person: str | None, scopes: list[str]) -> str:
    """Why the inventory's rules refuse ``tool`` on ``target`` to this person, client and token."""
    backend = next((b for b in stack.enabled_backends if b.name == target), None)
    if backend is None:
        return f"the inventory has no enabled backend {target}"
    by_tool = tool_scopes(backend)
    scope = by_tool.get(tool, by_tool.get("*"))
    if not scope:
        return f"the inventory lists no tool {tool} on {target}"
    known = next((c for c in stack.clients if c.id == client), None)
    user = next((u for u in stack.users if u.name == person), None)
    if known is None:
        return f"client {client} is not in the inventory"
    if user is None:
        return "the token's subject is no person of the inventory"
    if scope not in stack.user_tool_scopes(user):
        return f"needs {scope}, which {user.name} is not granted"
    if scope not in stack.client_tool_scopes(known):
        return f"needs {scope}, which client {client} may not use"
    if scope not in scopes:
        held = ", ".join(s for s in scopes if s in stack.tool_scopes_in_use) or "none of this server's scopes"
        return f"needs {scope}; the token carries {held}"
    return "refused by the gateway's rules (its config may predate the inventory: deploy)"


def gateway_events(lines: Iterable[str], stack: Stack, people: dict[str, str]) -> list[AuditEvent]:
    """Tool calls, and requests the gateway refused to a signed-in person, from its JSON access log.
    ``people`` maps each ``sub`` to the person's name."""
    out = []
    for line in lines:
        entry = _json_line(line)
        if entry is None or entry.get("scope") != "request":
            continue
        method = entry.get("mcp.method.name")
        status = entry.get("http.status")
        sub = entry.get("jwt.sub")
        is_call = method == "tools/call" and entry.get("gen_ai.tool.name")
        if not is_call and not (sub and status == 403):
            continue  # listings, sessions, unauthenticated probes: not what an audit asks about
        person = people.get(sub or "")
        client = str(entry.get("client.id") or "-")
        scopes = [str(s) for s in entry.get("scopes") or [] if isinstance(s, str)]
        target = str(entry.get("mcp.target") or "")
        error = str(entry.get("error") or entry.get("mcp.error.message") or "")
        if is_call:
            tool = str(entry["gen_ai.tool.name"])
            name = f"{target}/{tool}" if target else tool
            allowed = entry.get("mcpgate.allowed")
            if allowed is False or (allowed is None and status == 400 and "Unknown tool" in error):
                outcome = REFUSED
                detail = refusal_reason(stack, target, tool, client, person, scopes)
            elif status == 200 and not error:
                outcome, detail = ALLOWED, ""
            else:
                outcome, detail = FAILED, error or f"HTTP {status}"
        else:
            name = str(method or entry.get("http.path") or "-")
            outcome = REFUSED
            detail = "the token carries none of this server's scopes"
        out.append(
            AuditEvent(
                time=parse_time(str(entry["time"])),
                person=person or "?",
                client=client,
                tool=name,
                outcome=outcome,
                detail=detail if person or not sub else f"{detail} (subject {sub})".lstrip(),
                status=status if isinstance(status, int) else None,
                duration_ms=_duration_ms(entry.get("duration")),
            )
        )
    return out


def _json_line(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and "time" in entry else None


# --- Authelia -----------------------------------------------------------------------------------------

_LOGFMT = re.compile(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)')
_FAILED = re.compile(r"^Unsuccessful (\S+) authentication attempt by user '(.*?)'( and they are banned until (.+))?$")


def logfmt(line: str) -> dict[str, str]:
    """``key=value key="quoted value"`` pairs, as Authelia's text format writes them."""
    out = {}
    for key, value in _LOGFMT.findall(line):
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        out[key] = value
    return out


_NO_SUCH_USER = re.compile(r"^Error occurred getting details for user with username input '(.*?)'")


def authelia_events(lines: Iterable[str], stack: Stack) -> list[AuditEvent]:
    """Failed sign-ins (each factor) and bans, from Authelia's log."""
    users = {u.name for u in stack.users}
    out: list[AuditEvent] = []
    nameless: tuple[int, str] | None = None  # a failure logged with no username, and its address
    for line in lines:
        entry = logfmt(line)
        msg = entry.get("msg", "")
        unknown = _NO_SUCH_USER.match(msg)
        if unknown and nameless and nameless[1] == entry.get("remote_ip", ""):
            # A name no person has is logged as user '' and, right after, on a line of its own.
            index = nameless[0]
            event = out[index]
            out[index] = replace(event, detail=f"{event.detail} (username {unknown.group(1)!r}, no such person)")
            nameless = None
            continue
        m = _FAILED.match(msg)
        if not m or "time" not in entry:
            continue
        factor, username, banned_until = m.group(1), m.group(2), m.group(4)
        address = entry.get("remote_ip", "")
        where = f" from {address}" if address else ""
        if banned_until:
            outcome, detail = BANNED, f"{factor} refused{where}: banned until {banned_until}"
        else:
            outcome, detail = SIGN_IN_FAILED, f"{factor} failed{where}"
        known = username in users
        if username and not known:
            detail += f" (username {username!r}, no person of the inventory)"
        nameless = (len(out), address) if not username else None
        out.append(AuditEvent(parse_time(entry["time"]), username if known else "?", "-", "-", outcome, detail))
    return out


def journal_messages(lines: Iterable[str]) -> list[str]:
    """The log lines in ``journalctl -o json`` output of a container's entries: each entry's
    MESSAGE (bytes that are not UTF-8 come as a list of numbers), a line Docker's journald driver
    cut into parts (over 16 KiB) joined again."""
    out: list[str] = []
    partial = ""
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        message = entry.get("MESSAGE", "")
        if isinstance(message, list):
            message = bytes(b for b in message if isinstance(b, int) and 0 <= b < 256).decode(errors="replace")
        partial += str(message)
        if entry.get("CONTAINER_PARTIAL_MESSAGE") == "true" or entry.get("CONTAINER_PARTIAL_LAST") == "false":
            continue
        out.append(partial)
        partial = ""
    if partial:
        out.append(partial)
    return out


def log_begins(lines: Iterable[str]) -> datetime | None:
    """The time of a log's first line (agentgateway's JSON or Authelia's logfmt), if it has one."""
    for line in lines:
        entry: dict[str, Any] | None = _json_line(line) or logfmt(line)
        try:
            return parse_time(str(entry["time"])) if entry and "time" in entry else None
        except ValueError:
            return None
    return None


# --- choosing and showing -----------------------------------------------------------------------------

_AGO = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: an age (``30m``, ``2h``, ``7d``, ``1w``) or a date or time (``2026-12-07``,
    ``2026-12-07T05:00``, UTC unless it names its offset)."""
    value = text.strip()
    m = _AGO.match(value.lower())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MCPGateError(
            f"--since {text!r} is neither an age nor a date: write e.g. 30m, 2h, 7d, 2026-12-07 or 2026-12-07T05:00"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def select(
    events: Iterable[AuditEvent],
    *,
    since: datetime | None = None,
    person: str | None = None,
    client: str | None = None,
    refused: bool = False,
) -> list[AuditEvent]:
    """The events that match every given filter, oldest first."""
    chosen = [
        e
        for e in events
        if (since is None or e.time >= since)
        and (person is None or e.person == person)
        and (client is None or e.client == client)
        and (not refused or e.outcome in REFUSED_OUTCOMES)
    ]
    return sorted(chosen, key=lambda e: e.time)


def check_filters(stack: Stack, person: str | None, client: str | None) -> None:
    """A person or client the inventory does not know is a typo, not an empty trail."""
    if person is not None and person not in {u.name for u in stack.users}:
        known = ", ".join(u.name for u in stack.users)
        raise MCPGateError(f"--person {person!r} is no person of the inventory; people: {known}")
    if client is not None and client not in {c.id for c in stack.clients}:
        known = ", ".join(c.id for c in stack.clients)
        raise MCPGateError(f"--client {client!r} is no client of the inventory; clients: {known}")


COLUMNS = ("time (UTC)", "person", "client", "tool", "outcome", "detail")


def format_table(events: list[AuditEvent]) -> str:
    if not events:
        return "no events"
    rows = [
        (e.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), e.person, e.client, e.tool, e.outcome, e.detail)
        for e in events
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def format_json(events: list[AuditEvent]) -> str:
    return json.dumps([e.as_json() for e in events], indent=2)
