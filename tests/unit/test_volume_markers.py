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

from mcpgate.hostops.authelia_cli import _write_marker
from mcpgate.hostops.authelia_facts import VolumeMarker
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


# --- Authelia's users database: read with its digest, moved into place only if unchanged ---------


def _read_users(env: dict[str, str]) -> dict[str, str]:
    from mcpgate.hostops.authelia_facts import VolumeFile

    read = _sh(VolumeFile().command(VOLUME, "users.yml"), env)
    assert read.returncode == 0, read.stderr
    return VolumeFile().process(read.stdout.splitlines())


def _staged(tmp_path: Path, content: str) -> Path:
    staged = tmp_path / "state" / "authelia-users.yml.new"
    staged.parent.mkdir(exist_ok=True)
    staged.write_text(content)
    return staged


def test_the_users_file_is_read_with_its_digest_and_replaced_whole(
    volume: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    import hashlib

    from mcpgate.hostops.authelia_cli import _place_users_file
    from mcpgate.hostops.authelia_facts import VolumeFile

    mountpoint, env = volume
    absent = _read_users(env)
    assert absent == VolumeFile().default() == {"sha256": hashlib.sha256(b"").hexdigest(), "content": ""}
    staged = _staged(tmp_path, "users:\n  alice: {}\n")
    done = _sh(_place_users_file(VOLUME, str(staged), _owner(), absent["sha256"]), env)
    assert done.returncode == 0, done.stderr
    users = mountpoint / "users.yml"
    assert users.read_text() == "users:\n  alice: {}\n" and stat.S_IMODE(users.stat().st_mode) == 0o600
    assert not staged.exists() and list(mountpoint.parent.iterdir()) == [mountpoint]
    seen = _read_users(env)
    assert seen == {"sha256": hashlib.sha256(b"users:\n  alice: {}\n").hexdigest(), "content": "users:\n  alice: {}"}


def test_the_users_file_is_not_replaced_when_it_changed_since_it_was_read(
    volume: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    from mcpgate.hostops.authelia_cli import _place_users_file

    mountpoint, env = volume
    users = mountpoint / "users.yml"
    users.write_text("users:\n  alice: {password: old}\n")
    seen = _read_users(env)
    users.write_text("users:\n  alice: {password: chosen-meanwhile}\n")  # Authelia wrote in between
    staged = _staged(tmp_path, "users:\n  alice: {password: old}\n  bob: {}\n")
    done = _sh(_place_users_file(VOLUME, str(staged), _owner(), seen["sha256"]), env)
    assert done.returncode != 0
    assert "changed while the deploy ran" in done.stderr and "run the deploy again" in done.stderr
    assert users.read_text() == "users:\n  alice: {password: chosen-meanwhile}\n"
    assert not staged.exists()


def test_a_symlink_at_the_users_file_is_neither_read_nor_written_through(
    volume: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    from mcpgate.hostops.authelia_cli import _place_users_file

    mountpoint, env = volume
    victim = tmp_path / "host-file"
    victim.write_text("root:x:0:0\n")
    (mountpoint / "users.yml").symlink_to(victim)
    seen = _read_users(env)
    assert seen["content"] == ""
    done = _sh(_place_users_file(VOLUME, str(_staged(tmp_path, "users: {}\n")), _owner(), seen["sha256"]), env)
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "root:x:0:0\n"
    assert not (mountpoint / "users.yml").is_symlink() and (mountpoint / "users.yml").read_text() == "users: {}\n"
