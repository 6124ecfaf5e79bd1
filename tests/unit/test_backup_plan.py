"""Backups as rendered from the inventory: what a snapshot holds, the scripts and units the deploy
writes, the restore's host data, and the refusals a restore meets before anything runs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mcpgate.backup_plan import backup_items, not_backed_up, restore_selection
from mcpgate.errors import MCPGateError, SecretsError
from mcpgate.hostops.context import selected_restore
from mcpgate.hostops.restic import BackupHost, DataPresent, restore_refusal
from mcpgate.layout import BACKUP_ENV, BACKUP_PASSWORD, BACKUP_SCRIPT, RESTORE_SCRIPT
from mcpgate.model import load_stack
from mcpgate.render import Rendered, render_stack
from mcpgate.render_backup import restore_check_script
from mcpgate.secrets import SecretStore, StackSecrets


@pytest.fixture(autouse=True)
def _complete_store(filled_store: SecretStore) -> None:
    """Each test's ``store`` starts as a copy of the session's complete one: these tests are about
    backups, not about generating keys and digests (a 3072-bit key, argon2id, pbkdf2 cost seconds)."""


def _render(stack_data: dict[str, Any], store: SecretStore, signing_key_pem: str, **backup: Any) -> Rendered:
    stack_data["backup"] = {"repository": "/mnt/backup/mcpgate", **backup}
    stack = load_stack("gateway.lan", stack_data)
    store.set("authelia/oidc_jwks_rs256.pem", signing_key_pem)
    store.set("tokens/home-assistant-token", "ha-long-lived-token")
    return render_stack(stack, StackSecrets(store, stack), host="gateway.lan")


@pytest.fixture
def rendered(stack_data: dict[str, Any], store: SecretStore, signing_key_pem: str) -> Rendered:
    return _render(stack_data, store, signing_key_pem)


def _text(rendered: Rendered, path: str) -> str:
    return rendered.file(path).content.decode()


def test_a_backup_holds_authelias_volume_and_every_backends_data_but_what_is_marked(stack_data: dict[str, Any]) -> None:
    stack_data["backends"][0]["volumes"] += [
        {"source": "notes-index", "target": "/index"},
        {"source": "notes-cache", "target": "/cache", "backup": False},
    ]
    stack = load_stack("h", stack_data)
    assert [(i.kind, i.name, i.service) for i in backup_items(stack)] == [
        ("volume", "mcpgate-authelia-data", "authelia"),
        ("folder", "/srv/notes", "notes"),
        ("volume", "notes-index", "notes"),
    ]
    skipped = not_backed_up(stack)
    assert skipped[0].startswith("volume mcpgate-redis-data: Redis holds only the sign-in pages' browser sessions")
    assert skipped[1:] == ["notes-cache (notes): marked backup: false"]


def test_a_disabled_backends_data_is_not_backed_up(stack_data: dict[str, Any]) -> None:
    stack_data["backends"][0]["enabled"] = False
    assert [i.name for i in backup_items(load_stack("h", stack_data))] == ["mcpgate-authelia-data"]


def test_no_backup_in_the_inventory_renders_no_backup(
    stack_data: dict[str, Any], store: SecretStore, signing_key_pem: str
) -> None:
    stack = load_stack("gateway.lan", stack_data)
    store.set("authelia/oidc_jwks_rs256.pem", signing_key_pem)
    store.set("tokens/home-assistant-token", "ha-long-lived-token")
    rendered = render_stack(stack, StackSecrets(store, stack), host="gateway.lan")
    assert rendered.units == []
    assert not [f.path for f in rendered.files if f.path.startswith("backup/")]
    assert store.get("backup/restic-password") is None  # not even generated


def test_the_backup_folder_is_roots_alone_and_the_password_is_the_stores(
    rendered: Rendered, store: SecretStore
) -> None:
    assert next(d for d in rendered.dirs if d.path == "backup").mode == 0o700
    files = {f.path: (f.mode, f.owner, f.secret) for f in rendered.files if f.path.startswith("backup/")}
    assert files == {
        BACKUP_SCRIPT: (0o700, "0:0", False),
        RESTORE_SCRIPT: (0o700, "0:0", False),
        BACKUP_PASSWORD: (0o600, "0:0", True),
        BACKUP_ENV: (0o600, "0:0", True),
    }
    password = store.get("backup/restic-password")
    assert password is not None and len(password) == 64
    assert _text(rendered, BACKUP_PASSWORD) == password
    assert _text(rendered, BACKUP_ENV) == "RESTIC_REPOSITORY='/mnt/backup/mcpgate'\n"
    for path in (BACKUP_SCRIPT, RESTORE_SCRIPT):
        assert password not in _text(rendered, path)
        assert "RESTIC_PASSWORD_FILE=/opt/mcpgate/backup/restic-password" in _text(rendered, path)


def test_the_restic_password_is_among_the_values_that_must_not_leak(
    stack_data: dict[str, Any], store: SecretStore, signing_key_pem: str
) -> None:
    rendered = _render(stack_data, store, signing_key_pem)
    secrets = StackSecrets(store, rendered.stack)
    assert store.get("backup/restic-password") in secrets.values_that_must_not_leak()


def test_an_s3_repository_takes_its_keys_from_the_store(
    stack_data: dict[str, Any], store: SecretStore, signing_key_pem: str
) -> None:
    store.set("tokens/backup-s3-access-key-id", "AKIATESTKEYID0001")
    store.set("tokens/backup-s3-secret-access-key", "test/secret+key0123456789")
    rendered = _render(stack_data, store, signing_key_pem, repository="s3:https://s3.example.com/bucket/mcpgate")
    assert _text(rendered, BACKUP_ENV) == (
        "RESTIC_REPOSITORY='s3:https://s3.example.com/bucket/mcpgate'\n"
        "AWS_ACCESS_KEY_ID='AKIATESTKEYID0001'\n"
        "AWS_SECRET_ACCESS_KEY='test/secret+key0123456789'\n"
    )
    assert "AKIATESTKEYID0001" not in _text(rendered, BACKUP_SCRIPT)


def test_an_s3_repository_without_its_keys_says_how_to_set_them(
    stack_data: dict[str, Any], store: SecretStore, signing_key_pem: str
) -> None:
    with pytest.raises(SecretsError, match=r"secrets set INVENTORY --host gateway\.lan backup-s3-access-key-id"):
        _render(stack_data, store, signing_key_pem, repository="s3:https://s3.example.com/bucket")


def test_the_backup_script_names_what_it_backs_up_and_takes_the_database_consistently(rendered: Rendered) -> None:
    script = _text(rendered, BACKUP_SCRIPT)
    assert "volume inspect --format '{{.Mountpoint}}' mcpgate-authelia-data" in script
    assert "path=/srv/notes" in script
    assert "mcpgate-redis-data" not in script.split("set -eu", 1)[1]  # named in the comment only
    # SQLite's online backup of the live database, checked, and the live files left out of the snapshot.
    assert """sqlite3 "$db" ".backup '$staging/authelia-db.sqlite3'\"""" in script
    assert "PRAGMA integrity_check;" in script
    assert '--exclude "$db" --exclude "$db-*"' in script
    assert 'restic backup --host "$HOST_NAME" --tag "$TAG"' in script
    assert "HOST_NAME=gateway.lan\nTAG=mcpgate:mcpgate\n" in script
    assert "--group-by host,tags" in script
    assert "--keep-daily 7 --keep-weekly 4 \\\n  --keep-monthly 6 --keep-yearly 0 --prune" in script
    # A local repository is never made on the root file system (an unmounted disk's mount point).
    assert 'if [ "$(stat -c %d "$dir")" = "$(stat -c %d /)" ]; then' in script


def test_the_retention_and_schedule_come_from_the_inventory(
    stack_data: dict[str, Any], store: SecretStore, signing_key_pem: str
) -> None:
    rendered = _render(
        stack_data,
        store,
        signing_key_pem,
        schedule="*-*-* 03:30:00",
        randomized_delay="15 minutes",
        keep={"daily": 3, "weekly": 0, "monthly": 12, "yearly": 2},
    )
    assert "--keep-daily 3 --keep-weekly 0 \\\n  --keep-monthly 12 --keep-yearly 2 --prune" in _text(
        rendered, BACKUP_SCRIPT
    )
    timer = next(u for u in rendered.units if u.path.endswith(".timer")).content.decode()
    assert "OnCalendar=*-*-* 03:30:00\nRandomizedDelaySec=900\n" in timer


def test_the_units_run_the_script_once_per_timer_elapse(rendered: Rendered) -> None:
    units = {u.path: u for u in rendered.units}
    assert sorted(units) == ["/etc/systemd/system/mcpgate-backup.service", "/etc/systemd/system/mcpgate-backup.timer"]
    service = units["/etc/systemd/system/mcpgate-backup.service"].content.decode()
    assert "Type=oneshot\nExecStart=/bin/sh /opt/mcpgate/backup/backup.sh\n" in service
    timer = units["/etc/systemd/system/mcpgate-backup.timer"].content.decode()
    assert "OnCalendar=daily\nRandomizedDelaySec=3600\n" in timer
    assert "WantedBy=timers.target" in timer
    assert all(u.mode == 0o644 and u.owner == "0:0" for u in units.values())


def test_the_restore_script_refuses_data_unless_told_to_overwrite(rendered: Rendered) -> None:
    script = _text(rendered, RESTORE_SCRIPT)
    assert 'id=$(snapshot_of_this_stack "$1") || exit 1' in script
    assert 'if [ -n "$(ls -A "$target")" ] && [ "$overwrite" != overwrite ]; then' in script
    assert "docker ps -q --filter label=org.mcpgate.stack=mcpgate" in script
    assert 'cp -a "$work"/var/lib/mcpgate-backup/staging/authelia-db.sqlite3 "$target"/db.sqlite3' in script


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX shell here")
def test_every_rendered_script_is_valid_shell(rendered: Rendered) -> None:
    scripts = {
        BACKUP_SCRIPT: _text(rendered, BACKUP_SCRIPT),
        RESTORE_SCRIPT: _text(rendered, RESTORE_SCRIPT),
        "check": restore_check_script(rendered.stack, "gateway.lan", "/run/x/env", "/run/x/password", "latest"),
    }
    for name, text in scripts.items():
        parsed = subprocess.run(["sh", "-n"], input=text, capture_output=True, text=True)
        assert parsed.returncode == 0, f"{name}: {parsed.stderr}"


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck is not installed here (apt-get install shellcheck)"
)
def test_every_rendered_script_passes_shellcheck(rendered: Rendered, tmp_path: Path) -> None:
    scripts = {
        "backup.sh": _text(rendered, BACKUP_SCRIPT),
        "restore.sh": _text(rendered, RESTORE_SCRIPT),
        "check.sh": "#!/bin/sh\n"
        + restore_check_script(rendered.stack, "gateway.lan", "/run/x/env", "/run/x/password", "latest"),
    }
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
    checked = subprocess.run(
        ["shellcheck", "-s", "sh", *(str(tmp_path / n) for n in scripts)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout


# --- a restic repository, for real (Debian's restic on the machine that runs the tests) -------------


def _restic(tmp: Path, *args: str, password: str = "pw-one", host: str | None = None) -> None:
    env = {"RESTIC_PASSWORD_FILE": str(tmp / password), "RESTIC_REPOSITORY": str(tmp / "repo"),
           "RESTIC_CACHE_DIR": str(tmp / "cache"), "PATH": "/usr/bin:/bin"}  # fmt: skip
    subprocess.run(["restic", "-q", *args, *(["--host", host] if host else [])], env=env, check=True)


@pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed here (apt-get install restic)")
def test_the_restore_check_refuses_another_stores_repository_and_another_hosts_snapshots(
    rendered: Rendered, tmp_path: Path
) -> None:
    (tmp_path / "pw-one").write_text("x" * 64)
    (tmp_path / "pw-two").write_text("y" * 64)
    (tmp_path / "data").mkdir()
    (tmp_path / "env").write_text(f"RESTIC_REPOSITORY='{tmp_path / 'repo'}'\n")
    _restic(tmp_path, "init")
    _restic(tmp_path, "backup", "--tag", "mcpgate:mcpgate", str(tmp_path / "data"), host="other.lan")

    def check(password: str, snapshot: str = "latest") -> subprocess.CompletedProcess[str]:
        script = restore_check_script(
            rendered.stack, "gateway.lan", str(tmp_path / "env"), str(tmp_path / password), snapshot
        )
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True)

    wrong = check("pw-two")
    assert wrong.returncode != 0
    assert "does not open with this store's password (backup/restic-password)" in wrong.stderr
    foreign = check("pw-one")
    assert foreign.returncode != 0
    assert "holds no snapshot of host gateway.lan (tag mcpgate:mcpgate); it holds snapshots of: other.lan:" in (
        foreign.stderr
    )
    _restic(tmp_path, "backup", "--tag", "mcpgate:mcpgate", str(tmp_path / "data"), host="gateway.lan")
    ours = check("pw-one")
    assert ours.returncode == 0, ours.stderr
    assert len(ours.stdout.strip()) == 64
    assert check("pw-one", ours.stdout[:8]).stdout == ours.stdout
    assert "no snapshot 00000000" in check("pw-one", "00000000").stderr


# --- the restore's host data, and what refuses it before anything runs -----------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("latest", "latest"), ("4f3c2a1b", "4f3c2a1b"), (" 4f3c2a1b ", "4f3c2a1b")],
)
def test_the_snapshot_to_restore(value: Any, expected: str | None) -> None:
    assert restore_selection(value) == expected


@pytest.mark.parametrize("value", ["newest", "4F3C2A1B", "4f3c", "latest;reboot", "../x"])
def test_a_snapshot_that_is_none_is_refused(value: str) -> None:
    with pytest.raises(MCPGateError, match=r"mcpgate_restore: .* names no snapshot: give latest, or a snapshot id"):
        restore_selection(value)


def test_a_restore_needs_the_inventorys_backup(stack_data: dict[str, Any]) -> None:
    stack = load_stack("h", stack_data)
    with pytest.raises(MCPGateError, match="mcpgate_restore: the inventory sets no backup repository"):
        selected_restore("latest", None, stack)
    stack_data["backup"] = {"repository": "/mnt/usb"}
    stack = load_stack("h", stack_data)
    assert selected_restore(None, None, stack) is None
    restore = selected_restore("latest", "yes", stack)
    assert restore is not None and (restore.snapshot, restore.overwrite) == ("latest", True)
    with pytest.raises(MCPGateError, match="mcpgate_restore_overwrite applies only with mcpgate_restore"):
        selected_restore(None, "yes", stack)
    with pytest.raises(MCPGateError, match="mcpgate_restore_overwrite: 'maybe' is neither yes nor no"):
        selected_restore("latest", "maybe", stack)


def test_a_restore_onto_a_running_stack_or_its_data_is_refused_naming_it() -> None:
    assert restore_refusal("mcpgate", [], []) is None
    running = restore_refusal("mcpgate", ["mcpgate-redis", "mcpgate-authelia"], ["/srv/notes"])
    assert running is not None
    assert "stack mcpgate is on this host already (containers: mcpgate-authelia, mcpgate-redis)" in running
    assert "Nothing was changed" in running and "--data mcpgate_restore_overwrite=yes" in running
    data = restore_refusal("mcpgate", [], ["/srv/notes"])
    assert data is not None and "/srv/notes already holds data" in data


def test_the_facts_read_what_the_host_says() -> None:
    state = BackupHost().process(
        [
            "C|restic",
            "U|/etc/systemd/system/mcpgate-backup.timer|ab12",
            "T|enabled|active",
        ]
    )
    assert state.tools == frozenset({"restic"})
    assert state.units == {"/etc/systemd/system/mcpgate-backup.timer": "ab12"}
    assert (state.enabled, state.active) == ("enabled", "active")
    assert BackupHost().process(["T||inactive"]).enabled == ""
    assert DataPresent().process(["/srv/notes", "", "mcpgate-authelia-data"]) == ["/srv/notes", "mcpgate-authelia-data"]
