"""The fact data_directory decides from (file_facts.PathExists), run by the shell on real paths: a
link, at the end or on the way, is told apart from a folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mcpgate.hostops.file_facts import PathExists


def _kind(path: Path) -> str | None:
    fact = PathExists()
    out = subprocess.run(["sh", "-c", fact.command(str(path))], capture_output=True, text=True, check=True)
    return fact.process(out.stdout.splitlines())


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    real = tmp_path.resolve() / "real"
    (real / "sub").mkdir(parents=True)
    (real / "file").write_text("")
    (tmp_path.resolve() / "link").symlink_to(real)
    (real / "sublink").symlink_to(real / "sub")
    return tmp_path.resolve()


def test_folders_files_and_missing_paths(tree: Path) -> None:
    assert _kind(tree / "real" / "sub") == "directory"
    assert _kind(tree / "real" / "file") == "regular empty file"
    assert _kind(tree / "real" / "missing") is None


def test_a_link_at_the_end_or_on_the_way(tree: Path) -> None:
    assert _kind(tree / "real" / "sublink") == "symbolic link"
    assert _kind(tree / "link" / "sub") == f"leads to {tree / 'real' / 'sub'}"
    assert _kind(tree / "link" / "missing" / "deeper") == f"leads to {tree / 'real' / 'missing' / 'deeper'}"
