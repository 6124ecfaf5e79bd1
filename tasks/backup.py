"""Backups: restic and sqlite3 installed, the restore a deploy was asked for (checked before anything
else runs, then made before any container uses the data), and the systemd timer that backs up."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt

from mcpgate.hostops.context import DeployContext, Restore
from mcpgate.hostops.restic import backup_state, backup_timer, restore_check, restore_data
from mcpgate.hostops.system_facts import BACKUP_PACKAGES
from mcpgate.layout import (
    BACKUP_ENV,
    BACKUP_PASSWORD,
    RESTORE_SCRIPT,
    SYSTEMD_UNIT_DIR,
    backup_unit,
    backup_unit_paths,
)
from mcpgate.render_backup import restore_check_script


def _units(ctx: DeployContext) -> tuple[str, str, list[str]]:
    service, timer = (backup_unit(ctx.stack.name, kind) for kind in ("service", "timer"))
    return service, timer, list(backup_unit_paths(ctx.stack.name))


@deploy("Backup tools")
def backup_tools(ctx: DeployContext) -> None:
    if ctx.stack.backup is None:
        return
    _, timer, paths = _units(ctx)
    missing = [p for p in BACKUP_PACKAGES if p not in backup_state(paths, timer).tools]
    if not missing:
        host.noop(f"{' and '.join(BACKUP_PACKAGES)} are installed")
        return
    apt.packages(name=f"Install {' and '.join(BACKUP_PACKAGES)}", packages=list(BACKUP_PACKAGES), update=True)


@deploy("Restore: the repository and its snapshot")
def restore_first_check(ctx: DeployContext, restore: Restore) -> None:
    # Before anything of the stack is made: a repository the store's password does not open, or one
    # without a snapshot of this host, stops the deploy here.
    work = f"/run/{ctx.stack.name}-restore-check"
    restore_check(
        name=f"repository opens and holds snapshot {restore.snapshot} of {ctx.host}",
        snapshot=restore.snapshot,
        script=restore_check_script(ctx.stack, ctx.host, f"{work}/env", f"{work}/password", restore.snapshot),
        env=ctx.rendered.file(BACKUP_ENV).content.decode(),
        password=ctx.rendered.file(BACKUP_PASSWORD).content.decode(),
        work_dir=work,
    )


@deploy("Restore the data")
def restore_stack_data(ctx: DeployContext, restore: Restore) -> None:
    restore_data(
        name=f"restore snapshot {restore.snapshot} into the volumes and folders",
        snapshot=restore.snapshot,
        script=f"{ctx.stack.base_dir}/{RESTORE_SCRIPT}",
        overwrite=restore.overwrite,
    )


@deploy("Backup timer")
def backup_schedule(ctx: DeployContext) -> None:
    service, timer, _ = _units(ctx)
    backup_timer(
        name=f"{timer} runs {service}" if ctx.stack.backup else f"no {timer}",
        service=service,
        timer=timer,
        unit_dir=SYSTEMD_UNIT_DIR,
        units=ctx.rendered.units,
        base_dir=ctx.stack.base_dir,
    )
