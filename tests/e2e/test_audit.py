"""The audit trail, against the real Authelia and agentgateway: two people through two clients call
allowed and refused tools, one of them fails a sign-in, and ``mcpgate audit`` (reading the host
over the deploy's SSH connection) shows exactly those events, with names, clients and outcomes.

Every test needs both real components: where one cannot run the module skips, as one, with the
reason (never a stand-in)."""

from __future__ import annotations

import json
import re
import secrets as pysecrets
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.e2e.harness import INGRESS_PORT, Deployer, RunResult, docker, name_of, skip_module_without
from tests.e2e.mcp_client import McpClient
from tests.e2e.oauth import Flow, Session, login

skip_module_without("authelia", "agentgateway")

HOSTNAME = "mcp-gateway.home.test"
RESOURCE = f"https://{HOSTNAME}/mcp"
INVENTORY = "inventory/local.py"
INSPECTOR_CALLBACK = "http://localhost:6274/oauth/callback"


def _session() -> Session:
    # An address of its own: the failed sign-in below must not add up to a ban of another test's.
    xff = f"203.0.113.{pysecrets.randbelow(250) + 1}"
    return Session(f"http://127.0.0.1:{INGRESS_PORT}", HOSTNAME, extra_headers={"X-Forwarded-For": xff})


def _token(deployer: Deployer, user: str, client: str) -> str:
    if client == "claude-ai":
        flow = Flow(_session(), client, "openid notes:read notes:write", resource=RESOURCE)
        secret: str | None = deployer.store_file("clients/claude-ai.secret")
    else:  # the public inspector: PKCE only, notes:read at most
        flow = Flow(_session(), client, "openid notes:read", resource=RESOURCE, redirect_uri=INSPECTOR_CALLBACK)
        secret = None
    code = login(flow, user, deployer.store_file(f"users/{user}.password"), deployer.store_file(f"users/{user}.totp"))
    r = flow.token(code, secret)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def _call(token: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    client = McpClient(f"http://127.0.0.1:{INGRESS_PORT}", HOSTNAME, token)
    client.initialize()
    r = client.post("tools/call", {"name": tool, "arguments": arguments})
    body = client.message(r) if r.text.strip() else {}
    return {"status": r.status_code, "body": body}


@pytest.fixture(scope="module")
def events(deployer: Deployer, first_run: RunResult) -> dict[str, Any]:
    """The events the test makes, in order, and when it started."""
    since = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1)  # log times have a second's precision at most
    alice_claude = _token(deployer, "alice", "claude-ai")
    bob_claude = _token(deployer, "bob", "claude-ai")
    alice_inspector = _token(deployer, "alice", "mcp-inspector")
    calls = {
        "alice claude search": _call(alice_claude, "search", {"query": "gateway"}),
        "alice claude write": _call(alice_claude, "write", {"path": "audit.md", "content": "SECRET-CONTENT-42"}),
        "bob claude read": _call(bob_claude, "read", {"path": "shopping.md"}),
        "bob claude write": _call(bob_claude, "write", {"path": "bob.md", "content": "x"}),
        "alice inspector write": _call(alice_inspector, "write", {"path": "insp.md", "content": "y"}),
    }
    # Bob mistypes his password once.
    flow = Flow(_session(), "claude-ai", "openid notes:read", resource=RESOURCE)
    assert flow.authorize().status_code in (302, 303)
    failed = flow.first_factor("bob", "not-bobs-password").json()
    assert failed["status"] == "KO", failed
    time.sleep(2)
    return {"since": since, "calls": calls, "tokens": [alice_claude, bob_claude, alice_inspector]}


def _audit(deployer: Deployer, *args: str) -> list[dict[str, Any]]:
    r = deployer.mcpgate("audit", INVENTORY, "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _rows(events: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(e["person"], e["client"], e["tool"], e["outcome"]) for e in events]


def test_the_audit_shows_who_called_what_through_which_client(deployer: Deployer, events: dict[str, Any]) -> None:
    statuses = {k: v["status"] for k, v in events["calls"].items()}
    assert statuses == {
        "alice claude search": 200,
        "alice claude write": 200,
        "bob claude read": 200,
        "bob claude write": 400,
        "alice inspector write": 400,
    }, events["calls"]
    since = events["since"].isoformat()
    trail = _audit(deployer, "--since", since)
    # agentgateway writes a request's line when it lets go of the request, which can be a little after the
    # answer (seen: alice's allowed write logged 0.8 s late, after two later calls): the trail is in the
    # log's time order, so the calls are compared as a set and the order is checked on the log's times.
    expected = [
        ("alice", "claude-ai", "notes/search", "allowed"),
        ("alice", "claude-ai", "notes/write", "allowed"),
        ("bob", "claude-ai", "notes/read", "allowed"),
        ("bob", "claude-ai", "notes/write", "refused"),
        ("alice", "mcp-inspector", "notes/write", "refused"),
        ("bob", "-", "-", "sign-in failed"),
    ]
    assert sorted(_rows(trail)) == sorted(expected), json.dumps(trail, indent=1)
    # The gateway's lines in their time order (Authelia's times have whole seconds only: the sign-in
    # failure, made last, may carry an earlier time than the gateway's last line of that second).
    times = [datetime.fromisoformat(e["time"]) for e in trail if e["tool"] != "-"]
    assert times == sorted(times), trail
    by_row = {row: e for row, e in zip(_rows(trail), trail, strict=True)}
    assert by_row[expected[3]]["detail"] == "needs notes:write, which bob is not granted", trail
    assert by_row[expected[4]]["detail"] == "needs notes:write, which client mcp-inspector may not use", trail
    assert by_row[expected[5]]["detail"].startswith("1FA failed from 203.0.113."), trail
    assert [by_row[row]["status"] for row in expected[:5]] == [200, 200, 200, 400, 400]
    assert all(isinstance(by_row[row]["duration_ms"], int) for row in expected[:5])

    # The filters, and the table a person reads.
    def rows_where(keep: Any) -> list[tuple[str, str, str, str]]:
        return [row for row in _rows(trail) if keep(row)]

    assert _rows(_audit(deployer, "--since", since, "--person", "bob")) == rows_where(lambda r: r[0] == "bob")
    assert _rows(_audit(deployer, "--since", since, "--client", "mcp-inspector")) == [expected[4]]
    assert _rows(_audit(deployer, "--since", since, "--refused")) == rows_where(lambda r: r[3] != "allowed")
    table = deployer.mcpgate("audit", INVENTORY, "--since", since)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["time", "(UTC)", "person", "client", "tool", "outcome", "detail"]
    assert len(lines) == 2 + 6
    assert [line.split()[2:5] for line in lines[2:]] == [list(row[:3]) for row in _rows(trail)], lines
    # after time (two words), person, client and tool: the outcome, which may be two words
    assert all(line.split(None, 5)[5].startswith(row[3]) for line, row in zip(lines[2:], _rows(trail), strict=True)), (
        lines
    )
    assert table.stderr == ""  # the logs go back further than --since

    # With no --since: everything the host kept, and where that begins (before these events).
    whole = deployer.mcpgate("audit", INVENTORY)
    assert whole.returncode == 0, whole.stderr
    notes = whole.stderr.splitlines()
    assert [n.split(" begins ")[0] for n in notes] == [
        "mcpgate: the gateway's log on 127.0.0.1",
        "mcpgate: Authelia's log on 127.0.0.1",
    ], notes
    for note in notes:
        begins = datetime.strptime(note.split(" begins ")[1][:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        assert begins <= events["since"], note


def test_the_log_holds_no_token_and_no_tool_arguments(deployer: Deployer, events: dict[str, Any]) -> None:
    log = docker("logs", name_of("agentgateway")).stdout + docker("logs", name_of("agentgateway")).stderr
    assert "SECRET-CONTENT-42" not in log  # alice's note text (the inventory asks for no arguments)
    # No token, nor its signature (a part that alone could be looked for), nor anything shaped like a
    # JWT or a bearer header. ("eyJ" alone is no sign: the gateway's encrypted session ids are base64.)
    for token in events["tokens"]:
        assert token not in log and token.rsplit(".", 1)[1] not in log
    assert not re.search(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.", log)
    assert not re.search(r"Bearer\s+[\w.~+/-]{8,}", log)


def test_failed_sign_ins_and_bans_show_with_their_address(deployer: Deployer, events: dict[str, Any]) -> None:
    """Someone tries a name no person has; then bob's password is guessed from one address until Authelia
    bans it (after sign_in_failures failures): each failure, then the ban, shows."""
    since = datetime.now(UTC).replace(microsecond=0).isoformat()
    time.sleep(1)
    stranger, guesser = _session(), _session()
    attempts = [(stranger, "mallory")] + [(guesser, "bob")] * 6
    for session, user in attempts:
        flow = Flow(session, "claude-ai", "openid notes:read", resource=RESOURCE)
        assert flow.authorize().status_code in (302, 303)
        assert flow.first_factor(user, "guess").json()["status"] == "KO"
    trail = _audit(deployer, "--since", since, "--refused")
    outcomes = [(e["person"], e["outcome"]) for e in trail]
    assert outcomes == [("?", "sign-in failed")] + [("bob", "sign-in failed")] * 5 + [("bob", "banned")], trail
    assert "(username 'mallory', no such person)" in trail[0]["detail"]
    assert stranger.extra_headers["X-Forwarded-For"] in trail[0]["detail"]
    assert all(guesser.extra_headers["X-Forwarded-For"] in e["detail"] for e in trail[1:]), trail
    assert "banned until" in trail[-1]["detail"]


def test_mistakes_get_one_line_and_no_traceback(deployer: Deployer, first_run: RunResult) -> None:
    for args, expected in (
        (["--person", "carol"], "--person 'carol' is no person of the inventory; people: alice, bob"),
        (["--client", "cursor"], "--client 'cursor' is no client of the inventory"),
        (["--since", "yesterday"], "--since 'yesterday' is neither an age nor a date"),
    ):
        r = deployer.mcpgate("audit", INVENTORY, *args)
        assert r.returncode == 2 and expected in r.stderr and "Traceback" not in r.stderr, r.stderr
