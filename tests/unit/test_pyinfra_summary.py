"""The end-to-end tests count changes from pyinfra's results table: check that reading on real output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT
from tests.e2e.harness import parse_results


def test_results_table_of_a_real_pyinfra_run(tmp_path: Path) -> None:
    env = {**os.environ, "SUMMARY_TEST_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "pyinfra", "-y", "@local", "tests/fixtures/summary_deploy.py"],
        capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    changed, errors = parse_results(proc.stdout + proc.stderr)
    assert changed == ["command that always runs"]
    assert errors == 0
