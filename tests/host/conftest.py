"""Checks a person runs against their live host after a deploy, reading the same inventory:

    pytest tests/host --hosts=ssh://myhost --inventory inventory/home.py [--mcpgate-host gateway.lan]

The inventory is read through ``mcpgate describe`` (a subprocess, so pyinfra's loader stays out of
this process); secret values come from the local secrets store, to prove none leaked on the host.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcpgate.model import Stack, load_stack
from mcpgate.render import Rendered, render_stack
from mcpgate.secrets import SecretStore, StackSecrets

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mcpgate")
    group.addoption("--inventory", default="inventory/home.py", help="the inventory the host was deployed from")
    group.addoption("--mcpgate-host", default=None, help="the host's name in the inventory (default: the only one)")
    group.addoption("--secrets", default=None, help="secrets store folder (default: the project's secrets/)")
    group.addoption(
        "--components", default=None, help="the services the deploy ran, if limited (its mcpgate_components)"
    )


@pytest.fixture(scope="session")
def described(request: pytest.FixtureRequest) -> dict:
    args = [sys.executable, "-m", "mcpgate", "describe", request.config.getoption("--inventory")]
    if request.config.getoption("--mcpgate-host"):
        args += ["--host", request.config.getoption("--mcpgate-host")]
    result = subprocess.run(args, capture_output=True, text=True, cwd=PROJECT_ROOT)
    if result.returncode != 0:
        pytest.fail(f"cannot read the inventory: {result.stderr.strip()}")
    hosts = json.loads(result.stdout)
    if len(hosts) != 1:
        pytest.fail(f"the inventory has {len(hosts)} hosts; choose one with --mcpgate-host")
    return hosts[0]


@pytest.fixture(scope="session")
def stack(described: dict) -> Stack:
    return load_stack(described["host"], described["mcpgate"])


@pytest.fixture(scope="session")
def stack_secrets(request: pytest.FixtureRequest, described: dict, stack: Stack) -> StackSecrets:
    from mcpgate.hostops.inventory_file import default_secrets_dir

    folder = request.config.getoption("--secrets")
    store = SecretStore.for_host(Path(folder) if folder else default_secrets_dir(), described["host"])
    if not store.root.is_dir():
        pytest.fail(f"no secrets store for {described['host']} at {store.root}: was this host deployed from here?")
    return StackSecrets(store, stack)


@pytest.fixture(scope="session")
def components(request: pytest.FixtureRequest) -> tuple[str, ...]:
    from mcpgate.hostops.context import selected_components

    return selected_components(request.config.getoption("--components"))


@pytest.fixture(scope="session")
def authelia_deployed(components: tuple[str, ...]) -> None:
    if "authelia" not in components:
        pytest.skip("Authelia was not part of this deploy (--components)")


@pytest.fixture(scope="session")
def gateway_deployed(components: tuple[str, ...]) -> None:
    if "agentgateway" not in components:
        pytest.skip("agentgateway was not part of this deploy (--components)")


@pytest.fixture(scope="session")
def rendered(stack: Stack, stack_secrets: StackSecrets, described: dict) -> Rendered:
    return render_stack(stack, stack_secrets, host=described["host"])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """What the checks measured besides pass or fail (a test's ``record_property("report", line)``),
    e.g. the age of the newest backup snapshot."""
    lines = [
        str(value)
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        for name, value in getattr(report, "user_properties", [])
        if name == "report"
    ]
    if lines:
        terminalreporter.section("mcpgate host report")
        for line in lines:
            terminalreporter.write_line(line)
