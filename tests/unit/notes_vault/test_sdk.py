"""The MCP SDK must be importable, and be the version the server image pins."""

from __future__ import annotations

import importlib.metadata
import re

import pytest

from .conftest import MCP_MISSING, SERVER_DIR


def test_mcp_sdk_is_importable() -> None:
    if MCP_MISSING:
        pytest.fail(MCP_MISSING, pytrace=False)
    import mcp  # noqa: F401


def test_installed_sdk_matches_image_pin() -> None:
    """The tests exercise the same SDK version the Docker image installs."""
    if MCP_MISSING:
        pytest.fail(MCP_MISSING, pytrace=False)
    text = (SERVER_DIR / "requirements.txt").read_text(encoding="utf-8")
    pinned = re.search(r"^mcp==(\S+)", text, re.M)
    assert pinned, "requirements.txt must pin mcp==X.Y.Z"
    installed = importlib.metadata.version("mcp")
    assert installed == pinned.group(1), (
        f"installed mcp {installed} differs from files/notes-vault/requirements.txt pin {pinned.group(1)}; "
        "keep pyproject's test extra and the image pin in step"
    )
