"""Each local stand-in carries every property of its official image that the deploy relies on
(tests/e2e/standins.py lists them with their upstream source), read from the image itself: its
config from ``docker image inspect``, its files from ``docker export`` (owners, modes, file
capabilities), so an image without a shell is checked the same way."""

from __future__ import annotations

import json
import os
import posixpath
import struct
import subprocess
import tarfile
from functools import cache
from pathlib import Path

import pytest

from tests.e2e.harness import LOCAL_IMAGES, PYTHON_BASE, docker, image_exists, unavailable
from tests.e2e.standins import AUTHELIA, CADDY, GATEWAY, PROPERTIES, PYTHON, REDIS, Property, readme_table

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CAP_NET_BIND_SERVICE = 10
VFS_CAP_FLAGS_EFFECTIVE = 0x000001


def standin_for(official: str) -> str | None:
    """The local image standing in for an official one (None: none here)."""
    return {
        CADDY: LOCAL_IMAGES["ingress"],
        REDIS: LOCAL_IMAGES["redis"],
        AUTHELIA: LOCAL_IMAGES["authelia"],
        PYTHON: PYTHON_BASE,
        GATEWAY: os.environ.get("MCPGATE_AGENTGATEWAY_IMAGE"),
    }[official]


class ImageFiles:
    """The files of an image as ``docker export`` gives them, with symlinks resolved inside it."""

    def __init__(self, image: str) -> None:
        name = docker("create", image).stdout.strip()
        try:
            with subprocess.Popen(["docker", "export", name], stdout=subprocess.PIPE) as proc:
                assert proc.stdout is not None
                self.members: dict[str, tarfile.TarInfo] = {}
                self.passwd = ""
                with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                    for m in tar:
                        path = "/" + m.name.removeprefix("./").strip("/")
                        self.members[path] = m
                        if path == "/etc/passwd" and m.isfile():
                            handle = tar.extractfile(m)
                            self.passwd = handle.read().decode() if handle else ""
        finally:
            docker("rm", "-fv", name, check=False)

    def resolve(self, path: str, depth: int = 0) -> tarfile.TarInfo | None:
        assert depth < 20, f"symlink loop at {path}"
        parts = [p for p in path.split("/") if p]
        current = "/"
        for i, part in enumerate(parts):
            current = posixpath.join(current, part)
            m = self.members.get(current)
            if m is None:
                return None
            if m.issym():
                target = (
                    m.linkname if m.linkname.startswith("/") else posixpath.join(posixpath.dirname(current), m.linkname)
                )
                rest = "/".join(parts[i + 1 :])
                return self.resolve(posixpath.normpath(posixpath.join(target, rest)), depth + 1)
        return self.members.get(current)


@cache
def _files(image: str) -> ImageFiles:
    return ImageFiles(image)


@cache
def _config(image: str) -> dict:
    return json.loads(docker("image", "inspect", image).stdout)[0]["Config"]


def _file_capability(member: tarfile.TarInfo) -> tuple[bool, int]:
    """(effective flag, permitted set) of a file's security.capability xattr (struct vfs_cap_data)."""
    raw = member.pax_headers.get("SCHILY.xattr.security.capability")
    assert raw is not None, f"{member.name} has no file capability"
    data = raw.encode("utf-8", "surrogateescape")
    magic, permitted_lo, _inheritable_lo = struct.unpack_from("<III", data)
    return bool(magic & VFS_CAP_FLAGS_EFFECTIVE), permitted_lo


def assert_property(image: str, prop: Property) -> None:
    kind, *args = prop.check
    config = _config(image)
    if kind == "entrypoint":
        assert config.get("Entrypoint") == args[0], config.get("Entrypoint")
    elif kind == "cmd":
        assert config.get("Cmd") == args[0], config.get("Cmd")
    elif kind == "user":
        assert (config.get("User") or "") == args[0], config.get("User")
    elif kind == "workdir":
        assert config.get("WorkingDir") == args[0], config.get("WorkingDir")
    elif kind == "env":
        assert args[0] in (config.get("Env") or []), config.get("Env")
    elif kind == "volume":
        assert args[0] in (config.get("Volumes") or {}), config.get("Volumes")
    elif kind == "absent":
        assert _files(image).resolve(args[0]) is None, f"{args[0]} exists"
    elif kind in ("file", "dir", "fcap"):
        member = _files(image).resolve(args[0])
        assert member is not None, f"{args[0]} is missing"
        if kind == "file":
            assert member.isfile(), f"{args[0]} is not a file"
            if args[1] is not None:
                assert member.mode & 0o7777 == args[1], f"{args[0]}: {oct(member.mode)}"
        elif kind == "dir":
            assert member.isdir(), f"{args[0]} is not a folder"
            assert f"{member.uid}:{member.gid}" == args[1], f"{args[0]} is {member.uid}:{member.gid}"
        else:
            assert args[1] == "cap_net_bind_service=+ep"
            effective, permitted = _file_capability(member)
            assert effective and permitted == 1 << CAP_NET_BIND_SERVICE, (effective, hex(permitted))
    elif kind == "passwd":
        name, uid, gid = args[0].split(":")
        entries = {line.split(":")[0]: line.split(":") for line in _files(image).passwd.splitlines() if line}
        assert name in entries and entries[name][2:4] == [uid, gid], entries.get(name)
    else:
        raise AssertionError(f"unknown check {kind}")


OFFICIAL_IMAGES = list(dict.fromkeys(p.image for p in PROPERTIES))


@pytest.mark.skipif(os.environ.get("MCPGATE_E2E") != "1", reason="the test harness is not up (run bin/test as root)")
@pytest.mark.parametrize("official", OFFICIAL_IMAGES)
def test_standin_carries_every_property(official: str) -> None:
    """Every property listed for one official image, each checked on its stand-in; the ones it
    lacks are named together, each with its upstream source."""
    service = {AUTHELIA: "authelia", GATEWAY: "agentgateway"}.get(official)
    props = [p for p in PROPERTIES if p.image == official]
    if service in unavailable():
        pytest.skip(f"{len(props)} properties of {official} not checked: {unavailable()[service]}")
    image = standin_for(official)
    if not image or not image_exists(image):
        pytest.skip(f"no local stand-in for {official} here ({image or 'none can be built on this machine'})")
    lacking = []
    for prop in props:
        try:
            assert_property(image, prop)
        except AssertionError as e:
            lacking.append(f"{prop.what} ({prop.upstream}): {e}")
    assert not lacking, f"{image} lacks:\n" + "\n".join(lacking)


def test_the_harness_readme_lists_every_property() -> None:
    readme = (PROJECT_ROOT / "tests" / "harness" / "README.md").read_text()
    assert readme_table() in readme, "tests/harness/README.md's stand-in table differs from tests/e2e/standins.py"


def test_the_inventory_pins_the_images_the_properties_describe() -> None:
    from mcpgate.model import Images

    pinned = Images()
    assert {CADDY, REDIS, AUTHELIA, GATEWAY} == {pinned.ingress, pinned.redis, pinned.authelia, pinned.agentgateway}
    dockerfile = (PROJECT_ROOT / "files" / "notes-vault" / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={PYTHON}" in dockerfile
