"""Where the containers log: with audit.logs "journald", the host's journal, kept as the inventory says."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import PyinfraError

from mcpgate.hostops.context import DeployContext
from mcpgate.hostops.journal import journal_retention, journal_state
from mcpgate.layout import journald_conf


@deploy("Container logs")
def container_logs(ctx: DeployContext) -> None:
    path = journald_conf(ctx.stack.name)
    conf = ctx.rendered.journal
    # Before anything is touched: without the journal, Docker refuses to start a container that logs to it.
    if conf is not None and not journal_state(path).journald:
        raise PyinfraError(
            f"{host.name}: audit.logs is 'journald' (the default) but this host has no systemd journal "
            '(/run/systemd/journal/socket): set audit.logs to "docker" in the inventory (Docker\'s own '
            "files, 3 x 10 MiB per container, gone when a container is recreated)"
        )
    name = f"journald keeps the containers' logs ({path})" if conf else f"no {path}"
    journal_retention(name=name, path=path, conf=conf)
