"""The layers stay apart: ``mcpgate/`` (and ``mcpgate/model/``) is pure logic that neither imports
pyinfra nor the adapter package; ``mcpgate/hostops/`` is the only place that talks to pyinfra and
the host; no module name appears in two layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
PURE = sorted([*PROJECT.glob("mcpgate/*.py"), *PROJECT.glob("mcpgate/model/*.py")])
# The `mcpgate` command (cli.py, and cli_secrets.py for its secrets commands) is the one entry point
# besides deploy.py: it reads inventories with pyinfra's own loader (hostops.inventory_file), so it
# may use the adapter.
ENTRY_POINTS = {"cli.py", "cli_secrets.py", "__main__.py"}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against its package."""
    package = ".".join(path.relative_to(PROJECT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("path", [p for p in PURE if p.name not in ENTRY_POINTS], ids=lambda p: p.name)
def test_pure_modules_import_neither_pyinfra_nor_the_adapter(path: Path) -> None:
    crossing = sorted(
        m for m in _imports(path) if m.split(".")[0] in ("pyinfra", "pyinfra_cli") or m.startswith("mcpgate.hostops")
    )
    assert not crossing, f"{path.relative_to(PROJECT)} imports {crossing}"


def test_only_the_adapter_and_the_deploy_reach_pyinfra() -> None:
    users = sorted(
        str(p.relative_to(PROJECT))
        for p in [*PROJECT.glob("mcpgate/**/*.py"), *PROJECT.glob("tasks/*.py"), PROJECT / "deploy.py"]
        if any(m.split(".")[0] == "pyinfra" for m in _imports(p))
    )
    outside = [u for u in users if not u.startswith(("mcpgate/hostops/", "tasks/")) and u != "deploy.py"]
    assert not outside, outside
    assert "mcpgate/hostops/engine.py" in users  # the walk does see pyinfra's imports


def test_no_module_name_in_two_layers() -> None:
    modules = [
        p
        for p in [*PROJECT.glob("mcpgate/**/*.py"), *PROJECT.glob("tasks/*.py"), PROJECT / "deploy.py"]
        if p.name != "__init__.py"
    ]
    by_name: dict[str, list[str]] = {}
    for p in modules:
        by_name.setdefault(p.stem, []).append(str(p.relative_to(PROJECT)))
    assert {n: ps for n, ps in by_name.items() if len(ps) > 1} == {}
