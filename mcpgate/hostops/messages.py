"""What an operation tells the user in pyinfra's output besides its commands (data kept, a record missing)."""

from __future__ import annotations

from pyinfra import host, logger

_said: set[tuple[str, str | None, str]] = set()


def say(message: str) -> None:
    """A line in pyinfra's output (once per operation, though pyinfra runs its body twice).

    **Example** (in an operation):

    .. code:: python

        say("network mcpgate-old is no longer used by the stack but kept: x still on it")
    """
    key = (host.name, host.current_op_hash, message)
    if key not in _said:
        _said.add(key)
        logger.warning(f"{host.print_prefix}{message}")
