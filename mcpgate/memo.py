"""A per-user record of checks that passed, so that a check of the very same input is not run again.

``mcpgate check``, ``render`` and every deploy check the signing key's RSA math (0.14 s of CPU) and
validate the rendered configs against the upstream schemas (importing jsonschema and walking
Authelia's schema: 0.2 s), though the key and the configs rarely change between two runs. A check
that passed leaves an empty file named by the SHA-256 of what it checked (the check's name and
version, and the input), in a folder of the user's own; finding that file is finding that this
input passed this check before. Only passes are recorded: a failing input is checked every time, and
any change to the input (or to the check's version) is checked in full.

The folder is ``$XDG_CACHE_HOME/mcpgate`` (``~/.cache/mcpgate``), mode 0700 and the user's own, as
Jinja checks its bytecode cache folder; anything else (another owner, a symlink, wider permissions,
no home) and nothing is recorded or trusted. ``MCPGATE_NO_MEMO=1`` turns it off. The file names are
hashes that reveal nothing of the input.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path


def memo_dir() -> Path | None:
    """The folder, made if need be; None when there is none that only this user can write."""
    if os.environ.get("MCPGATE_NO_MEMO"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or (os.path.join(os.path.expanduser("~"), ".cache"))
    if not os.path.isabs(base):
        return None
    path = Path(base) / "mcpgate"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) != 0o700:
        return None
    return path


def _entry(check: str, parts: tuple[bytes, ...]) -> Path | None:
    folder = memo_dir()
    if folder is None:
        return None
    h = hashlib.sha256(check.encode())
    for part in parts:  # each part's length first: no two inputs run together into one
        h.update(len(part).to_bytes(8, "big") + part)
    return folder / f"{check.split(':', 1)[0]}-{h.hexdigest()}"


def passed_before(check: str, *parts: bytes) -> bool:
    """Whether ``check`` (a name and version, e.g. ``rsa-key:1``) passed on exactly these inputs."""
    entry = _entry(check, parts)
    if entry is None:
        return False
    try:
        st = entry.lstat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid()


def record_pass(check: str, *parts: bytes) -> None:
    """Remember that ``check`` passed on these inputs; a memo that cannot be written is no error."""
    entry = _entry(check, parts)
    if entry is None:
        return
    with contextlib.suppress(OSError):
        os.close(os.open(entry, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
