"""Backends built on the host: each one's build context copied out of ``files/<build>``, and an
image tag made from its content, so the image is rebuilt exactly when a file of it changes.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

from .checkout import FILES
from .errors import MCPGateError
from .layout import BUILD_DIR, backend_build_dir
from .model import Backend
from .rendered import BuildContext, RenderInput, RenderOutput

# Files copied out of files/<build> into a backend's build context, and what is left out.
_BUILD_EXCLUDE = {"__pycache__", ".pytest_cache", ".ruff_cache", ".venv", "tests"}


def build_files(build: str) -> list[tuple[str, bytes]]:
    """(relative path, content) for each file of files/<build>, sorted."""
    root = FILES / build
    if not root.is_dir():
        raise MCPGateError(f"build {build!r}: there is no folder files/{build} in the project")
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part in _BUILD_EXCLUDE or part.startswith(".") for part in rel.parts):
            if p.suffix in (".pyc",):
                continue
            out.append((rel.as_posix(), p.read_bytes()))
    return out


def build_image_tag(backend: Backend, files: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256(f"base={backend.base_image or ''}\0".encode())
    for rel, content in files:
        h.update(f"{rel}\0{len(content)}\0".encode())
        h.update(content)
    return f"mcpgate-local/{backend.name}:{h.hexdigest()[:16]}"


def render_builds(given: RenderInput, out: RenderOutput) -> list[BuildContext]:
    """Backends built on the host: their build context, content-addressed."""
    builds: list[BuildContext] = []
    for b in given.stack.enabled_backends:
        if b.build is None:
            continue
        content = build_files(b.build)
        folder = backend_build_dir(b.name)
        out.dir(BUILD_DIR)
        out.dir(folder)
        for rel in sorted({str(PurePosixPath(r).parent) for r, _ in content} - {"."}):
            parts = PurePosixPath(rel).parts
            for i in range(len(parts)):
                out.dir(f"{folder}/{PurePosixPath(*parts[: i + 1])}")
        for rel, data in content:
            out.file(f"{folder}/{rel}", data, mode=0o644, owner="0:0", service="", secret=False)
        builds.append(BuildContext(b.name, folder, build_image_tag(b, content), b.base_image))
    return builds
