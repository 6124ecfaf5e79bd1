"""Filesystem side of the notes vault: path confinement, bounded search, atomic writes.

Nothing in here knows about MCP. Every refusal is a `VaultError` whose message is
safe to show to the model: it names the vault-relative path the caller gave and
never a resolved path outside the vault.

Confinement works in two steps:

1. The caller's path is checked lexically (relative, no ``..``/``.``/empty or
   hidden components, no NUL or backslash, ends in ``.md``), then resolved with
   ``os.path.realpath`` and compared against the realpath of the vault root. The
   resolved path is checked again (so an in-vault symlink cannot point at
   ``.obsidian/…`` or a non-Markdown file).
2. The resolved, symlink-free components are then walked from a descriptor of
   the vault root with ``O_NOFOLLOW`` at every step (``openat`` style). If a
   component was swapped for a symlink between steps 1 and 2, the open fails with
   ``ELOOP`` instead of following it, so the file actually opened is always inside
   the vault.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

NOTE_SUFFIX = ".md"
MAX_PATH_CHARS = 1024
MAX_COMPONENT_BYTES = 255
MAX_FOLDER_DEPTH = 64
MAX_QUERY_CHARS = 256
MAX_LINE_CHARS = 300

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO someone dropped into the vault must not hang the worker;
# the descriptor is checked to be a regular file right after, where O_NONBLOCK is a no-op.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class VaultError(Exception):
    """A refused or failed vault operation; the message is meant for the caller."""


@dataclass(frozen=True)
class Limits:
    """Size and work bounds. Defaults suit a personal vault; all are overridable by env."""

    max_read_bytes: int = 1024 * 1024
    max_write_bytes: int = 1024 * 1024
    search_max_file_bytes: int = 2 * 1024 * 1024
    search_max_files: int = 50_000
    search_timeout_s: float = 10.0
    search_hard_max_results: int = 200


@dataclass
class SearchOutcome:
    matches: list[tuple[str, int, str]] = field(default_factory=list)
    files_scanned: int = 0
    truncated: bool = False
    truncated_reason: str | None = None


@dataclass(frozen=True)
class WriteOutcome:
    path: str
    bytes_written: int
    created: bool


def _check_components(path: str, *, what: str, parts: list[str]) -> None:
    for part in parts:
        if part in ("", ".", ".."):
            if part == "..":
                raise VaultError(f"{what} {path!r} is refused: '..' components are not allowed")
            raise VaultError(f"{what} {path!r} is refused: empty or '.' path components are not allowed")
        if part.startswith("."):
            raise VaultError(
                f"{what} {path!r} is refused: hidden files and folders (starting with '.') are not accessible"
            )
        if len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
            raise VaultError(f"{what} {path!r} is refused: a path component is longer than 255 bytes")


def split_note_path(path: str, *, what: str = "path") -> list[str]:
    """Validate a vault-relative note path lexically and return its components."""
    parts = _split_relative(path, what=what)
    if not parts[-1].lower().endswith(NOTE_SUFFIX):
        raise VaultError(f"{what} {path!r} is refused: only Markdown notes ending in '.md' are accessible")
    return parts


def _split_relative(path: str, *, what: str) -> list[str]:
    if not isinstance(path, str) or path.strip() == "":
        raise VaultError(f"{what} is refused: it is empty; give a vault-relative path like 'folder/note.md'")
    if "\x00" in path:
        raise VaultError(f"{what} is refused: it contains a NUL byte")
    if len(path) > MAX_PATH_CHARS:
        raise VaultError(f"{what} is refused: longer than {MAX_PATH_CHARS} characters")
    if "\\" in path:
        raise VaultError(f"{what} {path!r} is refused: use '/' as the separator, not '\\'")
    if path.startswith("/") or path.startswith("~"):
        raise VaultError(f"{what} {path!r} is refused: absolute paths are not allowed; give a vault-relative path")
    parts = path.split("/")
    _check_components(path, what=what, parts=parts)
    return parts


def split_folder_path(path: str) -> list[str]:
    """Validate a vault-relative folder; '' means the vault root."""
    if path in ("", "/"):
        return []
    return _split_relative(path.rstrip("/"), what="folder")


class Vault:
    """An Obsidian-style vault: Markdown notes in folders under one root directory."""

    def __init__(self, root: str | os.PathLike[str], limits: Limits | None = None) -> None:
        real = os.path.realpath(os.fspath(root))
        if not os.path.isdir(real):
            raise ValueError(f"vault root {os.fspath(root)!r} is not a directory")
        self.root = real
        self.limits = limits or Limits()

    # ----------------------------------------------------------------- resolution

    def _resolve(self, path: str, *, follow_final: bool) -> list[str]:
        """Return the symlink-free components (relative to the root) that ``path`` names.

        With ``follow_final`` false the last component is kept as-is (used by delete,
        which removes a symlinked note's link rather than its target).
        """
        parts = split_note_path(path)
        lexical = os.path.join(self.root, *parts)
        if follow_final:
            real = os.path.realpath(lexical)
        else:
            real = os.path.join(os.path.realpath(os.path.dirname(lexical)), parts[-1])
        rel = self._relative_inside(real)
        if rel is None:
            raise VaultError(f"path {path!r} is refused: it resolves outside the vault (through a symlink)")
        try:
            resolved = split_note_path(rel)
        except VaultError:
            raise VaultError(
                f"path {path!r} is refused: it resolves (through a symlink) to a hidden or non-Markdown file"
            ) from None
        if not follow_final:
            self._refuse_escaping_link(path, resolved)
        return resolved

    def _relative_inside(self, real: str) -> str | None:
        if real == self.root:
            return None
        try:
            if os.path.commonpath([self.root, real]) != self.root:
                return None
        except ValueError:
            return None
        rel = os.path.relpath(real, self.root)
        if rel.startswith(".."):
            return None
        return rel.replace(os.sep, "/")

    def _refuse_escaping_link(self, path: str, parts: list[str]) -> None:
        full = os.path.join(self.root, *parts)
        if os.path.islink(full):
            target = self._relative_inside(os.path.realpath(full))
            if target is None:
                raise VaultError(f"path {path!r} is refused: it is a symlink that resolves outside the vault")

    def _open_dir(self, parts: list[str], *, create: bool = False) -> int:
        """Walk ``parts`` from the root with O_NOFOLLOW at each step; return a dir fd."""
        if len(parts) > MAX_FOLDER_DEPTH:
            raise VaultError(f"path is refused: folders nest deeper than {MAX_FOLDER_DEPTH} levels")
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for part in parts:
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):  # created concurrently: open decides
                        os.mkdir(part, 0o755, dir_fd=fd)
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
            return fd
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def _os_error(path: str, exc: OSError) -> VaultError:
        if isinstance(exc, FileNotFoundError):
            return VaultError(f"note {path!r} not found")
        if isinstance(exc, IsADirectoryError):
            return VaultError(f"path {path!r} is a folder, not a note")
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return VaultError(
                f"path {path!r} is refused: a component is a symlink or not a folder (or changed while being accessed)"
            )
        if exc.errno == errno.ENAMETOOLONG:
            return VaultError(f"path {path!r} is refused: name too long")
        if exc.errno in (errno.EACCES, errno.EPERM):
            return VaultError(f"permission denied for {path!r}")
        if exc.errno == errno.ENOSPC:
            return VaultError("the vault's disk is full")
        if exc.errno == errno.EROFS:
            return VaultError("the vault is mounted read-only")
        return VaultError(f"could not access {path!r}: {exc.strerror or type(exc).__name__}")

    # ----------------------------------------------------------------------- read

    def read(self, path: str) -> str:
        parts = self._resolve(path, follow_final=True)
        cap = self.limits.max_read_bytes
        try:
            dir_fd = self._open_dir(parts[:-1])
            try:
                fd = os.open(parts[-1], _READ_FLAGS, dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise self._os_error(path, exc) from None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise VaultError(f"path {path!r} is a folder, not a note")
            if not stat.S_ISREG(st.st_mode):
                raise VaultError(f"path {path!r} is not a regular file")
            if st.st_size > cap:
                raise VaultError(f"note {path!r} is {st.st_size} bytes, larger than the read limit of {cap} bytes")
        except BaseException:
            os.close(fd)
            raise
        with io.FileIO(fd, "r", closefd=True) as f:
            data = f.read(cap + 1)
        if len(data) > cap:  # grew after fstat
            raise VaultError(f"note {path!r} is larger than the read limit of {cap} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise VaultError(f"note {path!r} is not valid UTF-8 text") from None

    # ---------------------------------------------------------------------- write

    def write(self, path: str, content: str, *, overwrite: bool = True) -> WriteOutcome:
        if not isinstance(content, str):
            raise VaultError("content must be a string")
        if "\x00" in content:
            raise VaultError("content is refused: it contains a NUL character")
        try:
            data = content.encode("utf-8")
        except UnicodeEncodeError:
            raise VaultError("content is refused: it is not encodable as UTF-8 (lone surrogates)") from None
        cap = self.limits.max_write_bytes
        if len(data) > cap:
            raise VaultError(f"content is {len(data)} bytes, larger than the write limit of {cap} bytes")
        parts = self._resolve(path, follow_final=True)
        name = parts[-1]
        try:
            dir_fd = self._open_dir(parts[:-1], create=True)
        except OSError as exc:
            raise self._os_error(path, exc) from None
        try:
            created = self._check_target(path, name, dir_fd, overwrite=overwrite)
            self._atomic_write(path, name, dir_fd, data, overwrite=overwrite)
            return WriteOutcome(path="/".join(parts), bytes_written=len(data), created=created)
        except OSError as exc:
            raise self._os_error(path, exc) from None
        finally:
            os.close(dir_fd)

    @staticmethod
    def _check_target(path: str, name: str, dir_fd: int, *, overwrite: bool) -> bool:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return True
        if not stat.S_ISREG(st.st_mode):
            raise VaultError(f"path {path!r} exists and is not a regular note file")
        if not overwrite:
            raise VaultError(f"note {path!r} already exists (overwrite is false)")
        return False

    @staticmethod
    def _atomic_write(path: str, name: str, dir_fd: int, data: bytes, *, overwrite: bool) -> None:
        # Hidden temp name: search skips it and the tools can never address it.
        tmp = f".{name[:200]}.{secrets.token_hex(6)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o644, dir_fd=dir_fd)
        try:
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
            if overwrite:
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            else:
                # link() fails with EEXIST instead of clobbering a note created meanwhile.
                try:
                    os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
                except FileExistsError:
                    raise VaultError(f"note {path!r} already exists (overwrite is false)") from None
                os.unlink(tmp, dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        os.fsync(dir_fd)  # make the rename itself durable

    # --------------------------------------------------------------------- delete

    def delete(self, path: str) -> str:
        parts = self._resolve(path, follow_final=False)
        try:
            dir_fd = self._open_dir(parts[:-1])
            try:
                st = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    raise VaultError(f"path {path!r} is a folder, not a note")
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                    raise VaultError(f"path {path!r} is not a regular note file")
                os.unlink(parts[-1], dir_fd=dir_fd)  # unlink never follows a final symlink
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise self._os_error(path, exc) from None
        return "/".join(parts)

    # --------------------------------------------------------------------- search

    def search(
        self,
        query: str,
        *,
        max_results: int = 20,
        folder: str = "",
        max_matches_per_note: int = 5,
    ) -> SearchOutcome:
        """Case-insensitive substring search over note lines, bounded in every direction.

        Notes are visited in a deterministic order (names sorted per folder, files before
        sub-folders), one at a time, line by line; the walk stops as soon as
        ``max_results`` lines matched, ``search_max_files`` notes were scanned, or the
        time budget ran out. Hidden entries and symlinks are never followed.
        """
        if not isinstance(query, str) or query.strip() == "":
            raise VaultError("query is refused: it is empty")
        if "\x00" in query:
            raise VaultError("query is refused: it contains a NUL character")
        if len(query) > MAX_QUERY_CHARS:
            raise VaultError(f"query is refused: longer than {MAX_QUERY_CHARS} characters")
        lim = self.limits
        max_results = max(1, min(int(max_results), lim.search_hard_max_results))
        max_matches_per_note = max(1, min(int(max_matches_per_note), max_results))
        folder_parts = split_folder_path(folder)
        if folder_parts:
            real = os.path.realpath(os.path.join(self.root, *folder_parts))
            rel = self._relative_inside(real)
            if rel is None:
                raise VaultError(f"folder {folder!r} is refused: it resolves outside the vault")
            folder_parts = split_folder_path(rel)
        needle = query.casefold()
        deadline = time.monotonic() + lim.search_timeout_s
        out = SearchOutcome()
        try:
            start_fd = self._open_dir(folder_parts)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                raise VaultError(f"folder {folder!r} not found") from None
            raise self._os_error(folder, exc) from None
        walker = self._walk(start_fd, "/".join(folder_parts), depth=len(folder_parts))
        try:
            for dir_fd, name, rel in walker:
                if out.files_scanned >= lim.search_max_files:
                    out.truncated, out.truncated_reason = True, "max_files_scanned"
                    break
                if time.monotonic() > deadline:
                    out.truncated, out.truncated_reason = True, "time_budget"
                    break
                out.files_scanned += 1
                room = max_results - len(out.matches)
                for lineno, line in self._grep_note(dir_fd, name, needle, min(room, max_matches_per_note)):
                    out.matches.append((rel, lineno, _clip(line, needle)))
                if len(out.matches) >= max_results:
                    out.truncated, out.truncated_reason = True, "max_results"
                    break
        finally:
            walker.close()  # runs the generator's finally blocks: closes every open dir fd
            os.close(start_fd)
        return out

    def _walk(self, dir_fd: int, prefix: str, depth: int) -> Iterator[tuple[int, str, str]]:
        """Yield (dir_fd, name, vault-relative path) for candidate notes, depth-first.

        Only one directory listing per nesting level is held in memory at a time.
        """
        files: list[str] = []
        dirs: list[str] = []
        max_size = self.limits.search_max_file_bytes
        try:
            with os.scandir(dir_fd) as it:
                for entry in it:
                    if entry.name.startswith("."):
                        continue  # .obsidian, .trash, .git, our own temp files
                    try:
                        if entry.is_symlink():
                            continue  # never follow links during a walk
                        if entry.is_dir(follow_symlinks=False):
                            dirs.append(entry.name)
                        elif (
                            entry.name.lower().endswith(NOTE_SUFFIX)
                            and entry.is_file(follow_symlinks=False)
                            and entry.stat(follow_symlinks=False).st_size <= max_size
                        ):
                            files.append(entry.name)
                    except OSError:
                        continue
        except OSError:
            return
        files.sort()
        dirs.sort()
        for name in files:
            yield dir_fd, name, f"{prefix}/{name}" if prefix else name
        del files
        if depth >= MAX_FOLDER_DEPTH:
            return
        for name in dirs:
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                yield from self._walk(child, f"{prefix}/{name}" if prefix else name, depth + 1)
            finally:
                os.close(child)

    def _grep_note(self, dir_fd: int, name: str, needle: str, limit: int) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        try:
            fd = self._open_note_fd(dir_fd, name)
        except OSError:
            return found
        max_size = self.limits.search_max_file_bytes
        with open(fd, encoding="utf-8", errors="replace", newline=None, closefd=True) as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > max_size:
                return found
            consumed = 0
            for lineno, line in enumerate(f, 1):
                consumed += len(line)
                if consumed > max_size:  # grew after the size check
                    break
                if needle in line.casefold():
                    found.append((lineno, line.rstrip("\r\n")))
                    if len(found) >= limit:
                        break
        return found

    @staticmethod
    def _open_note_fd(dir_fd: int, name: str) -> int:
        """Open one note for searching (a seam for tests that count opened files)."""
        return os.open(name, _READ_FLAGS, dir_fd=dir_fd)


def _clip(line: str, needle: str) -> str:
    """Shorten a long matching line to a window around the first match."""
    if len(line) <= MAX_LINE_CHARS:
        return line
    at = line.casefold().find(needle)
    at = max(at, 0)
    start = max(0, min(at - MAX_LINE_CHARS // 3, len(line) - MAX_LINE_CHARS))
    clipped = line[start : start + MAX_LINE_CHARS]
    return ("…" if start > 0 else "") + clipped + ("…" if start + MAX_LINE_CHARS < len(line) else "")
