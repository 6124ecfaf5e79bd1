"""Every rendered config and secret, uploaded with its owner and mode; folders before files; then the
files an earlier deploy placed and the render no longer has are removed (and only those)."""

from pyinfra.api import deploy

from mcpgate.hostops.context import DeployContext
from mcpgate.hostops.filesync import prune_stack_files
from mcpgate.hostops.filesync import stack_files as stack_files_op
from mcpgate.rendered import HostDir, HostFile


def sync_files(base_dir: str, dirs: list[HostDir], files: list[HostFile]) -> None:
    """The operations that make ``base_dir`` hold exactly ``dirs`` and ``files`` of the deploy's own."""
    # One operation per component, so the output says which component's files changed.
    groups: dict[str, tuple[list[HostDir], list[HostFile]]] = {}
    for d in dirs:
        groups.setdefault(d.path.split("/", 1)[0], ([], []))[0].append(d)
    for f in files:
        groups.setdefault(f.path.split("/", 1)[0], ([], []))[1].append(f)
    for component, (component_dirs, component_files) in groups.items():
        stack_files_op(
            name=f"{component} files",
            base_dir=base_dir,
            dirs=component_dirs,
            files=component_files,
        )
    # After every component's files are in place: what the previous run recorded placing and the
    # render no longer has goes (a removed component's too); nothing else under base_dir is touched.
    prune_stack_files(name="Files no longer rendered", base_dir=base_dir, files=[f.path for f in files])


@deploy("Configs and secrets")
def stack_files(ctx: DeployContext) -> None:
    sync_files(ctx.stack.base_dir, ctx.rendered.dirs, ctx.rendered.files)
