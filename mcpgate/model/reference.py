"""Every inventory setting with its default and its meaning, in one page a person reads top to bottom
(``docs/settings.md``), as Ansible keeps a role's settings in one ``defaults/main.yml``.

It is drawn from the model itself: the fields, their defaults, and the comments written above each
field in the model's source (the one place a setting is explained), so it cannot drift from what
the deploy does; a unit test keeps the page equal to what this module writes.

    python -m mcpgate.model.reference > docs/settings.md
"""

from __future__ import annotations

import inspect
import io
import json
import re
import tokenize
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .stack_model import Stack

HEADER = """# Inventory settings

Every setting of a host's `mcpgate` block (see `inventory/home.py`), with its default and what it means.
Written by `python -m mcpgate.model.reference > docs/settings.md` from the model (`mcpgate/model/`):
its fields, their defaults and the comments above them. A test keeps this page equal to the model.
A list (`users[]`) is one entry per item; *required* has no default.
"""


def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """The comment written for each field of ``model``'s class body: the lines right above it, and
    one at the end of its own line."""
    try:
        source = inspect.getsource(model)
    except (OSError, TypeError):
        return {}
    comments: dict[str, str] = {}
    above: list[str] = []
    body_indent: int | None = None
    field, field_row = "", -1  # the last field named, and its line
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.INDENT and body_indent is None:
            body_indent = len(token.string)
        elif token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            if token.start[0] == field_row:
                comments[field] = f"{comments[field]} {text}".strip() if field in comments else text
            elif token.start[1] == body_indent:
                above.append(text)
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.DEDENT) and token.start[1] == body_indent:
            if token.type == tokenize.NAME and token.string in model.model_fields:
                field, field_row = token.string, token.start[0]
                if above:
                    comments[field] = " ".join(above)
            above = []
    return comments


def _models_in(annotation: Any) -> list[tuple[type[BaseModel], bool]]:
    """The settings models an annotation holds: (model, as a list's items)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    if origin is list:
        return [(m, True) for m, _ in _models_in(typing.get_args(annotation)[0])]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, False)]
    return []


def _default(field: Any) -> str:
    value = field.get_default(call_default_factory=True)
    if value is PydanticUndefined:
        return "*required*"
    if isinstance(value, BaseModel):
        return ""  # a block: its settings follow, each with its own default
    return f"`{json.dumps(value, default=str)}`"


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def settings_rows(model: type[BaseModel] = Stack, prefix: str = "") -> list[tuple[str, str, str]]:
    """(setting, default, meaning) for every field of ``model``, blocks followed by their fields."""
    rows = []
    comments = field_comments(model)
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = _models_in(field.annotation)
        meaning = comments.get(name) or (nested and (inspect.getdoc(nested[0][0]) or "").split("\n\n")[0]) or ""
        if not meaning:
            # Explained together with another field of its block ("... within sign_in_window ...").
            mentioned = [other for other, text in comments.items() if re.search(rf"\b{name}\b", text)]
            meaning = f"see `{prefix}{mentioned[0]}`" if mentioned else ""
        many = any(is_list for _, is_list in nested)
        rows.append((f"{path}[]" if many else path, _default(field), _one_line(meaning)))
        for sub, is_list in nested:
            rows.extend(settings_rows(sub, f"{path}[]." if is_list else f"{path}."))
    return rows


def settings_reference() -> str:
    """The page: a table of every setting (``docs/settings.md``)."""
    lines = [HEADER, "| setting | default | meaning |", "| --- | --- | --- |"]
    seen: set[str] = set()
    for path, default, meaning in settings_rows():
        if path not in seen:  # a union of two models (a backend's forms) lists a shared field once
            seen.add(path)
            lines.append(f"| `{path}` | {default} | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_reference(), end="")
