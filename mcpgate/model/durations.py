"""Durations as Authelia reads them ("1h", "30d", "1 week", "1 hour and 30 minutes") or whole seconds.

Example::

    duration_seconds("1 hour and 30 minutes")   # 5400.0
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import PlainValidator

# Authelia 4.39's duration syntax, copied from its configuration schema ("1h", "30d", "1 week",
# "1 hour and 30 minutes"; "M" is a month, "m" a minute). A bare whole number means seconds.
_DURATION_UNIT = r"(y|M|w|d|h|m|s|ms|((year|month|week|day|hour|minute|second|millisecond)s?))"
DURATION = re.compile(rf"^\d+\s*{_DURATION_UNIT}(\s*(\s+and\s+)?\d+\s*{_DURATION_UNIT})*$")
_DURATION_TERM = re.compile(r"(\d+)\s*([A-Za-z]+)")
# Seconds per unit, to tell a duration of no time at all (a month taken as 30 days, a year as 365).
_UNIT_SECONDS = {
    "y": 365 * 86400,
    "year": 365 * 86400,
    "M": 30 * 86400,
    "month": 30 * 86400,
    "w": 7 * 86400,
    "week": 7 * 86400,
    "d": 86400,
    "day": 86400,
    "h": 3600,
    "hour": 3600,
    "m": 60,
    "minute": 60,
    "s": 1,
    "second": 1,
    "ms": 0.001,
    "millisecond": 0.001,
}
_DURATION_HELP = (
    'write a number and a unit as Authelia reads them, e.g. "1h", "30d", "1 week", "90 minutes", '
    '"1 hour and 30 minutes" (units y, M, w, d, h, m, s, ms or their names), or whole seconds (3600)'
)


def duration_seconds(value: int | str) -> float:
    """How long a duration Authelia accepts lasts, in seconds."""
    if isinstance(value, int):
        return value
    total = 0.0
    for number, unit in _DURATION_TERM.findall(value):
        total += int(number) * (_UNIT_SECONDS.get(unit) or _UNIT_SECONDS[unit[:-1]])
    return total


def _duration(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not a duration: {_DURATION_HELP}")
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[0-9]+", text):
            value = int(text)
        elif not DURATION.match(text):
            raise ValueError(f"{value!r} is not a duration: {_DURATION_HELP}")
        elif duration_seconds(text) <= 0:
            raise ValueError(f'{value!r} lasts no time at all: give a duration longer than 0, e.g. "1h"')
        else:
            return text
    if value <= 0:
        raise ValueError(f"{value} seconds lasts no time at all: give a duration longer than 0, e.g. 3600")
    return value


# Authelia's duration syntax or whole seconds; rendered as given.
Duration = Annotated[int | str, PlainValidator(_duration)]
