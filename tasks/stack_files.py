"""Every rendered config and secret, uploaded with its owner and mode; folders before files."""

from pyinfra import host
from pyinfra.api import deploy

from mcpgate.deploy import context_for
from mcpgate.hostops import stack_files as stack_files_op


@deploy("Configs and secrets")
def stack_files() -> None:
    ctx = context_for(host)
    rendered = ctx.rendered
    # One operation per component, so the output says which component's files changed.
    groups: dict[str, tuple[list, list]] = {}
    for d in rendered.dirs:
        groups.setdefault(d.path.split("/", 1)[0], ([], []))[0].append(d)
    for f in rendered.files:
        groups.setdefault(f.path.split("/", 1)[0], ([], []))[1].append(f)
    for component, (dirs, files) in groups.items():
        stack_files_op(
            name=f"{component} files",
            base_dir=ctx.stack.base_dir,
            dirs=dirs,
            files=files,
        )
