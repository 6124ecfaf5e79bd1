"""The audit trail's parsing and output, from log lines the real agentgateway 1.4.1 and Authelia
4.39.20 wrote in tests/e2e/test_audit.py (tests/fixtures/audit/, session ids cut out)."""

from __future__ import annotations

import json
import runpy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcpgate import cli
from mcpgate.audit import (
    AuditEvent,
    authelia_events,
    check_filters,
    format_table,
    gateway_events,
    journal_messages,
    log_begins,
    logfmt,
    parse_since,
    parse_time,
    refusal_reason,
    select,
)
from mcpgate.errors import InventoryError, MCPGateError
from mcpgate.identity import subjects
from mcpgate.model import Stack, load_stack
from mcpgate.policy import compile_rules, evaluate
from mcpgate.render import render_stack
from mcpgate.secrets import StackSecrets
from mcpgate.validate import reference_dir, validate_rendered
from tests.conftest import PROJECT_ROOT

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "audit"
GATEWAY = (FIXTURES / "agentgateway.log").read_text().splitlines()
AUTHELIA = (FIXTURES / "authelia.log").read_text().splitlines()
ALICE, BOB = "6875c112-a594-46bc-84b3-cb0d8e444e43", "f1b3d3dd-6ab5-4dc9-a683-52feede6e5e9"
PEOPLE = {ALICE: "alice", BOB: "bob"}


@pytest.fixture(scope="module")
def local() -> Stack:
    ((name, data),) = runpy.run_path(str(PROJECT_ROOT / "inventory" / "local.py"))["local"]
    return load_stack(name, data["mcpgate"])


def rows(events: list[AuditEvent]) -> list[tuple[str, str, str, str]]:
    return [(e.person, e.client, e.tool, e.outcome) for e in events]


def test_tool_calls_with_person_client_and_outcome(local: Stack) -> None:
    events = gateway_events(GATEWAY, local, PEOPLE)
    # initialize, notifications and listings are left out: only the tool calls.
    assert rows(events) == [
        ("alice", "claude-ai", "notes/search", "allowed"),
        ("alice", "claude-ai", "notes/write", "allowed"),
        ("bob", "claude-ai", "notes/read", "allowed"),
        ("bob", "claude-ai", "notes/write", "refused"),
        ("alice", "mcp-inspector", "notes/write", "refused"),
    ]
    assert [e.status for e in events] == [200, 200, 200, 400, 400]
    assert events[3].detail == "needs notes:write, which bob is not granted"
    assert events[4].detail == "needs notes:write, which client mcp-inspector may not use"
    assert all(e.duration_ms is not None for e in events)
    assert events[0].time < events[-1].time
    # Bob's token carries notes:write (Authelia grants what the client may ask for): the gateway's rules
    # refuse him, and the logged verdict says so.
    assert [json.loads(g)["mcpgate.allowed"] for g in GATEWAY if "tools/call" in g] == [True, True, True, False, False]


def test_a_subject_no_person_has_is_shown_as_such(local: Stack) -> None:
    events = gateway_events(GATEWAY, local, {ALICE: "alice"})
    assert events[2].person == "?" and f"subject {BOB}" in events[2].detail


def test_the_logged_verdict_tells_a_refusal_from_a_failure(local: Stack) -> None:
    line = json.loads(next(g for g in GATEWAY if '"gen_ai.tool.name":"write"' in g and '"http.status":400' in g))
    # The backend lacked the tool although the rules allow it: a failure, not a refusal.
    allowed = json.dumps({**line, "mcpgate.allowed": True})
    (event,) = gateway_events([allowed], local, PEOPLE)
    assert (event.outcome, event.detail) == ("failed", "mcp: Unknown tool: write")
    # A JSON-RPC error from the backend inside a 200.
    backend_error = {
        **line,
        "mcpgate.allowed": True,
        "http.status": 200,
        "error": None,
        "mcp.error.message": "disk full",
    }
    (event,) = gateway_events([json.dumps(backend_error)], local, PEOPLE)
    assert (event.outcome, event.detail) == ("failed", "disk full")
    # A line from a gateway whose config predates the verdict: "Unknown tool" with 400 reads as refused.
    older = {k: v for k, v in line.items() if k != "mcpgate.allowed"}
    assert gateway_events([json.dumps(older)], local, PEOPLE)[0].outcome == "refused"
    # No-scope refusal (403) of another method, and lines that are no JSON at all.
    refused = json.dumps({**line, "http.status": 403, "mcp.method.name": "tools/list", "gen_ai.tool.name": None})
    (event,) = gateway_events([refused, "not json", "{broken", "[1]"], local, PEOPLE)
    assert (event.tool, event.outcome) == ("tools/list", "refused")


def test_refusal_reasons_from_the_inventory(local: Stack) -> None:
    assert refusal_reason(local, "notes", "read", "claude-ai", "bob", []) == (
        "needs notes:read; the token carries none of this server's scopes"
    )
    no_tool = refusal_reason(local, "notes", "rm-rf", "claude-ai", "alice", [])
    assert no_tool == "the inventory lists no tool rm-rf on notes"
    no_backend = refusal_reason(local, "mail", "send", "claude-ai", "alice", [])
    assert no_backend == "the inventory has no enabled backend mail"
    assert refusal_reason(local, "notes", "read", "cursor", "alice", []) == "client cursor is not in the inventory"


def test_failed_sign_ins_and_bans_from_authelias_log(local: Stack) -> None:
    events = authelia_events(AUTHELIA, local)
    assert [(e.person, e.client, e.tool, e.outcome) for e in events] == [
        ("bob", "-", "-", "sign-in failed"),  # a mistyped password
        ("?", "-", "-", "sign-in failed"),  # a name no person has
        *[("bob", "-", "-", "sign-in failed")] * 5,  # guesses from one address...
        ("bob", "-", "-", "banned"),  # ...until Authelia bans it
    ]
    assert events[0].detail == "1FA failed from 203.0.113.19"
    assert events[0].time == datetime(2026, 12, 7, 5, 26, 43, tzinfo=UTC)
    # Authelia logs an unknown name as user '' and names it on the next line.
    assert events[1].detail == "1FA failed from 203.0.113.183 (username 'mallory', no such person)"
    assert events[-1].detail == "1FA refused from 203.0.113.190: banned until 5:42:43AM on December 7 2026 (+00:00)"
    stranger = 'time="2026-12-07T05:28:00Z" level=error msg="Unsuccessful TOTP authentication attempt by user \'eve\'"'
    (event,) = authelia_events([stranger], local)
    assert (event.person, event.detail) == ("?", "TOTP failed (username 'eve', no person of the inventory)")


def test_logfmt_reads_quoted_values() -> None:
    assert logfmt('time="t" msg="say \\"hi\\"" remote_ip=1.2.3.4 subflow=') == {
        "time": "t",
        "msg": 'say "hi"',
        "remote_ip": "1.2.3.4",
        "subflow": "",
    }


def test_times_as_the_logs_write_them() -> None:
    # agentgateway drops the fraction's trailing zeros: .77450 is 774500 µs, not 77450.
    assert parse_time("2026-12-07T05:05:06.77450Z").microsecond == 774500
    assert parse_time("2026-12-07T05:05:09Z") == datetime(2026, 12, 7, 5, 5, 9, tzinfo=UTC)


def test_since_takes_ages_and_dates() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert parse_since("30m", now) == datetime(2026, 12, 7, 11, 30, tzinfo=UTC)
    assert parse_since("2d", now) == datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert parse_since("2026-12-01", now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_since("2026-12-01T08:00+02:00", now) == datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    with pytest.raises(MCPGateError, match="--since 'yesterday' is neither an age nor a date"):
        parse_since("yesterday", now)


def test_filters_and_unknown_names(local: Stack) -> None:
    events = gateway_events(GATEWAY, local, PEOPLE) + authelia_events(AUTHELIA, local)
    bob = select(events, person="bob")
    assert [e.outcome for e in bob] == ["allowed", "refused", *["sign-in failed"] * 6, "banned"]
    assert rows(select(events, client="mcp-inspector")) == [("alice", "mcp-inspector", "notes/write", "refused")]
    assert [e.outcome for e in select(events, refused=True)][:3] == ["refused", "refused", "sign-in failed"]
    assert len(select(events, refused=True)) == 2 + 8
    assert select(events, since=datetime(2026, 12, 7, 5, 26, 42, tzinfo=UTC))[0].outcome == "sign-in failed"
    with pytest.raises(MCPGateError, match="--person 'carol' is no person of the inventory; people: alice, bob"):
        check_filters(local, "carol", None)
    with pytest.raises(MCPGateError, match="--client 'cursor' is no client of the inventory"):
        check_filters(local, None, "cursor")


def test_the_command_prints_a_table_and_json(
    local: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The command itself, with the host's logs given (reading them over SSH is the e2e test's)."""
    monkeypatch.setenv("MCPGATE_SECRETS_DIR", str(tmp_path))
    monkeypatch.delenv("MCPGATE_SSH_PORT", raising=False)
    host = tmp_path / "@local" / "users"
    host.mkdir(parents=True)
    for folder in (host.parent, host):
        folder.chmod(0o700)  # the store's own modes: it warns about anything wider
    for name, sub in (("alice", ALICE), ("bob", BOB)):
        (host / f"{name}.sub").write_text(sub)
        (host / f"{name}.sub").chmod(0o600)
    monkeypatch.setattr(cli, "read_service_logs", lambda hs, since: {"agentgateway": GATEWAY, "authelia": AUTHELIA})
    inventory = str(PROJECT_ROOT / "inventory" / "local.py")
    assert cli.main(["audit", inventory]) == 0
    out = capsys.readouterr()
    table = out.out.splitlines()
    assert out.err == ""  # no first lines given: nothing said about where the logs begin
    assert table[0].split() == ["time", "(UTC)", "person", "client", "tool", "outcome", "detail"]
    assert table[2].split() == ["2026-12-07", "05:26:37", "alice", "claude-ai", "notes/search", "allowed"]
    assert table[5].split()[2:6] == ["bob", "claude-ai", "notes/write", "refused"]
    assert table[5].endswith("  needs notes:write, which bob is not granted")
    assert table[7].split()[2:6] == ["bob", "-", "-", "sign-in"]
    assert table[-1].split()[2:5] == ["bob", "-", "-"] and "banned until" in table[-1]
    assert len(table) == 2 + 5 + 8
    assert cli.main(["audit", inventory, "--json", "--refused", "--person", "alice"]) == 0
    (only,) = json.loads(capsys.readouterr().out)
    assert only == {
        "time": "2026-12-07T05:26:41.969607Z",
        "person": "alice",
        "client": "mcp-inspector",
        "tool": "notes/write",
        "outcome": "refused",
        "detail": "needs notes:write, which client mcp-inspector may not use",
        "status": 400,
        "duration_ms": 0,
    }
    assert format_table([]) == "no events"

    # Where the host's logs begin, on stderr (stdout stays the table or the JSON), unless --since is later.
    logs = {
        "agentgateway": GATEWAY,
        "authelia": AUTHELIA,
        "agentgateway:first": GATEWAY[:1],
        "authelia:first": AUTHELIA[:1],
    }
    monkeypatch.setattr(cli, "read_service_logs", lambda hs, since: logs)
    assert cli.main(["audit", inventory, "--json", "--since", "2026-12-07T05:00"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "mcpgate: the gateway's log on @local begins 2026-12-07 05:26:17 UTC; nothing older is kept "
        "(README: The audit trail)",
        "mcpgate: Authelia's log on @local begins 2026-12-07 05:25:24 UTC; nothing older is kept "
        "(README: The audit trail)",
    ]
    assert cli.main(["audit", inventory, "--since", "2026-12-07T05:26:30"]) == 0
    assert capsys.readouterr().err == ""


def test_where_a_log_begins() -> None:
    assert log_begins(GATEWAY) == parse_time(json.loads(GATEWAY[0])["time"])
    assert log_begins(AUTHELIA) == parse_time(logfmt(AUTHELIA[0])["time"])
    assert log_begins([]) is None
    assert log_begins(["no time here"]) is None
    assert log_begins(['time="not a time"']) is None


def test_people_come_from_the_stores_subjects_even_after_they_left(local: Stack, tmp_path: Path) -> None:
    from mcpgate.hostops.inventory_file import HostStack
    from mcpgate.secrets import SecretStore

    users = tmp_path / "@local" / "users"
    users.mkdir(parents=True)
    (users / "alice.sub").write_text(ALICE)
    (users / "carol.sub").write_text(BOB)  # carol was taken out of the inventory; her subject stays
    store = SecretStore.for_host(tmp_path, "@local", read_only=True)
    people = cli.audit_people(HostStack("@local", local, "inventory/local.py"), store)
    assert people == {ALICE: "alice", BOB: "carol (no longer in the inventory)"}


def _access_log(stack: Stack, secrets: StackSecrets) -> tuple[dict[str, str], list[str]]:
    rendered = render_stack(stack, secrets)
    config = yaml.safe_load(rendered.file("agentgateway/config/config.yaml").content)
    ref = reference_dir()
    problems = validate_rendered(rendered, ref) if ref is not None else []
    assert config["config"]["logging"] == {"format": "json"}
    return config["frontendPolicies"]["accessLog"]["add"], problems


def test_the_access_log_settings_come_from_the_inventory(stack_data: dict[str, Any], secrets: StackSecrets) -> None:
    stack = load_stack("gateway.lan", stack_data)
    add, problems = _access_log(stack, secrets)
    assert problems == []
    assert add["client.id"] == "jwt.client_id" and add["scopes"] == "jwt.scp"
    assert "mcpgate.arguments" not in add  # what people wrote stays out unless asked
    assert not any("rawToken" in v for v in add.values())
    # The logged verdict is the tool rules' own: it agrees with them on every tool, client and person.
    rules = compile_rules(stack, subjects(stack, secrets))
    verdict = [{"allow": add["mcpgate.allowed"]}]
    people = subjects(stack, secrets)
    for b in stack.enabled_backends:
        for tool in [*(b.tool_scopes or {}), "not-a-tool"]:
            for client in stack.clients:
                for user in stack.users:
                    claims = {"scp": stack.scopes_supported, "client_id": client.id, "sub": people[user.name]}
                    assert evaluate(verdict, b.name, tool, claims) == evaluate(rules, b.name, tool, claims)

    asked = load_stack("gateway.lan", {**stack_data, "audit": {"tool_arguments": True}})
    add, problems = _access_log(asked, StackSecrets(secrets.store, asked))
    assert problems == [] and add["mcpgate.arguments"] == "mcp.tool.arguments"


def test_audit_settings_are_checked(stack_data: dict[str, Any]) -> None:
    with pytest.raises(InventoryError, match="audit"):
        load_stack("gateway.lan", {**stack_data, "audit": True})
    with pytest.raises(InventoryError, match="tool_arguments"):
        load_stack("gateway.lan", {**stack_data, "audit": {"tool_arguments": "maybe"}})
    with pytest.raises(InventoryError, match="keep_forever"):
        load_stack("gateway.lan", {**stack_data, "audit": {"keep_forever": True}})


def test_retention_settings_are_checked(stack_data: dict[str, Any]) -> None:
    default = load_stack("gateway.lan", {**stack_data, "audit": {}}).audit
    assert (default.logs, default.keep, default.max_disk) == ("journald", "90 days", "2G")
    bad = {
        "logs": ({"logs": "syslog"}, "'journald' or 'docker'"),
        "keep with docker": ({"logs": "docker", "keep": "30d"}, "keep is the journal's limits, and logs is 'docker'"),
        "max_disk with docker": ({"logs": "docker", "max_disk": "1G"}, "max_disk is the journal's limits"),
        "size": ({"max_disk": "1.5G"}, "max_disk '1.5G' is no size for the journal"),
        "tiny": ({"max_disk": "10M"}, 'at least "64M"'),
        "no time": ({"keep": "0d"}, "lasts no time at all"),
    }
    for case, (audit, message) in bad.items():
        with pytest.raises(InventoryError) as caught:
            load_stack("gateway.lan", {**stack_data, "audit": audit})
        assert message in str(caught.value), (case, str(caught.value))
    # A default written out (as `mcpgate describe` does) is no explicit setting.
    load_stack("gateway.lan", {**stack_data, "audit": {"logs": "docker", "keep": "90 days"}})


def test_the_journal_keeps_what_the_inventory_says(stack_data: dict[str, Any], secrets: StackSecrets) -> None:
    from mcpgate.container_specs import stack_containers

    stack = load_stack("gateway.lan", {**stack_data, "audit": {"keep": "30d", "max_disk": "512M"}})
    rendered = render_stack(stack, StackSecrets(secrets.store, stack))
    assert rendered.journal is not None
    assert rendered.journal.path == f"/etc/systemd/journald.conf.d/{stack.name}.conf"
    assert (rendered.journal.mode, rendered.journal.owner, rendered.journal.secret) == (0o644, "0:0", False)
    settings = [line for line in rendered.journal.content.decode().splitlines() if line and not line.startswith("#")]
    assert settings == ["[Journal]", "Storage=persistent", f"MaxRetentionSec={30 * 86400}s", "SystemMaxUse=512M"]
    for spec in stack_containers(stack, rendered):
        assert spec.log_driver == "journald"
        args = spec.run_args()
        assert args[args.index("--log-driver") + 1] == "journald" and "--log-opt" not in args

    docker = load_stack("gateway.lan", {**stack_data, "audit": {"logs": "docker"}})
    rendered = render_stack(docker, StackSecrets(secrets.store, docker))
    assert rendered.journal is None
    specs = stack_containers(docker, rendered)
    assert {s.log_driver for s in specs} == {"json-file"}
    args = specs[0].run_args()
    assert "--log-driver" not in args and args[args.index("--log-opt") + 1] == "max-size=10m"
    # The journal is part of each container's spec: a deploy that switches recreates them to log there.
    # (With Docker's files the hashes are those from before the setting existed: the operation fixtures pin them.)
    journald_specs = {s.name: s.spec_hash for s in stack_containers(stack, render_stack(stack, secrets))}
    assert all(journald_specs[s.name] != s.spec_hash for s in specs)


def test_journal_entries_give_the_lines_back() -> None:
    """``journalctl -o json`` as Docker's journald driver writes a container's output."""
    entries = [
        {"MESSAGE": GATEWAY[0], "CONTAINER_NAME": "mcpgate-agentgateway", "__REALTIME_TIMESTAMP": "1"},
        # A line over 16 KiB comes in parts; bytes that are not UTF-8 as a list of numbers.
        {"MESSAGE": "first half, ", "CONTAINER_PARTIAL_MESSAGE": "true"},
        {"MESSAGE": "second half"},
        {"MESSAGE": [104, 105, 255]},
    ]
    lines = [json.dumps(e) for e in entries] + ["", "not json", "[1, 2]"]
    assert journal_messages(lines) == [GATEWAY[0], "first half, second half", "hi\ufffd"]
    assert journal_messages([]) == []
    assert log_begins(journal_messages(lines[:1])) == log_begins(GATEWAY)


def test_a_stack_not_deployed_on_the_host_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real host read, over pyinfra's @local connector: no such container here, so one line."""
    import secrets as pysecrets

    name = f"mcpgate-audit-unit-{pysecrets.token_hex(3)}"
    inventory = tmp_path / "inv.py"
    inventory.write_text(
        "import runpy\n"
        f"_stack = runpy.run_path({str(PROJECT_ROOT / 'inventory' / 'local.py')!r})['_stack']\n"
        f"_stack['name'] = {name!r}\n"
        "local = [('@local', {'mcpgate': _stack})]\n"
    )
    monkeypatch.setenv("MCPGATE_SECRETS_DIR", str(tmp_path / "secrets"))
    assert cli.main(["audit", str(inventory)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"mcpgate: @local: reading the logs of {name}-agentgateway failed: "
        f"no container {name}-agentgateway on the host (deploy first)"
    ), err


def test_the_host_is_read_as_the_deploy_runs_its_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the inventory's sudo settings: a non-root SSH user reads the journal or Docker's logs only so."""
    from mcpgate.hostops.host_read import HostReader

    inventory = tmp_path / "inv.py"
    inventory.write_text("local = [('@local', {'_sudo': True, '_sudo_user': 'root', 'mcpgate': {}})]\n")
    reader = HostReader(str(inventory), "@local")
    seen: dict[str, Any] = {}

    class Output:
        stdout, stderr = "a line\n", ""

    def run_shell_command(command: Any, **arguments: Any) -> tuple[bool, Output]:
        seen.update(arguments)
        return True, Output()

    monkeypatch.setattr(reader.host, "run_shell_command", run_shell_command)
    try:
        assert reader.run("true", "nothing") == "a line\n"
    finally:
        reader.close()
    assert (seen["_sudo"], seen["_sudo_user"]) == (True, "root") and "_su_user" not in seen
