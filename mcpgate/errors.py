"""Errors a person can fix. The CLI and the deploy print these without a traceback."""

from __future__ import annotations


class MCPGateError(Exception):
    """A mistake in the inventory, the secrets store or the command line.

    The message names the problem and the fix; nothing has been changed on any host.
    """


class InventoryError(MCPGateError):
    """The inventory data does not describe a valid stack."""

    def __init__(self, host: str, problems: list[str]) -> None:
        self.host = host
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"inventory for host {host!r} is invalid:\n{lines}")


class SecretsError(MCPGateError):
    """The secrets store cannot give what is asked of it."""
