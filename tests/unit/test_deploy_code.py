"""The deploy's own code loads, and limits to components are validated."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from mcpgate.errors import MCPGateError
from mcpgate.hostops.context import COMPONENTS, selected_components, selected_purge
from mcpgate.model import Stack
from tests.conftest import PROJECT_ROOT

TASKS = sorted(p.stem for p in (PROJECT_ROOT / "tasks").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", TASKS)
def test_task_modules_import(module: str) -> None:
    importlib.import_module(f"tasks.{module}")


def test_component_selection() -> None:
    assert selected_components(None) == COMPONENTS
    assert selected_components("ingress,redis") == ("redis", "ingress")
    assert selected_components(["authelia"]) == ("authelia",)
    with pytest.raises(MCPGateError, match="unknown gateway"):
        selected_components("redis,gateway")


def test_purge_names_only_backends_the_stack_no_longer_runs(stack: Stack) -> None:
    assert selected_purge(None, stack) == ()
    assert selected_purge("scratch, old-calendar", stack) == ("scratch", "old-calendar")
    # A typo of a running backend's name must not empty its volume.
    with pytest.raises(MCPGateError, match="notes is still an enabled backend"):
        selected_purge("scratch,notes", stack)


def _pyinfra(inventory: str, tmp_path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MCPGATE_SECRETS_DIR": str(tmp_path / "secrets")}
    return subprocess.run(
        [sys.executable, "-m", "pyinfra", "-y", inventory, "deploy.py"],
        capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=120,
    )  # fmt: skip


def test_a_bad_inventory_stops_the_deploy_before_any_operation(tmp_path) -> None:
    inv = tmp_path / "bad.py"
    inv.write_text(
        "import runpy as _r\n"
        f"local = _r.run_path({str(PROJECT_ROOT / 'inventory' / 'local.py')!r})['local']\n"
        "local[0][1]['mcpgate']['backends'][0]['name'] = 'notes_vault'\n"
    )
    result = _pyinfra(str(inv), tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "backends[0].name: backend name 'notes_vault' contains '_'" in out
    assert "Traceback" not in out
    assert "Starting operation" not in out  # nothing ran on the host
    assert not (tmp_path / "secrets").exists()


def test_a_missing_backend_token_stops_the_deploy_with_the_command_to_set_it(tmp_path) -> None:
    inv = tmp_path / "ha.py"
    inv.write_text(
        "import runpy as _r\n"
        f"local = _r.run_path({str(PROJECT_ROOT / 'inventory' / 'local.py')!r})['local']\n"
        "s = local[0][1]['mcpgate']\n"
        "s['scopes']['home:control'] = 'Control the house'\n"
        "s['backends'].append({'name': 'ha', 'url': 'http://ha.lan:8123/api/mcp', 'token_secret': 'ha-token',"
        " 'allow_plain_http': True, 'scope': 'home:control'})\n"
    )
    result = _pyinfra(str(inv), tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "secret 'ha-token'" in out and "mcpgate secrets set" in out
    assert "Traceback" not in out and "Starting operation" not in out
