"""Where ``mcpgate render --out`` writes: only into a folder it made itself, private, never through a link.

The rendered files hold every secret of the stack (the token-signing key among them). A path such
as ``/tmp/rendered`` can be made first by another local user: as a symlink to a folder of theirs,
or as a folder they can read or write. So ``--out`` is either new (made here, mode 0700, marked as
made by mcpgate), or a folder an earlier render made (owned by this user, writable by no other,
marked). Every folder below is made here with mkdir and every file with ``O_CREAT | O_EXCL |
O_NOFOLLOW``, each relative to its parent's open descriptor, so no name is looked up twice and no
link is followed. A render into a folder of its own replaces what an earlier one wrote there.

Example::

    with open_out(Path("~/mcpgate-rendered").expanduser()) as out:
        write_tree(out, "gateway.lan", rendered)
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from .errors import MCPGateError
from .rendered import Rendered

# At the top of every --out folder a render made: only such a folder is written into again.
MARK = ".mcpgate-render"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


def _refuse(out: Path, problem: str) -> MCPGateError:
    return MCPGateError(
        f"--out {out}: {problem}; give --out a new path in a folder of your own (e.g. ~/mcpgate-rendered): "
        "render makes it, private (0700)"
    )


def _check_ours(out: Path, fd: int, made_now: bool) -> None:
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        raise _refuse(out, f"belongs to uid {st.st_uid}, another user, who could read or change what is written there")
    if stat.S_IMODE(st.st_mode) & 0o022:
        raise _refuse(out, f"has mode {stat.S_IMODE(st.st_mode):04o}: other users can write there")
    if made_now:
        return
    try:
        mark = os.stat(MARK, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        raise _refuse(out, "exists and was not made by mcpgate render (rendered files hold every secret)") from None
    if not stat.S_ISREG(mark.st_mode) or mark.st_uid != os.geteuid():
        raise _refuse(out, f"its {MARK} is not a file of yours")


@contextlib.contextmanager
def open_out(out: Path) -> Iterator[int]:
    """An open descriptor of the ``--out`` folder, made now (0700) or made by an earlier render."""
    made_now = False
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        st = None  # a file on the way: mkdir below names it
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise _refuse(out, "is a symbolic link, which render never follows")
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise MCPGateError(f"--out {out} is a file, not a folder; give a folder (it is created if missing)")
    if st is None:
        out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            os.mkdir(out, 0o700)
        except FileExistsError:
            raise _refuse(out, "appeared while render was making it") from None
        made_now = True
    try:
        fd = os.open(out, _DIR)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise _refuse(out, "is a symbolic link, which render never follows") from None
        raise
    try:
        _check_ours(out, fd, made_now)
        if made_now:
            os.close(os.open(MARK, _NEW_FILE, 0o600, dir_fd=fd))
        yield fd
    finally:
        os.close(fd)


def _subdir(parent: int, name: str, mode: int = 0o700) -> int:
    """``name`` in ``parent``, made now, opened without following a link."""
    os.mkdir(name, mode, dir_fd=parent)
    return os.open(name, _DIR, dir_fd=parent)


def write_tree(out: int, host: str, rendered: Rendered) -> None:
    """Every rendered folder and file under ``<out>/<host>``, made afresh (an earlier render's goes first)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(host, dir_fd=out)
    fds: dict[PurePosixPath, int] = {PurePosixPath("."): _subdir(out, host)}
    modes: dict[PurePosixPath, int] = {PurePosixPath(d.path): d.mode for d in rendered.dirs}

    def folder(path: PurePosixPath) -> int:
        if path not in fds:
            fds[path] = _subdir(folder(path.parent), path.name)
        return fds[path]

    try:
        for d in rendered.dirs:
            folder(PurePosixPath(d.path))
        for f in rendered.files:
            path = PurePosixPath(f.path)
            # Private from the first byte: a secret is never readable by others, even briefly.
            fd = os.open(path.name, _NEW_FILE, 0o600, dir_fd=folder(path.parent))
            with os.fdopen(fd, "wb") as fh:
                fh.write(f.content)
                os.fchmod(fh.fileno(), f.mode)
        for path, mode in modes.items():
            os.fchmod(fds[path], mode)
    finally:
        for fd in fds.values():
            os.close(fd)
