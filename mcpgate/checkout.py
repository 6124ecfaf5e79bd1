"""Where the project's own files are: the checkout mcpgate runs from.

The templates and the backends' build folders are read from it, the default secrets store and the
example inventories sit in it (:mod:`mcpgate.hostops.inventory_file`), and the upstream schemas are
looked up beside it (:mod:`mcpgate.validate`).
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = PROJECT_ROOT / "templates"
FILES = PROJECT_ROOT / "files"
