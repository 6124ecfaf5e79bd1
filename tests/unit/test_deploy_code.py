"""The deploy's own code loads, and limits to components are validated."""

from __future__ import annotations

import importlib

import pytest

from mcpgate.deploy import SERVICES, selected_components
from mcpgate.errors import MCPGateError


@pytest.mark.parametrize("module", ["tasks.containers", "tasks.docker_engine", "tasks.stack_files", "tasks.tailscale"])
def test_task_modules_import(module: str) -> None:
    importlib.import_module(module)


def test_component_selection() -> None:
    assert selected_components(None) == SERVICES
    assert selected_components("ingress,redis") == ("redis", "ingress")
    assert selected_components(["authelia"]) == ("authelia",)
    with pytest.raises(MCPGateError, match="unknown gateway"):
        selected_components("redis,gateway")
