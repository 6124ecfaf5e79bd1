"""The containers fact (engine.StackContainers), run by the shell against a stand-in ``docker``
that answers as Docker 20.10 does when a listed container is removed before ``docker inspect``
reaches it (another stack's, on a shared engine): the ones it found as one JSON list on stdout, an
error on stderr, exit status 1. The fact keeps that list."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mcpgate.hostops.docker_facts import StackContainers

_FOUND = '[{"Name": "/mcpgate-authelia", "Id": "aaa"}]'


def _run(tmp_path: Path, listed: str, inspect_out: str, inspect_rc: int) -> dict[str, Any]:
    fake = tmp_path / "docker"
    fake.write_text(
        "#!/bin/sh\n"
        f"""case "$1" in ps) printf '{listed}' ;; inspect) printf '%s\\n' '{inspect_out}'; """
        f"echo 'Error: No such object: bbb' >&2; exit {inspect_rc} ;; esac\n"
    )
    fake.chmod(0o755)
    fact = StackContainers()
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    out = subprocess.run(["sh", "-c", fact.command()], capture_output=True, text=True, env=env, check=True)
    return fact.process(out.stdout.splitlines())


@pytest.mark.parametrize(
    ("listed", "inspect_out", "inspect_rc", "names"),
    [
        ("aaa\\nbbb\\n", _FOUND, 1, {"mcpgate-authelia"}),  # bbb went away in between
        ("aaa\\n", _FOUND, 0, {"mcpgate-authelia"}),
        ("bbb\\n", "[]", 1, set()),  # every listed one went away
        ("", "unused", 0, set()),  # none listed: inspect is not run
    ],
)
def test_the_containers_found(tmp_path: Path, listed: str, inspect_out: str, inspect_rc: int, names: set[str]) -> None:
    assert set(_run(tmp_path, listed, inspect_out, inspect_rc)) == names
