"""Fixtures for the notes-vault MCP server tests.

The server lives in ``files/notes-vault`` (it ships in its own image, not in the mcpgate
package), so that folder is put on ``sys.path`` here.

The MCP SDK (``mcp``, pinned in pyproject's ``test`` extra) is required. If it is not
importable, the modules that need it are not collected and ``test_sdk.py`` fails with
an explanation instead: a clear failure, never a silent skip, and the rest of the
unit suite still runs.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
SERVER_DIR = REPO_ROOT / "files" / "notes-vault"

if str(SERVER_DIR) not in sys.path:
    sys.path.insert(0, str(SERVER_DIR))

MCP_MISSING: str | None = None
if importlib.util.find_spec("mcp") is None:
    MCP_MISSING = (
        "The MCP Python SDK is not importable, so the notes-vault server cannot be tested. "
        "Install the pinned test dependencies: pip install -e '.[test]' (or pip install -r "
        "files/notes-vault/requirements.txt)."
    )
    # These modules import the server (and so `mcp`) at import time; test_sdk.py reports why.
    collect_ignore_glob = ["test_mcp_*.py"]

from notes_vault.vault import Limits, Vault  # noqa: E402  (needs the sys.path entry above)


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    """A small Obsidian-style vault, with a sibling folder outside it for escape attempts."""
    root = tmp_path / "vault"
    (root / "Projects" / "mcpgate").mkdir(parents=True)
    (root / "Daily").mkdir()
    (root / ".obsidian").mkdir()
    (root / ".trash").mkdir()
    (root / "Welcome.md").write_text("# Welcome\nThis vault has a Secret word: PINEAPPLE.\n", encoding="utf-8")
    (root / "Projects" / "mcpgate" / "Plan.md").write_text(
        "# Plan\n- tailscale funnel\n- caddy\n- Authelia OIDC\n- agentgateway\n", encoding="utf-8"
    )
    (root / "Daily" / "2025-01-31.md").write_text("Met Ärger about the pineapple pizza.\n", encoding="utf-8")
    (root / "Daily" / "attachment.png").write_bytes(b"\x89PNG pineapple")
    (root / ".obsidian" / "workspace.md").write_text("pineapple in hidden config\n", encoding="utf-8")
    (root / ".trash" / "old.md").write_text("pineapple in the trash\n", encoding="utf-8")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("outside pineapple secret\n", encoding="utf-8")
    return root


@pytest.fixture
def outside_dir(vault_dir: Path) -> Path:
    return vault_dir.parent / "outside"


@pytest.fixture
def vault(vault_dir: Path) -> Vault:
    return Vault(vault_dir)


@pytest.fixture
def small_limits() -> Limits:
    return Limits(max_read_bytes=64, max_write_bytes=64, search_max_file_bytes=64, search_max_files=3)


@pytest.fixture
def no_leftovers(vault_dir: Path) -> Iterator[None]:
    """Asserts a test leaves no temp files (hidden '*.tmp') anywhere in the vault."""
    yield
    leftovers = [p for p in vault_dir.rglob("*.tmp")]
    assert leftovers == [], f"temporary files left behind: {leftovers}"
