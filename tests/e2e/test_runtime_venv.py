"""What a user runs works with the runtime dependencies alone: a new venv with ``pip install -e .``
(no test extras), then every CLI command and a ``pyinfra --dry`` of deploy.py against the harness's
SSH host. The suite's own venv has the test extras, so it cannot see a missing runtime dependency."""

from __future__ import annotations

import os
import subprocess
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import PROJECT_ROOT, Deployer, name_of

pytestmark = pytest.mark.skipif(
    os.environ.get("MCPGATE_E2E") != "1", reason="the test harness is not up (run the suite with bin/test as root)"
)


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("runtime-venv") / "venv"
    venv.create(root, with_pip=True)
    pip = subprocess.run(
        [root / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", "."],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    yield root


def _run(venv_root: Path, env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv_root / "bin" / args[0]), *args[1:]],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, input=stdin, timeout=600,
    )  # fmt: skip


def test_the_venv_has_no_test_extra(runtime_venv: Path) -> None:
    out = subprocess.run(
        [runtime_venv / "bin" / "python", "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    ).stdout.lower()
    installed = {line.split("==")[0] for line in out.splitlines()}
    assert not installed & {"pytest", "pytest-testinfra", "httpx", "mcp", "ruff"}, installed


def test_every_command_works_without_the_test_extras(runtime_venv: Path, tmp_path: Path) -> None:
    deployer = Deployer(tmp_path)
    env = {**deployer.env, "PATH": f"{runtime_venv / 'bin'}:{os.environ['PATH']}"}
    inventory = str(PROJECT_ROOT / "inventory" / "local.py")

    check = _run(runtime_venv, env, "mcpgate", "check", inventory)
    assert check.returncode == 0, check.stderr
    assert "rendered configs: ok" in check.stdout and "notes/search" in check.stdout
    assert not deployer.secrets_dir.exists(), "mcpgate check wrote into the secrets store"

    render = _run(runtime_venv, env, "mcpgate", "render", inventory, "--out", str(tmp_path / "out"))
    assert render.returncode == 0, render.stderr
    assert (tmp_path / "out" / "127.0.0.1" / "agentgateway" / "config" / "config.yaml").is_file()

    show = _run(runtime_venv, env, "mcpgate", "secrets", "show", inventory)
    assert show.returncode == 0, show.stderr
    assert "otpauth://totp/" in show.stdout

    describe = _run(runtime_venv, env, "mcpgate", "describe", inventory)
    assert describe.returncode == 0, describe.stderr

    # The deploy itself, over real SSH, without changing the host.
    # (without -y: pyinfra then lists the changes it detected, and --dry stops there)
    dry = _run(runtime_venv, env, "pyinfra", "--dry", inventory, "deploy.py")
    output = dry.stdout + dry.stderr
    assert dry.returncode == 0, output[-5000:]
    assert "ModuleNotFoundError" not in output and "Traceback" not in output
    assert "Detected changes" in output and "Configs and secrets | authelia files" in output
    assert f"container {name_of('ingress')}" in output
