"""Read from an inventory's host over the connection the deploy uses (pyinfra's connector for that
host: SSH with the inventory's user, key and known-hosts file, or @local), for commands that look
at a running stack without changing it (``mcpgate audit``)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import MCPGateError
from .inventory_file import _check_inventory_path, _pyinfra_cli_without_gevent

# pyinfra's connector arguments that say as whom a command runs (pyinfra.api.arguments.ConnectorArguments).
_AUTH_ARGUMENTS = (
    "_sudo", "_sudo_user", "_use_sudo_login", "_sudo_password", "_preserve_sudo_env",
    "_su_user", "_use_su_login", "_preserve_su_env", "_su_shell", "_su_password",
    "_doas", "_doas_user", "_dzdo", "_dzdo_user",
)  # fmt: skip


class HostReader:
    """One connected host; :meth:`run` gives a read-only command's stdout."""

    def __init__(self, inventory: str, host_name: str) -> None:
        from pyinfra.api import Config, State
        from pyinfra.context import ctx_state

        _pyinfra_cli_without_gevent()
        from pyinfra_cli.inventory import make_inventory_from_files

        _check_inventory_path(inventory)
        logging.getLogger("pyinfra").setLevel(logging.CRITICAL)
        state = State()
        with ctx_state.use(state):
            inv = make_inventory_from_files(inventory, cwd=str(Path.cwd()))
        state.init(inv, Config())
        self.state = state
        try:
            self.host = inv.get_host(host_name)
        except Exception:
            raise MCPGateError(f"host {host_name!r} is not in {inventory}") from None
        with ctx_state.use(state):
            self.host.connect(reason="to read its logs", show_errors=False, raise_exceptions=False)
        if not self.host.connected:
            raise MCPGateError(
                f"{host_name}: cannot connect as the deploy does (check that the host is up and that "
                "`pyinfra -y INVENTORY deploy.py` reaches it)"
            )

    def run(self, command: str, what: str) -> str:
        from pyinfra.api.command import StringCommand
        from pyinfra.context import ctx_state

        # As the deploy's commands run: with the inventory's sudo (or su, doas) settings, which reading
        # the journal or Docker's logs as a non-root SSH user needs.
        auth = {k: v for k in _AUTH_ARGUMENTS if (v := self.host.data.get(k)) is not None}
        with ctx_state.use(self.state):
            ok, output = self.host.run_shell_command(
                StringCommand(command), print_output=False, print_input=False, **auth
            )
        if not ok:
            last = (output.stderr or output.stdout).strip().splitlines()[-1:] or ["(no message)"]
            raise MCPGateError(f"{self.host.name}: reading {what} failed: {last[0]}")
        return output.stdout

    def close(self) -> None:
        from pyinfra.context import ctx_state

        with ctx_state.use(self.state):
            self.host.disconnect()
