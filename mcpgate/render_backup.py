"""The backup's files: restic's scripts, environment and password (root's alone), and the systemd
service and timer that run it; and the script a restore check runs.
"""

from __future__ import annotations

import posixpath
import re
import shlex

from . import layout
from .backup_plan import backup_items, not_backed_up
from .errors import MCPGateError, SecretsError
from .layout import (
    BACKUP_DIR,
    BACKUP_ENV,
    BACKUP_PASSWORD,
    BACKUP_SCRIPT,
    LABEL_STACK,
    RESTORE_SCRIPT,
    SYSTEMD_UNIT_DIR,
    backup_unit,
    backup_work_dir,
)
from .model import Stack, duration_seconds
from .rendered import HostFile, RenderInput, RenderOutput, template_environment

# restic's environment file (sh and systemd read it): one VAR='value' a line.
_ENV_VALUE = re.compile(r"^[^'\n\r\\]+$")


def backup_template_values(stack: Stack, host: str, env_file: str, password_file: str) -> dict[str, object]:
    """What templates/backup/restic.sh.j2 is rendered with: whose snapshots, and where restic's
    environment and password are (base_dir's files, or a restore check's private copies)."""

    work = backup_work_dir(stack.name)
    return {
        "host": host,
        "env_file": env_file,
        "password_file": password_file,
        "items": backup_items(stack),
        "skipped": not_backed_up(stack),
        "staging": f"{work}/staging",
        "restore_dir": f"{work}/restore",
        "mountpoint_format": "{{.Mountpoint}}",
        "labels": {"stack": LABEL_STACK},
    }


def restic_env(given: RenderInput) -> str:
    """RESTIC_REPOSITORY, and for S3 the keys from the store."""
    backup = given.stack.backup
    assert backup is not None
    values = {"RESTIC_REPOSITORY": backup.repository}
    if backup.kind == "s3":
        values["AWS_ACCESS_KEY_ID"] = given.token(backup.s3_access_key_secret)
        values["AWS_SECRET_ACCESS_KEY"] = given.token(backup.s3_secret_key_secret)
    for name, value in values.items():
        if not _ENV_VALUE.match(value):
            raise SecretsError(
                f"{name} for the backup holds a quote, backslash or line break, which restic's environment file "
                "cannot carry: set it again without one"
            )
    return "".join(f"{name}='{value}'\n" for name, value in values.items())


def render_backup(given: RenderInput, out: RenderOutput) -> list[HostFile]:
    """The backup's scripts, its repository's password and location (root's alone), and the systemd
    service and timer that run it; nothing without ``backup`` in the inventory."""
    stack = given.stack
    if stack.backup is None:
        return []
    if not given.host:
        raise MCPGateError("rendering backups needs the inventory host's name (the snapshots are tagged with it)")
    base = stack.base_dir
    values = backup_template_values(
        stack, given.host, posixpath.join(base, BACKUP_ENV), posixpath.join(base, BACKUP_PASSWORD)
    )
    out.dir(BACKUP_DIR, 0o700)

    def add(path: str, content: str, *, mode: int, secret: bool) -> None:
        out.file(path, content, mode=mode, owner="0:0", service="", secret=secret)

    add(BACKUP_SCRIPT, given.template("backup/backup.sh.j2", **values), mode=0o700, secret=False)
    add(RESTORE_SCRIPT, given.template("backup/restore.sh.j2", **values), mode=0o700, secret=False)
    add(BACKUP_PASSWORD, given.secrets.backup_password(), mode=0o600, secret=True)
    add(BACKUP_ENV, restic_env(given), mode=0o600, secret=True)
    service = given.template("backup/backup.service.j2", script=posixpath.join(base, BACKUP_SCRIPT))
    timer = given.template(
        "backup/backup.timer.j2", randomized_delay=int(duration_seconds(stack.backup.randomized_delay))
    )
    return [
        HostFile(f"{SYSTEMD_UNIT_DIR}/{backup_unit(stack.name, kind)}", content.encode(), 0o644, "0:0", "", False)
        for kind, content in (("service", service), ("timer", timer))
    ]


def restore_check_script(stack: Stack, host: str, env_file: str, password_file: str, snapshot: str) -> str:
    """A shell script that prints the id of ``snapshot`` ("latest" or an id) of this host and stack
    in the repository, or fails saying why (the password does not open it, another host's...)."""
    values = backup_template_values(stack, host, env_file, password_file)
    body = template_environment().get_template("backup/restic.sh.j2").render(stack=stack, layout=layout, **values)
    return f"set -eu\n{body}snapshot_of_this_stack {shlex.quote(snapshot)}\n"
