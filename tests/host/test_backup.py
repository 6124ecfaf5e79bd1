"""The host's backups: restic and sqlite3 there, the timer enabled and running its service, the last
run not failed, and the newest snapshot of this host and stack in the repository younger than
``backup.max_age`` (read from the repository itself, with the deploy's password file)."""

from __future__ import annotations

import json
import re
import shlex
import time
from datetime import datetime

import pytest

from mcpgate.layout import BACKUP_ENV, BACKUP_PASSWORD, backup_cache_dir, backup_tag, backup_unit
from mcpgate.model import Stack, duration_seconds


def backed_up_before(restic_error: str) -> bool:
    """Whether restic's complaint says the repository is there but unreadable (a wrong password, a
    damaged repository) rather than not made yet, which is expected before the first backup."""
    return bool(restic_error.strip()) and "Is there a repository at the following location?" not in restic_error


def _time(text: str) -> datetime:
    """restic's snapshot time (nanoseconds, "Z" or an offset) as a datetime."""
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", text).replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def backed_up(stack: Stack) -> Stack:
    if stack.backup is None:
        pytest.skip("the inventory sets no backup")
    return stack


def _show(host, unit: str, prop: str) -> str:
    return host.check_output(f"systemctl show -p {prop} --value {shlex.quote(unit)}").strip()


def test_restic_and_sqlite3_are_installed(host, backed_up: Stack) -> None:
    for tool in ("restic", "sqlite3"):
        assert host.exists(tool), f"{tool} is not installed"


def test_the_timer_is_enabled_and_runs_the_backup_service(host, backed_up: Stack) -> None:
    timer, service = backup_unit(backed_up.name, "timer"), backup_unit(backed_up.name, "service")
    assert host.run(f"systemctl is-enabled {timer}").stdout.strip() == "enabled"
    assert host.run(f"systemctl is-active {timer}").stdout.strip() == "active"
    assert _show(host, timer, "Unit") == service
    assert _show(host, service, "Type") == "oneshot"


def test_the_last_backup_did_not_fail(host, backed_up: Stack) -> None:
    service = backup_unit(backed_up.name, "service")
    result = _show(host, service, "Result")
    assert result == "success", f"{service} failed ({result}): journalctl -u {service}"


def test_the_newest_snapshot_is_recent(host, backed_up: Stack, described: dict, record_property) -> None:
    base = backed_up.base_dir
    # The password goes by its file's path; the location (and S3 keys) from the deploy's env file.
    script = (
        f"set -a; . {base}/{BACKUP_ENV}; set +a; exec restic snapshots --no-lock --json "
        f"--host {shlex.quote(described['host'])} --tag {shlex.quote(backup_tag(backed_up.name))}"
    )
    env = f"RESTIC_PASSWORD_FILE={base}/{BACKUP_PASSWORD} RESTIC_CACHE_DIR={backup_cache_dir(backed_up.name)}"
    out = host.run(f"env {env} sh -c {shlex.quote(script)}")
    snapshots = json.loads(out.stdout or "[]") if out.rc == 0 else []
    service = backup_unit(backed_up.name, "service")
    if not snapshots:
        ran = _show(host, service, "ExecMainStartTimestampMonotonic") not in ("", "0")
        if not ran and not backed_up_before(out.stderr):
            following = _show(host, backup_unit(backed_up.name, "timer"), "NextElapseUSecRealtime")
            pytest.skip(f"no backup yet: {service} has not run on this host; the timer runs it next at {following}")
        problem = f"cannot be read: {out.stderr.strip()[-600:]}" if out.rc else "holds no snapshot of this host"
        pytest.fail(f"the repository {backed_up.backup.repository} {problem}: journalctl -u {service}")
    newest = max(_time(s["time"]) for s in snapshots)
    age = time.time() - newest.timestamp()
    limit = duration_seconds(backed_up.backup.max_age)
    record_property(
        "report",
        f"backup: newest snapshot of {described['host']} in {backed_up.backup.repository}: {newest.isoformat()} "
        f"({age / 3600:.1f} h old; {len(snapshots)} snapshots; fails beyond {backed_up.backup.max_age})",
    )
    assert age <= limit, (
        f"the newest snapshot is {age / 3600:.1f} h old, older than backup.max_age ({backed_up.backup.max_age}): "
        f"journalctl -u {service}"
    )
