"""Authelia's markers live at the root of its data volume, which Authelia's uid owns: the deploy (root)
writes and reads them there without ever following a symlink that uid could have put at their path.

The commands run in a real shell with the host's coreutils; ``docker volume inspect`` is answered by
a stand-in on PATH that prints a folder laid out as Docker lays out a local volume
(``<volumes>/<name>/_data``, the parent root-only).
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from mcpgate.hostops.authelia_cli import VolumeMarker, _write_marker
from mcpgate.layout import SUBJECTS_MARKER

VOLUME = "test-authelia-data"


@pytest.fixture
def volume(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """(the volume's mountpoint, the environment whose ``docker`` prints it)."""
    mountpoint = tmp_path / "volumes" / VOLUME / "_data"
    mountpoint.mkdir(parents=True)
    mountpoint.parent.chmod(0o700)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(f'#!/bin/sh\n[ "$1 $2" = "volume inspect" ] && echo {mountpoint}\n')
    docker.chmod(0o755)
    return mountpoint, {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def _sh(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, check=False)


def _owner() -> str:
    return f"{os.getuid()}:{os.getgid()}"


def test_marker_is_written_private_and_read_back(volume: tuple[Path, dict[str, str]]) -> None:
    mountpoint, env = volume
    done = _sh(_write_marker(VOLUME, SUBJECTS_MARKER, "digest-1", _owner()), env)
    assert done.returncode == 0, done.stderr
    marker = mountpoint / SUBJECTS_MARKER
    assert marker.read_text() == "digest-1"
    assert stat.S_IMODE(marker.stat().st_mode) == 0o600
    assert list(mountpoint.parent.iterdir()) == [mountpoint]  # nothing staged is left behind
    read = _sh(VolumeMarker().command(VOLUME, SUBJECTS_MARKER), env)
    assert VolumeMarker().process(read.stdout.splitlines()) == "digest-1"
    # Written again: replaced whole.
    assert _sh(_write_marker(VOLUME, SUBJECTS_MARKER, "digest-2", _owner()), env).returncode == 0
    assert marker.read_text() == "digest-2"


def test_a_symlink_at_the_marker_path_is_replaced_not_followed(
    volume: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    mountpoint, env = volume
    victim = tmp_path / "host-file"
    victim.write_text("a host file the service's uid must not reach\n")
    victim.chmod(0o640)
    (mountpoint / SUBJECTS_MARKER).symlink_to(victim)

    read = _sh(VolumeMarker().command(VOLUME, SUBJECTS_MARKER), env)
    assert VolumeMarker().process(read.stdout.splitlines()) == ""  # the link is not read through

    done = _sh(_write_marker(VOLUME, SUBJECTS_MARKER, "digest-1", _owner()), env)
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "a host file the service's uid must not reach\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o640
    marker = mountpoint / SUBJECTS_MARKER
    assert not marker.is_symlink() and marker.read_text() == "digest-1"
