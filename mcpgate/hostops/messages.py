"""What an operation tells the user in pyinfra's output besides its commands (data kept, a record
missing), and why it did nothing when the host already matched."""

from __future__ import annotations

import functools
import inspect
import shlex
from collections.abc import Callable, Generator, Iterator
from typing import Any

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


def noop_when_unchanged(
    description: str | Callable[[dict[str, Any]], str] | None = None,
) -> Callable[[Callable[..., Generator[Any, None, str | None]]], Callable[..., Iterator[Any]]]:
    """For an operation's function: when it yields no command, tell pyinfra why (``host.noop``,
    shown with ``-v``), as pyinfra's own operations do. The reason is what the function returns,
    when it knows it only from the host's facts (``return f"{path} exists"``), else
    ``description``, formatted with the operation's arguments or called with them. Put it right
    under ``@operation()`` and any ``@snapshot.changes_host``, so that it sees the return value.

    **Example:**

    .. code:: python

        @operation()
        @noop_when_unchanged("volume {volume} exists, owned by {owner}")
        def docker_volume(volume: str, owner: str, stack: str): ...
    """

    def decorate(func: Callable[..., Generator[Any, None, str | None]]) -> Callable[..., Iterator[Any]]:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            changed = False
            commands = func(*args, **kwargs)
            while True:
                try:
                    command = next(commands)
                except StopIteration as done:
                    reason = done.value
                    break
                changed = True
                yield command
            if changed:
                return
            if reason is None and description is not None:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                given = bound.arguments
                reason = description(given) if callable(description) else description.format(**given)
            if reason is not None:
                host.noop(reason)

        return wrapper

    return decorate


def refuse(message: str) -> str:
    """The command an operation yields to refuse at run time: it prints ``message`` on stderr and
    fails, so pyinfra shows it and counts the operation as an error. (An exception raised in an
    operation's body at run time aborts the whole run and prints gevent's traceback.)

    **Example** (in an operation):

    .. code:: python

        yield refuse("this node is x on the tailnet, but the inventory's hostname is y")
        return
    """
    return f"printf '%s\\n' {shlex.quote(message)} >&2; exit 1"
