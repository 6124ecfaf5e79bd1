"""The file sync removes only files it placed itself (issue 12), over the real SSH target.

``tasks.stack_files.sync_files`` (the deploy's own operations: one per component, then the prune)
runs with a small rendered set into a folder of the test's own, as root and as the harness's
non-root user through sudo. Foreign files in the folders the deploy manages, a host deployed before
the manifest existed, and a tampered manifest must all leave everything the deploy did not write
exactly where it was.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcpgate.layout import MANIFEST
from tests.e2e.harness import RunResult
from tests.e2e.sshops import deploy_user, run_operations, target_folder

OPERATIONS = """
import json
import os

from mcpgate.rendered import HostDir, HostFile
from tasks.stack_files import sync_files

with open(os.environ["MCPGATE_TEST_RENDER"]) as f:
    spec = json.load(f)
sync_files(
    spec["base_dir"],
    [HostDir(path, int(mode, 8), owner) for path, mode, owner in spec["dirs"]],
    [HostFile(path, content.encode(), int(mode, 8), owner, "", False) for path, content, mode, owner in spec["files"]],
)
"""

DIRS = [
    ("redis", "755", "0:0"),
    ("redis/config", "700", "10379:10379"),
    ("ingress", "755", "0:0"),
    ("ingress/config", "700", "10080:10080"),
    ("build", "755", "0:0"),
    ("build/notes", "755", "0:0"),
]
FILES = [
    ("redis/config/redis.conf", "requirepass x\n", "600", "10379:10379"),
    ("redis/config/extra.conf", "maxmemory 64mb\n", "600", "10379:10379"),
    ("ingress/config/Caddyfile", ":8088 {\n}\n", "600", "10080:10080"),
    ("build/notes/app.py", "print('notes')\n", "644", "0:0"),
]


class Sync:
    """Runs the sync of a rendered set into ``base`` as one SSH user."""

    def __init__(self, workdir: Path, base: Path, user: str) -> None:
        self.workdir, self.base, self.user = workdir, base, user

    def run(self, dirs: list[tuple[str, str, str]], files: list[tuple[str, str, str, str]]) -> RunResult:
        spec = self.workdir / "render.json"
        spec.write_text(json.dumps({"base_dir": str(self.base), "dirs": dirs, "files": files}))
        result = run_operations(
            self.workdir, OPERATIONS, user=self.user, env={"MCPGATE_TEST_RENDER": str(spec)}, verbose=2
        )
        assert result.returncode == 0, result.output[-4000:]
        return result

    def manifest(self) -> list[str]:
        path = self.base / MANIFEST
        st = path.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
        return [line for line in path.read_text().splitlines() if not line.startswith("#")]


@pytest.fixture(params=["root", "deploy-user"])
def sync(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sync]:
    with target_folder("filesync") as root:
        yield Sync(tmp_path, root / "stack", "root" if request.param == "root" else deploy_user())


def _foreign(path: Path, text: str = "not the deploy's\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_only_files_the_deploy_placed_are_removed(sync: Sync) -> None:
    base = sync.base
    # A host deployed by an older mcpgate: its files are there, with no manifest.
    older = _foreign(base / "redis/config/old-render.conf", "an older deploy's file\n")
    first = sync.run(DIRS, FILES)
    assert f"{base / MANIFEST} is missing" in first.output and "nothing removed" in first.output
    assert older.is_file()  # nothing is known about it: kept
    assert sync.manifest() == sorted(f[0] for f in FILES)
    for path, content, mode, owner in FILES:
        st = (base / path).stat()
        assert (base / path).read_text() == content and stat.S_IMODE(st.st_mode) == int(mode, 8)
        assert f"{st.st_uid}:{st.st_gid}" == owner

    # Someone's own files in folders the deploy manages, and in a component it will drop.
    foreign = [
        _foreign(base / "redis/config/local.conf"),
        _foreign(base / "build/notes/scratch.txt"),
        _foreign(base / "redis/notes.md"),
    ]
    # The render loses one file and the whole build component.
    files = [f for f in FILES if f[0] != "redis/config/extra.conf" and not f[0].startswith("build/")]
    dirs = [d for d in DIRS if not d[0].startswith("build")]
    second = sync.run(dirs, files)
    assert "Files no longer rendered" in second.changed_ops, second.changed_ops
    assert not (base / "redis/config/extra.conf").exists()
    assert not (base / "build/notes/app.py").exists()
    for path in foreign:
        assert path.is_file() and path.read_text() == "not the deploy's\n", f"{path} was not the deploy's"
    assert older.read_text() == "an older deploy's file\n"
    assert (base / "redis/config/redis.conf").is_file() and (base / "ingress/config/Caddyfile").is_file()
    assert sync.manifest() == sorted(f[0] for f in files)

    third = sync.run(dirs, files)
    assert third.changed_ops == [], third.changed_ops
    # The no-op reads the manifest and the folder in one command, whatever the number of files.
    reads = [line for line in third.output.splitlines() if ">>>" in line and MANIFEST in line]
    assert len(reads) <= 2, reads  # once when pyinfra checks for changes, once when it runs
    print("\n".join(["--- no-op run:", *reads, f"{third.seconds:.1f} s"]))


def test_a_tampered_manifest_removes_nothing_outside_the_deploys_files(sync: Sync) -> None:
    base, outside = sync.base, sync.base.parent
    sync.run(DIRS, FILES)
    victims = [
        _foreign(outside / "outside.txt"),
        _foreign(outside / "target.txt"),
        _foreign(outside / "victims/victim.conf"),
    ]
    (base / "redis/config/link.conf").symlink_to(outside / "target.txt")
    (base / "ingress/linkdir").symlink_to(outside / "victims")
    with (base / MANIFEST).open("a") as manifest:
        manifest.write("../outside.txt\n")
        manifest.write(f"{outside / 'outside.txt'}\n")
        manifest.write("redis/config/link.conf\n")
        manifest.write("ingress/linkdir/victim.conf\n")
    result = sync.run(DIRS, FILES)
    assert "'../outside.txt', which is no path below" in result.output
    for victim in victims:
        assert victim.is_file(), f"{victim} was removed"
    assert (base / "redis/config/link.conf").is_symlink() and (base / "ingress/linkdir").is_symlink()
    assert sync.manifest() == sorted(f[0] for f in FILES)  # the record is the deploy's again
    assert os.listdir(base / ".upload") == []
