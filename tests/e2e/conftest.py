"""End-to-end fixtures: the real stack deployed onto this machine over SSH, and torn down after.

A service that cannot run here is left out of the stack (tests/e2e/harness.py, ``unavailable``);
``gateway`` and ``authelia`` skip a test that needs one, with the reason."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SummaryLines
from tests.e2e.harness import VAULT_DIR, Deployer, RunResult, missing_requirements, teardown_stack

# Lines for the end of the run (tests/conftest.py prints them, also from pytest-xdist's workers).
TIMINGS = SummaryLines("mcpgate deploy wall times")
# Where the tests left what a person can look at (screenshots).
NOTES = SummaryLines("mcpgate test artifacts")


@pytest.fixture(scope="session")
def deployer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployer]:
    reason = missing_requirements()
    if reason:
        pytest.skip(f"end-to-end stack unavailable: {reason}")
    workdir = tmp_path_factory.mktemp("e2e")
    vault = Path(VAULT_DIR)
    teardown_stack()
    shutil.rmtree(vault, ignore_errors=True)
    vault.mkdir(parents=True)
    (vault / "projects").mkdir()
    (vault / "projects" / "gateway.md").write_text("# Gateway\n\nThe MCP gateway runs on the home server.\n")
    (vault / "shopping.md").write_text("- milk\n- coffee beans\n")
    for p in [vault, *vault.rglob("*")]:
        shutil.chown(p, 10001, 10001)
    try:
        yield Deployer(workdir)
    finally:
        teardown_stack()
        shutil.rmtree(vault, ignore_errors=True)


@pytest.fixture(scope="session")
def gateway(deployer: Deployer) -> None:
    """A test that needs agentgateway in the test stack (it is left out where it cannot run)."""
    deployer.need("agentgateway")


@pytest.fixture(scope="session")
def authelia(deployer: Deployer) -> None:
    """A test that needs Authelia in the test stack (it is left out where it cannot run)."""
    deployer.need("authelia")


@pytest.fixture(scope="session")
def first_run(deployer: Deployer) -> RunResult:
    result = deployer.deploy()
    note = f", without {' and '.join(deployer.left_out)} ({deployer.components})" if deployer.left_out else ""
    TIMINGS.append(f"first deploy from nothing: {result.seconds:.1f} s ({result.changes} operations changed{note})")
    assert result.returncode == 0, result.output[-6000:]
    return result
