"""docs/settings.md: every inventory setting, its default and its meaning, kept equal to the model."""

from __future__ import annotations

import json
from typing import Any

from mcpgate.model import Stack, load_stack
from mcpgate.model.reference import settings_reference, settings_rows
from tests.conftest import BASE_STACK, PROJECT_ROOT

PAGE = PROJECT_ROOT / "docs" / "settings.md"


def test_the_page_is_what_the_model_says() -> None:
    assert PAGE.read_text() == settings_reference(), (
        "docs/settings.md is out of date: python -m mcpgate.model.reference > docs/settings.md"
    )


def _schema_paths(schema: dict[str, Any], node: dict[str, Any], prefix: str = "") -> set[str]:
    """Every setting's path, read from pydantic's JSON schema of the model (another road to the fields)."""
    paths: set[str] = set()
    for name, prop in node.get("properties", {}).items():
        path, many = f"{prefix}{name}", False
        targets = []
        for option in prop.get("anyOf", [prop]):
            if option.get("type") == "array" and "$ref" in option.get("items", {}):
                targets.append(option["items"]["$ref"])
                many = True
            elif "$ref" in option:
                targets.append(option["$ref"])
        paths.add(f"{path}[]" if many else path)
        for ref in targets:
            sub = schema["$defs"][ref.rsplit("/", 1)[1]]
            paths |= _schema_paths(schema, sub, f"{path}[]." if many else f"{path}.")
    return paths


def test_every_setting_is_there_with_its_meaning() -> None:
    rows = settings_rows()
    schema = Stack.model_json_schema()
    assert {path for path, _, _ in rows} == _schema_paths(schema, schema)
    assert [path for path, _, meaning in rows if not meaning] == []


def _at(value: Any, path: str) -> Any:
    for part in path.split("."):
        value = getattr(value, part)
    return value


def test_the_defaults_are_the_ones_a_stack_gets() -> None:
    """Each default on the page is what an inventory that leaves the setting out gets."""
    data = {k: v for k, v in BASE_STACK.items() if k != "audit"}
    bare = load_stack("gateway.lan", data)
    # backup's own settings need a backup block: one that names only its repository.
    with_backup = load_stack("gateway.lan", {**data, "backup": {"repository": "/mnt/backup/mcpgate"}})
    checked = 0
    for path, default, _ in settings_rows():
        if not default.startswith("`") or "[]" in path or path in data:
            continue  # a block, a list entry's setting, or one the test's inventory sets
        value = _at(with_backup if path.startswith("backup.") else bare, path)
        expected = json.loads(default.strip("`"))
        assert (value if not hasattr(value, "model_dump") else value.model_dump()) == expected, path
        checked += 1
    assert checked >= 40
