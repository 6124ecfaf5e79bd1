"""What the host's files say: the stack's folders and files, the record of what the deploy placed,
and whether a path exists. Pyinfra facts, no operation; :mod:`mcpgate.hostops.filesync` decides
from them.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from shlex import quote as _q

from pyinfra.api import FactBase

from ..layout import MANIFEST


@dataclass(frozen=True)
class PathInfo:
    kind: str  # "d" or "f"
    owner: str  # uid:gid
    mode: int
    sha256: str | None


class StackTree(FactBase):
    """Every folder and file under the stack's base folder: owner, mode and (files) sha256."""

    def command(self, base: str) -> str:
        b = _q(base)
        return (
            f"if [ -d {b} ]; then "
            f"find {b} \\( -type d -o -type f \\) -printf '%y|%U:%G|%m|%p\\n'; "
            f"find {b} -type f -exec sha256sum {{}} + | sed 's/^/S|/'; "
            "fi"
        )

    def process(self, output: list[str]) -> dict[str, PathInfo]:
        entries: dict[str, tuple[str, str, int]] = {}
        sums: dict[str, str] = {}
        for line in output:
            if line.startswith("S|"):
                digest, _, path = line[2:].partition("  ")
                sums[path] = digest
            elif line[:2] in ("d|", "f|"):
                kind, owner, mode, path = line.split("|", 3)
                entries[path] = (kind, owner, int(mode, 8))
        return {p: PathInfo(k, o, m, sums.get(p)) for p, (k, o, m) in entries.items()}

    def default(self) -> dict[str, PathInfo]:
        return {}


@dataclass(frozen=True)
class Deployed:
    files: frozenset[str]  # every regular file under base_dir (absolute; none behind a symlink)
    manifest: tuple[str, ...] | None  # what the deploy recorded placing (relative); None: no record
    manifest_stat: str  # "uid:gid|mode" of the record, "" without one


class DeployedFiles(FactBase):
    """The record of the files the deploy placed under ``base`` (see :func:`prune_stack_files`) and
    the regular files there now; one command however many files."""

    def command(self, base: str) -> str:
        b, m = _q(base), _q(posixpath.join(base, MANIFEST))
        return (
            f"if [ -d {b} ]; then find {b} -type f -printf 'F|%p\\n'; fi; "
            f"if [ -f {m} ] && [ ! -L {m} ]; then echo \"M|$(stat -c '%u:%g|%a' {m})\"; sed 's/^/L|/' {m}; fi"
        )

    def process(self, output: list[str]) -> Deployed:
        files: set[str] = set()
        manifest: list[str] | None = None
        manifest_stat = ""
        for line in output:
            kind, _, rest = line.partition("|")
            if kind == "F":
                files.add(rest)
            elif kind == "M":
                manifest, manifest_stat = [], rest.strip()
            elif kind == "L" and manifest is not None and rest and not rest.startswith("#"):
                manifest.append(rest)
        return Deployed(frozenset(files), None if manifest is None else tuple(manifest), manifest_stat)

    def default(self) -> Deployed:
        return Deployed(frozenset(), None, "")


LEADS_TO = "leads to "


class PathExists(FactBase):
    """Whether a path exists on the host, and as what ("directory", "regular file", "symbolic
    link"...); ``"leads to <path>"`` when a folder on the way is a symbolic link (whether or not the
    path exists), so that Docker would mount another place than the inventory names."""

    def command(self, path: str) -> str:
        p, parent, name = _q(path), _q(posixpath.dirname(path)), _q(posixpath.basename(path))
        # The folder it is in, every link on the way resolved (readlink -m: parts may be missing).
        return (
            f'd=$(readlink -m {parent} 2>/dev/null || true); [ "$d" = / ] && d=; '
            f'if [ -n "$(readlink -m / 2>/dev/null)" ] && [ "$d/"{name} != {p} ]; then echo "{LEADS_TO}$d/"{name}; '
            f"else stat -c %F {p} 2>/dev/null || true; fi"
        )

    def process(self, output: list[str]) -> str | None:
        return output[0].strip() if output and output[0].strip() else None

    def default(self) -> None:
        return None


@dataclass(frozen=True)
class JournalState:
    journald: bool  # the host runs systemd's journal (its socket is there)
    conf_sha256: str | None  # sha256 of the stack's journald drop-in (None: absent)


class JournalConf(FactBase):
    """Whether the host has systemd's journal, and the sha256 of the stack's drop-in for it."""

    def command(self, path: str) -> str:
        p = _q(path)
        return (
            "if [ -S /run/systemd/journal/socket ]; then echo J; fi; "
            f"if [ -f {p} ]; then echo \"C|$(sha256sum < {p} | cut -d' ' -f1)\"; fi"
        )

    def process(self, output: list[str]) -> JournalState:
        lines = [line.strip() for line in output]
        digest = next((line.removeprefix("C|") for line in lines if line.startswith("C|")), None)
        return JournalState("J" in lines, digest)

    def default(self) -> JournalState:
        return JournalState(False, None)
