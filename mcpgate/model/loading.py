"""Loading one host's stack: the inventory's data checked field by field, then as a whole.

:class:`~mcpgate.model.Stack` validates each field (pydantic); :mod:`.stack_checks` then checks
what no single field shows. Both kinds of problem reach the person the same way: an
:class:`~mcpgate.errors.InventoryError` naming every problem with the field it sits in.

Example::

    stack = load_stack("gateway.lan", host.data.mcpgate)
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..errors import InventoryError
from .stack_checks import stack_problems
from .stack_model import Stack


def _format_errors(err: ValidationError) -> list[str]:
    """pydantic's errors as lines '<field path>: <message>', one per problem."""
    problems: list[str] = []
    for e in err.errors():
        loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in e["loc"]).replace(".[", "[")
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if e["type"] == "extra_forbidden":
            msg = "unknown field (a typo?); remove it"
        elif e["type"] == "missing":
            msg = "is required"
        for line in msg.split("\n"):
            problems.append(f"{loc}: {line}" if loc else line)
    return problems


def load_stack(host: str, data: Any) -> Stack:
    """Validate one host's ``mcpgate`` inventory data; raise InventoryError naming every problem."""
    if data is None:
        raise InventoryError(host, ["no 'mcpgate' data: give the host an mcpgate = {...} dict in the inventory"])
    if isinstance(data, Stack):
        return data
    if not isinstance(data, dict):
        raise InventoryError(host, [f"'mcpgate' must be a dict, not {type(data).__name__}"])
    try:
        stack = Stack.model_validate(data)
    except ValidationError as err:
        raise InventoryError(host, _format_errors(err)) from None
    problems = stack_problems(stack)
    if problems:
        raise InventoryError(host, [line for problem in problems for line in problem.split("\n")])
    return stack
