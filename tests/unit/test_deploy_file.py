"""The deploy file named as a module: inspect finds its frames' module without scanning every module."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcpgate.hostops.deploy_file import MODULE_NAME


@pytest.fixture
def no_named_deploy_file() -> Iterator[None]:
    saved = sys.modules.pop(MODULE_NAME, None)
    yield
    sys.modules.pop(MODULE_NAME, None)
    if saved is not None:
        sys.modules[MODULE_NAME] = saved


def _exec_like_pyinfra(path: Path, name_it: bool) -> tuple[object, inspect.Traceback]:
    """Run ``path`` as pyinfra_cli.util.exec_file does (compiled with its name, exec'd, never imported);
    what inspect makes of the frame of its line that calls back here, as pyinfra's ordering asks."""
    path.write_text(
        "from mcpgate.hostops.deploy_file import name_deploy_file\n"
        + ("name_deploy_file(__file__)\n" if name_it else "pass\n")
        + "seen = look()\n"
    )

    def look() -> tuple[object, inspect.Traceback]:
        frame = sys._getframe(1)
        return inspect.getmodule(frame, inspect.getsourcefile(frame)), inspect.getframeinfo(frame)

    data: dict[str, object] = {"__file__": str(path), "look": look}
    exec(compile(path.read_text(), str(path), "exec"), data)
    return data["seen"]  # type: ignore[return-value]


def test_the_deploy_files_frames_resolve_to_its_module(tmp_path: Path, no_named_deploy_file: None) -> None:
    module, info = _exec_like_pyinfra(tmp_path / "deploy.py", name_it=True)
    assert module is sys.modules[MODULE_NAME]
    assert (info.filename, info.lineno, info.code_context) == (
        str(tmp_path / "deploy.py"),
        3,
        ["seen = look()\n"],
    )


def test_without_it_inspect_finds_no_module_and_scans_every_time(tmp_path: Path, no_named_deploy_file: None) -> None:
    module, info = _exec_like_pyinfra(tmp_path / "deploy.py", name_it=False)
    assert module is None  # inspect.getmodule rescans sys.modules on every such lookup
    assert info.lineno == 3
