"""How every operation of :mod:`mcpgate.hostops` writes a command: one line, every argument quoted."""

from __future__ import annotations

import shlex


def shell_command(*args: str) -> str:
    """One shell command, every argument quoted.

    **Example:**

    .. code:: python

        shell_command("docker", "rm", "-f", "mcpgate-redis")  # "docker rm -f mcpgate-redis"
    """
    return shlex.join(args)
