"""A rebuild that loses nothing: inventory/home.py (with its backup onto a USB disk) deployed onto a bare
day-one host (tests/e2e/dayone.py), backed up by its timer's unit, the host thrown away, and a new bare
host deployed with ``--data mcpgate_restore=latest`` from the same secrets store and repository.

The "USB disk" is a volume of the harness's engine mounted at /mnt/backup into both hosts, as the
disk would be moved from the dead host to the new one. The steps run in order and depend on each other:
  1. deploy; a person signs in as Claude does (password, TOTP, consent) and the client keeps its
     refresh token; a note is written through the gateway (directly into the vault's folder on the
     host where agentgateway cannot run, so the data path is still proven);
  2. the timer's service backs up now; a backup that cannot write its repository is a failed unit;
  3. a restore onto the running stack is refused before anything runs;
  4. the host is destroyed and a new bare one made; a restore with another store's password, and one
     as another host, are refused and leave the host bare;
  5. the restore: the saved refresh token still refreshes, the access token still opens /mcp, the
     note is there, the same ``sub``; the next deploy changes nothing;
  6. asked to (``mcpgate_restore_overwrite=yes``), a restore replaces a running stack's data, its
     containers stopped meanwhile and started again.
Where the Authelia or agentgateway image is missing, the deploy leaves that service out and the
assertions that need it skip with the reason; the restic round trip, the timer and the notes data run.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcpgate.layout import backup_unit
from tests.e2e.conftest import TIMINGS
from tests.e2e.dayone import (
    TEST_LABEL,
    DayOneHost,
    Deploy,
    dayone_unavailable,
    new_host_name,
    run_deploy,
    write_home_inventory,
)
from tests.e2e.harness import docker, parse_results, unavailable
from tests.e2e.mcp_client import McpClient
from tests.e2e.oauth import Flow, Session, jwt_parts, login, token_request
from tests.e2e.test_dayone import DayOne

SCOPE = "openid offline_access notes:read notes:write"
NOTE_PATH = "rebuild/kept.md"
NOTE = "# Kept\n\nWritten before the disk died, read back after the rebuild.\n"
USB_MOUNT = "/mnt/backup"
REPOSITORY = f"{USB_MOUNT}/mcpgate"


class Rebuild(DayOne):
    """DayOne's hosts, each with the same "USB disk" mounted; and what the first host's client kept."""

    usb: str = ""
    kept: dict[str, Any]

    def new_host(self) -> DayOneHost:
        host = DayOneHost(new_host_name(), self.workdir / f"host{len(self.hosts) + 1}")
        host.options = ["-v", f"{self.usb}:{USB_MOUNT}"]
        self.hosts.append(host)
        if not self.inventory.exists():
            write_home_inventory(self.inventory, host)
        host.create(self.images())
        write_home_inventory(self.inventory, host)
        return host

    def deploy_with(self, *data: str, inventory: Path | None = None, env: dict[str, str] | None = None) -> Deploy:
        extra = [a for d in data for a in ("--data", d)]
        return run_deploy(inventory or self.inventory, env or self.env, [*self.components, *extra])

    def repository_files(self) -> list[str]:
        """Every file of the repository on the USB disk, with its size: what a refused restore must not change."""
        out = self.host.ssh(f"sudo find {REPOSITORY} -type f -printf '%P %s\\n' | sort").stdout
        return out.split("\n")


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rebuild]:
    reason = dayone_unavailable()
    if reason:
        pytest.skip(f"no day-one host here: {reason}")
    state = Rebuild(tmp_path_factory.mktemp("rebuild"))
    state.kept = {}
    state.skipped.update(unavailable())
    state.usb = f"{new_host_name()}-usb-disk"
    docker("volume", "create", "--label", TEST_LABEL, state.usb)
    try:
        yield state
    finally:
        for host in state.hosts:
            host.destroy()
        docker("volume", "rm", "-f", state.usb, check=False)


def _changed(d: Deploy) -> list[str]:
    return parse_results(d.output)[0]


def _session(day: Rebuild, port: int) -> Session:
    return Session(f"http://127.0.0.1:{port}", day.stack().hostname)


def _mcp(day: Rebuild, port: int, token: str) -> McpClient:
    client = McpClient(f"http://127.0.0.1:{port}", day.stack().hostname, token)
    client.initialize()
    return client


def _tool(client: McpClient, suffix: str) -> str:
    tools = {t["name"] for t in client.call("tools/list")["result"]["tools"]}
    return next(n for n in tools if n.endswith(suffix))


def _bare(host: DayOneHost) -> list[str]:
    """What of the stack is on the host (nothing, on a host a refused restore left alone)."""
    out = host.ssh(
        "for c in docker dockerd; do command -v $c || true; done; "
        "for p in /opt/mcpgate /srv/notes /var/lib/mcpgate-backup /run/mcpgate-restore-check "
        "/etc/systemd/system/mcpgate-backup.timer; do [ -e $p ] && echo $p; done; true"
    ).stdout
    return out.split()


# --- 1. deploy, sign in, write a note --------------------------------------------------------------


def test_1_deploy_sign_in_as_claude_and_write_a_note(day: Rebuild) -> None:
    host = day.new_host()
    first = day.deploy()
    TIMINGS.append(f"backup/restore: first deploy {first.seconds:.1f} s ({len(_changed(first))} changed)")
    assert first.returncode == 0, first.output[-8000:]
    assert "Backup tools | Install restic and sqlite3" in _changed(first)
    timer = backup_unit(day.stack().name, "timer")
    assert host.ssh(f"systemctl is-enabled {timer}; systemctl is-active {timer}").stdout.split() == [
        "enabled",
        "active",
    ]
    day.host_checks()

    if "authelia" in day.skipped:
        day.kept["why_no_login"] = day.skipped["authelia"]
    else:
        with host.forward(day.stack().ingress_port) as port:
            flow = Flow(_session(day, port), "claude-ai", SCOPE, resource=day.stack().resource)
            code = login(flow, "alice", day.store("users/alice.password"), day.store("users/alice.totp"))
            r = flow.token(code, day.store("clients/claude-ai.secret"), how="post")
            assert r.status_code == 200, r.text
            tokens = r.json()
            assert tokens.get("refresh_token"), "no refresh token: offline_access was not granted"
            day.kept.update(
                access=tokens["access_token"],
                refresh=tokens["refresh_token"],
                sub=jwt_parts(tokens["access_token"])[1]["sub"],
            )
            assert day.kept["sub"] == day.store("users/alice.sub")
            if "agentgateway" not in day.skipped:
                client = _mcp(day, port, tokens["access_token"])
                written = client.call("tools/call", {"name": _tool(client, "write"),
                                                     "arguments": {"path": NOTE_PATH, "content": NOTE}})  # fmt: skip
                assert not written["result"].get("isError"), written
                day.kept["note_through_gateway"] = True
    if not day.kept.get("note_through_gateway"):
        # Where agentgateway cannot run, the note goes straight into the vault's folder, as its user.
        host.ssh(f"sudo -u admin mkdir -p /srv/notes/rebuild && printf %s {shlex.quote(NOTE)} "
                 f"| sudo -u admin tee /srv/notes/{NOTE_PATH} >/dev/null")  # fmt: skip
    assert host.ssh(f"sudo cat /srv/notes/{NOTE_PATH}").stdout == NOTE


# --- 2. the timer's unit backs up ------------------------------------------------------------------


def test_2_the_timers_service_backs_up_and_a_failing_backup_is_a_failed_unit(day: Rebuild) -> None:
    host = day.host
    service = backup_unit(day.stack().name, "service")
    # The disk's place taken by a read-only file system (an empty tmpfs over the mount point, inside the
    # host's own mount namespace; the real disk is untouched): the backup fails, and so does the unit.
    host.ssh(f"sudo mount -t tmpfs -o ro,size=1m mcpgate-test-readonly {USB_MOUNT}")
    try:
        failed = host.ssh(f"sudo systemctl start {service}", timeout=600, check=False)
        assert failed.returncode != 0
        assert host.ssh(f"systemctl is-failed {service}", check=False).stdout.strip() == "failed"
        assert host.ssh(f"systemctl show -p Result --value {service}").stdout.strip() == "exit-code"
        journal = host.ssh(f"sudo journalctl -u {service} --no-pager -n 30").stdout
        assert "read-only file system" in journal.lower(), journal
    finally:
        host.ssh(f"sudo umount {USB_MOUNT}")
    assert host.ssh(f"findmnt -n -o FSTYPE {USB_MOUNT}").stdout.strip() != "tmpfs"
    # The first run makes the repository; a second one adds a snapshot.
    for _ in range(2):
        ran = host.ssh(f"sudo systemctl start {service}", timeout=900, check=False)
        journal = host.ssh(f"sudo journalctl -u {service} --no-pager -n 60", check=False).stdout
        assert ran.returncode == 0, ran.stderr + journal
    assert host.ssh(f"systemctl show -p Result --value {service}").stdout.strip() == "success"
    # tests/host/test_backup.py: the newest snapshot is younger than backup.max_age, and its age is reported.
    report = day.host_checks()
    assert "backup: newest snapshot of gateway.lan in /mnt/backup/mcpgate:" in report, report[-3000:]
    files = day.repository_files()
    assert any(f.startswith("snapshots/") for f in files), files
    journal = host.ssh(f"sudo journalctl -u {service} --no-pager -n 200").stdout
    if "authelia" in day.skipped:
        assert "Authelia's database is not there yet" in journal
    else:
        assert "Authelia's database is not there yet" not in journal


# --- 3. not over a running stack -------------------------------------------------------------------


def test_3_a_restore_onto_the_running_stack_is_refused_before_anything_runs(day: Rebuild) -> None:
    before = day.host.ssh(f"sudo cat /srv/notes/{NOTE_PATH}").stdout
    refused = day.deploy_with("mcpgate_restore=latest")
    assert refused.returncode != 0
    assert "is on this host already" in refused.output, refused.output[-3000:]
    assert "mcpgate_restore_overwrite=yes" in refused.output
    assert _changed(refused) == []
    assert day.host.ssh(f"sudo cat /srv/notes/{NOTE_PATH}").stdout == before


# --- 4. a new bare host; restores that do not match are refused -------------------------------------


def test_4_on_a_new_bare_host_a_restore_that_does_not_match_touches_nothing(day: Rebuild) -> None:
    day.host.destroy()
    host = day.new_host()
    assert _bare(host) == []
    repository = day.repository_files()

    # Another secrets store (another installation's password): the repository does not open.
    other = day.workdir / "other-store"
    shutil.copytree(day.secrets_dir, other)
    (other / host.alias / "backup" / "restic-password").write_text("x" * 64)
    wrong = day.deploy_with("mcpgate_restore=latest", env={**day.env, "MCPGATE_SECRETS_DIR": str(other)})
    assert wrong.returncode != 0
    assert "does not open with this store's password" in wrong.output, wrong.output[-3000:]
    assert _bare(host) == []

    # The same store, as another host of the inventory: the repository holds none of its snapshots.
    foreign_store = day.workdir / "foreign-store"
    shutil.copytree(day.secrets_dir / host.alias, foreign_store / "other.lan")
    foreign = day.workdir / "inventory_other.py"
    foreign.write_text(
        "import runpy as _runpy\n"
        f"((_n, _d),) = _runpy.run_path({str(day.inventory)!r})['home']\n"
        "home = [('other.lan', _d)]\n"
    )
    refused = day.deploy_with(
        "mcpgate_restore=latest", inventory=foreign, env={**day.env, "MCPGATE_SECRETS_DIR": str(foreign_store)}
    )
    assert refused.returncode != 0
    assert "holds no snapshot of host other.lan" in refused.output, refused.output[-3000:]
    assert "gateway.lan" in refused.output  # it says whose snapshots it holds
    assert _bare(host) == []
    assert day.repository_files() == repository
    TIMINGS.append(f"backup/restore: refused restores took {wrong.seconds:.1f} s and {refused.seconds:.1f} s")


# --- 5. the restore --------------------------------------------------------------------------------


def test_5_the_restore_brings_back_the_data_and_the_next_deploy_changes_nothing(day: Rebuild) -> None:
    host = day.host
    restored = day.deploy_with("mcpgate_restore=latest")
    TIMINGS.append(f"backup/restore: deploy with restore {restored.seconds:.1f} s ({len(_changed(restored))} changed)")
    assert restored.returncode == 0, restored.output[-8000:]
    assert "Restore the data | restore snapshot latest into the volumes and folders" in _changed(restored)
    assert host.ssh(f"sudo cat /srv/notes/{NOTE_PATH}").stdout == NOTE
    owner = host.ssh(f"sudo stat -c %u:%g /srv/notes/{NOTE_PATH}").stdout.strip()
    assert owner == "1000:1000"
    day.host_checks()
    again = day.deploy()
    TIMINGS.append(f"backup/restore: the run after the restore {again.seconds:.1f} s")
    assert again.returncode == 0, again.output[-6000:]
    assert _changed(again) == []


def test_5b_after_the_restore_claudes_connector_keeps_working_with_the_same_sub(day: Rebuild) -> None:
    host = day.host
    day.need("authelia")
    if not day.kept.get("refresh"):
        pytest.fail("step 1 kept no refresh token: nothing to refresh")
    stack = day.stack()
    with host.forward(stack.ingress_port) as port:
        r = token_request(
            _session(day, port),
            {"grant_type": "refresh_token", "refresh_token": day.kept["refresh"], "resource": stack.resource},
            "claude-ai",
            day.store("clients/claude-ai.secret"),
            how="post",
        )
        assert r.status_code == 200, f"the refresh token kept from the old host: {r.status_code} {r.text}"
        fresh = r.json()["access_token"]
        assert jwt_parts(fresh)[1]["sub"] == day.kept["sub"]
        day.need("agentgateway")
        for token in (day.kept["access"], fresh):
            client = _mcp(day, port, token)
            read = client.call("tools/call", {"name": _tool(client, "read"), "arguments": {"path": NOTE_PATH}})
            assert not read["result"].get("isError"), read
            assert "Written before the disk died" in json.dumps(read["result"])


# --- 6. over a running stack, when asked ----------------------------------------------------------


def test_6_asked_to_overwrite_a_running_stack_the_restore_replaces_its_data(day: Rebuild) -> None:
    host = day.host
    host.ssh(f"printf %s 'changed after the backup' | sudo -u admin tee /srv/notes/{NOTE_PATH} >/dev/null")
    host.ssh("sudo -u admin touch /srv/notes/rebuild/made-after-the-backup.md")
    before = {name: c["State"]["StartedAt"] for name, c in host.containers().items()}
    replaced = day.deploy_with("mcpgate_restore=latest", "mcpgate_restore_overwrite=yes")
    TIMINGS.append(f"backup/restore: restore over the running stack {replaced.seconds:.1f} s")
    assert replaced.returncode == 0, replaced.output[-8000:]
    assert host.ssh(f"sudo cat /srv/notes/{NOTE_PATH}").stdout == NOTE
    assert host.ssh("sudo ls /srv/notes/rebuild").stdout.split() == ["kept.md"]
    host.wait_containers_ready()
    after = {name: c["State"]["StartedAt"] for name, c in host.containers().items()}
    assert set(after) == set(before)
    assert all(after[n] != before[n] for n in before), "a container was not stopped while its data was replaced"
    again = day.deploy()
    assert again.returncode == 0, again.output[-6000:]
    assert _changed(again) == []
