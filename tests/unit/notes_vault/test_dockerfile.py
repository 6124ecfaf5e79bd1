"""Static checks of the image recipe (the image itself is built and run by the e2e harness)."""

from __future__ import annotations

import re

from .conftest import SERVER_DIR

DOCKERFILE = (SERVER_DIR / "Dockerfile").read_text(encoding="utf-8")
REQUIREMENTS = (SERVER_DIR / "requirements.txt").read_text(encoding="utf-8")


def test_base_image_is_a_pinned_overridable_arg() -> None:
    assert re.search(r"^ARG BASE_IMAGE=python:3\.12\.\d+-slim-bookworm$", DOCKERFILE, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", DOCKERFILE, re.M)


def test_runs_unprivileged_with_healthcheck_and_port() -> None:
    assert re.search(r"^USER 10001:10001$", DOCKERFILE, re.M)
    assert re.search(r"^EXPOSE 8080$", DOCKERFILE, re.M)
    assert "HEALTHCHECK" in DOCKERFILE and "notes_vault.healthcheck" in DOCKERFILE
    assert "curl" not in DOCKERFILE.split("HEALTHCHECK", 1)[1]
    assert re.search(r'^ENTRYPOINT \["/opt/venv/bin/python", "-m", "notes_vault"\]$', DOCKERFILE, re.M)


def test_installs_hashed_requirements_into_a_venv() -> None:
    assert "python3 -m venv /opt/venv" in DOCKERFILE
    assert "--require-hashes" in DOCKERFILE
    assert "--only-binary=:all:" in DOCKERFILE


def test_read_only_rootfs_friendly() -> None:
    assert "PYTHONDONTWRITEBYTECODE=1" in DOCKERFILE
    assert "compileall" in DOCKERFILE


def test_every_requirement_is_pinned_with_a_hash() -> None:
    entries = re.findall(
        r"^([A-Za-z0-9._-]+)==(\S+) \\\n((?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", REQUIREMENTS, re.M
    )
    names = {name for name, _, _ in entries}
    listed = set(re.findall(r"^([A-Za-z0-9._-]+)[=<>~!]", REQUIREMENTS, re.M))
    assert "mcp" in names
    assert listed == names, f"requirements without pinned hashes: {listed - names}"
    assert "--find-links" not in REQUIREMENTS and "--index-url" not in REQUIREMENTS
