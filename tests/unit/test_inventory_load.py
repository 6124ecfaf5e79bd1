"""Loading an inventory file: every way the path or the file can be wrong is one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcpgate.errors import InventoryError, MCPGateError
from mcpgate.hostops.inventory_file import load_inventory
from mcpgate.model import load_stack
from tests.conftest import BASE_STACK, PROJECT_ROOT


def _refused(path: str) -> str:
    with pytest.raises(MCPGateError) as info:
        load_inventory(path)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message, message
    return message


def test_a_folder_names_the_inventories_in_it(tmp_path: Path) -> None:
    (tmp_path / "home.py").write_text("hosts = []\n")
    message = _refused(str(tmp_path))
    assert "is a folder, not a file" in message and "home.py" in message


def test_a_missing_file_points_at_the_inventories_there_are() -> None:
    message = _refused(str(PROJECT_ROOT / "inventory" / "hoem.py"))
    assert "does not exist" in message and "home.py, local.py" in message


def test_a_missing_file_in_a_missing_folder_points_at_the_projects_inventories(tmp_path: Path) -> None:
    message = _refused(str(tmp_path / "nowhere" / "home.py"))
    assert "does not exist" in message and "home.py, local.py" in message


def test_no_path() -> None:
    assert "no inventory given" in _refused("")


def test_not_a_python_file() -> None:
    message = _refused(str(PROJECT_ROOT / "README.md"))
    assert "is not a Python file" in message and "inventory/home.py" in message


def test_not_a_regular_file() -> None:
    assert "is not a regular file" in _refused("/dev/null")


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        (
            "hosts = [\n  ('box', {)\n",
            2,
            "closing parenthesis ')' does not match opening parenthesis '{' (in: ('box', {))",
        ),
        ("hosts = [('box', {'mcpgate': {\n", 1, "'{' was never closed"),
        ("hosts = [('box' {})]\n", 1, "syntax error"),
    ],
)
def test_a_syntax_error_is_one_line_with_its_place(tmp_path: Path, text: str, line: int, what: str) -> None:
    inv = tmp_path / "broken.py"
    inv.write_text(text)
    message = _refused(str(inv))
    assert message.startswith(f"{inv}:{line}: syntax error: ") and what in message


def test_an_inventory_that_raises_names_the_line(tmp_path: Path) -> None:
    inv = tmp_path / "raises.py"
    inv.write_text("x = 1\nhosts = [('box', {'mcpgate': 1 / 0})]\n")
    assert _refused(str(inv)) == f"loading inventory {inv}:2 failed: ZeroDivisionError: division by zero"


def test_an_invalid_stack_lists_its_problems(tmp_path: Path) -> None:
    inv = tmp_path / "bad.py"
    inv.write_text(f"hosts = [('box', {{'mcpgate': {{**{BASE_STACK!r}, 'tailscale': False}}}})]\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(str(inv))
    assert info.value.problems == ['tailscale: is a dict of settings, not False: write "tailscale": {"enabled": False}']


@pytest.mark.parametrize("name", ["home.py", "local.py"])
def test_the_example_inventories_load(name: str) -> None:
    (hs,) = load_inventory(str(PROJECT_ROOT / "inventory" / name))
    assert hs.stack.clients[0].id == "claude-ai"
    # What `mcpgate describe` writes (every field, defaults included) loads back the same.
    assert load_stack(hs.host, json.loads(hs.stack.model_dump_json())) == hs.stack


def test_the_cli_prints_the_line_and_no_traceback(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mcpgate", "check", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"mcpgate: inventory {str(tmp_path)!r} is a folder, not a file: name one inventory file; "
        f"inventories in {PROJECT_ROOT / 'inventory'}: home.py, local.py"
    )
    assert "Traceback" not in r.stdout + r.stderr
