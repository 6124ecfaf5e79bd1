"""Small helpers shared by the notes-vault tests."""

from __future__ import annotations

from pathlib import Path


def all_files(root: Path) -> list[str]:
    """Every file and folder under root (hidden ones too), for before/after comparisons."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))
