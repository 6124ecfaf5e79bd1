"""Backups on the host: restic and sqlite3 present, the systemd service and timer that back up, and a
restore (the deploy's ``mcpgate_restore``) that is checked before anything else runs.

- :func:`backup_state` reads which tools are there, the units' content and the timer's state
  (:class:`~.system_facts.BackupHost`, from the deploy's snapshot when it asked for them);
- :func:`backup_timer` writes the units and keeps the timer enabled and running (or removes them
  when the inventory no longer sets ``backup``);
- :func:`restore_check` asks the repository, with the store's password, for the snapshot to restore,
  before the deploy makes or changes anything of the stack: a repository that does not open with that
  password, or holds no snapshot of this host and stack, stops the deploy there;
- :func:`restore_data` runs the rendered restore script (``backup/restore.sh``) once the volumes and
  folders exist, before any container that uses them starts;
- :class:`DataPresent` says which of the folders a restore would fill hold data already.
"""

from __future__ import annotations

import posixpath
from shlex import quote as _q

from pyinfra.api import FactBase, operation

from ..rendered import HostFile
from . import snapshot
from .messages import noop_when_unchanged
from .shell import shell_command
from .snapshot import read_fact
from .system_facts import BackupHost, BackupState
from .upload import finish_private_upload, prepare_private_uploads, private_upload, staging_dir


class DataPresent(FactBase):
    """Which of the named volumes and host folders hold anything (a volume or folder that does not
    exist holds nothing)."""

    def command(self, volumes: list[str], folders: list[str]) -> str:
        checks = [f'd={_q(folder)}; [ -d "$d" ] && [ -n "$(ls -A "$d")" ] && echo {_q(folder)};' for folder in folders]
        checks += [
            f"d=$(docker volume inspect --format '{{{{.Mountpoint}}}}' {_q(v)} 2>/dev/null) && "
            f'[ -n "$(ls -A "$d")" ] && echo {_q(v)};'
            for v in volumes
        ]
        return " ".join(checks) + " true"

    def process(self, output: list[str]) -> list[str]:
        return [line.strip() for line in output if line.strip()]

    def default(self) -> list[str]:
        return []


def backup_state(units: list[str], timer: str) -> BackupState:
    """The backup's tools, units and timer, from the deploy's snapshot when it asked for them."""

    def covered(query: snapshot.SnapshotQuery) -> bool:
        return query.backup_units == tuple(units) and query.backup_timer == timer

    return read_fact(BackupHost, "backup", covered, units=units, timer=timer)


@operation()
@snapshot.changes_host("backup")
@noop_when_unchanged(
    lambda a: (
        f"{a['timer']} is enabled and running, its units as rendered"
        if a["units"]
        else f"no backup is set: there is no {a['timer']}"
    )
)
def backup_timer(service: str, timer: str, unit_dir: str, units: list[HostFile], base_dir: str):
    """
    The backup's systemd service and timer as rendered, the timer enabled and running; with no
    ``units`` (the inventory sets no backup), the timer stopped and both units removed.

    + service, timer: the units' names; unit_dir: where they live (/etc/systemd/system)
    + units: the rendered unit files (absolute paths)
    + base_dir: the stack's folder, whose private staging folder the uploads go through

    A changed unit is written beside its place and renamed into it, systemd reloads, and the timer
    restarts so that a new schedule counts from now.

    **Example:**

    .. code:: python

        backup_timer(service="mcpgate-backup.service", timer="mcpgate-backup.timer",
                     unit_dir="/etc/systemd/system", units=rendered.units, base_dir="/opt/mcpgate")
    """
    paths = [posixpath.join(unit_dir, service), posixpath.join(unit_dir, timer)]
    state = backup_state(paths, timer)
    if not units:
        present = [p for p in paths if state.units.get(p)]
        if present:
            yield f"systemctl disable --now {_q(timer)} 2>/dev/null || true"
            yield f"rm -f {' '.join(_q(p) for p in present)} && systemctl daemon-reload"
        return
    writes = [u for u in units if state.units.get(u.path) != u.sha256]
    if writes:
        upload_dir = staging_dir(base_dir)
        temps = [posixpath.join(unit_dir, f".{posixpath.basename(u.path)}.mcpgate-new") for u in writes]
        yield prepare_private_uploads(upload_dir, temps)
        for unit, tmp in zip(writes, temps, strict=True):
            yield private_upload(unit.content, tmp, upload_dir)
            yield (
                f"chown {unit.owner} {_q(tmp)} && chmod {unit.mode:o} {_q(tmp)} && mv -f {_q(tmp)} {_q(unit.path)} "
                f"&& {finish_private_upload(upload_dir, tmp)}"
            )
        yield "systemctl daemon-reload"
        yield shell_command("systemctl", "enable", timer)
        yield shell_command("systemctl", "restart", timer)
        return
    if state.enabled != "enabled":
        yield shell_command("systemctl", "enable", timer)
    if state.active != "active":
        yield shell_command("systemctl", "start", timer)


@operation()
@noop_when_unchanged("no restore asked (mcpgate_restore)")
def restore_check(snapshot: str | None, script: str, env: str, password: str, work_dir: str):
    """
    Before the deploy makes anything: does the repository open with the store's password, and does it
    hold ``snapshot`` ("latest" or an id) of this host and stack? If not, this fails with the reason
    and the deploy stops there. The password and the repository's environment go to a private folder
    under /run (uploaded privately, never on a command line), removed again whatever the answer.

    + snapshot: what the deploy restores (None: no restore, nothing to check)
    + script: the check (``render.restore_check_script``), reading its files from ``work_dir``
    + env, password: restic's environment file and the repository's password, from the store

    **Example:**

    .. code:: python

        restore_check(snapshot="latest", script=restore_check_script(...), env="RESTIC_REPOSITORY=...",
                      password="...", work_dir="/run/mcpgate-restore-check")
    """
    if snapshot is None:
        return
    password_file, env_file = posixpath.join(work_dir, "password"), posixpath.join(work_dir, "env")
    yield prepare_private_uploads(work_dir, [password_file, env_file])
    yield private_upload(password.encode(), password_file, work_dir)
    yield private_upload(env.encode(), env_file, work_dir)
    yield f"sh -c {_q(script)}; rc=$?; rm -rf {_q(work_dir)}; exit $rc"


@operation()
@snapshot.changes_host("containers", "ready", "marker", "volfile", "volumes", "path")
@noop_when_unchanged("no restore asked (mcpgate_restore)")
def restore_data(snapshot: str | None, script: str, overwrite: bool = False):
    """
    Put a snapshot's data back: the rendered restore script restores it into a private folder and
    copies each part into its volume or host folder (Authelia's database from its consistent copy).
    It refuses a volume or folder that holds data unless ``overwrite``; then it stops the stack's
    containers first, and the deploy's next operations start them again.

    **Example:**

    .. code:: python

        restore_data(snapshot="latest", script="/opt/mcpgate/backup/restore.sh")
    """
    if snapshot is None:
        return
    yield shell_command("sh", script, snapshot, *(["overwrite"] if overwrite else []))


def restore_refusal(stack_name: str, containers: list[str], holding: list[str]) -> str | None:
    """Why a restore without overwrite must not run on this host (its stack runs, or its data is
    there), or None."""
    if not containers and not holding:
        return None
    what = (
        f"stack {stack_name} is on this host already (containers: {', '.join(sorted(containers))})"
        if containers
        else f"{', '.join(holding)} already {'holds' if len(holding) == 1 else 'hold'} data"
    )
    return (
        f"mcpgate_restore: {what}; a restore would overwrite it. Nothing was changed. To replace the host's "
        "data with the snapshot, add --data mcpgate_restore_overwrite=yes (the stack's containers are stopped "
        "while it is restored)"
    )
