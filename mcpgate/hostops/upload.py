"""Private uploads: a file's content never readable by another user, never staged in /tmp, never on a
command line."""

from __future__ import annotations

import hashlib
import io
import posixpath
from shlex import quote as _q

from pyinfra.api import FileUploadCommand

from ..layout import UPLOAD_DIR


def staging_dir(base_dir: str) -> str:
    """The private staging folder of the stack at ``base_dir``."""
    return posixpath.join(base_dir, UPLOAD_DIR)


def _staging(upload_dir: str, dest: str) -> str:
    """Where an upload to ``dest`` is staged: named after the destination, never after the content."""
    return posixpath.join(upload_dir, f"{hashlib.sha256(dest.encode()).hexdigest()[:16]}.tmp")


def prepare_private_uploads(upload_dir: str, dests: list[str]) -> str:
    """
    One command that makes the uploads to ``dests`` private from their first byte on: run it
    before :func:`private_upload` of each, and :func:`finish_private_upload` after.

    With sudo, pyinfra uploads as the SSH user (SFTP) to a staging file, copies that with ``cp``
    as root to the destination and removes the staging file. Both files are created here, empty,
    under umask 077: the staging file in ``upload_dir`` (0700, the SSH user's) for the SSH user,
    the destination for root. SFTP and ``cp`` then only write into files that already exist, which
    keeps their mode 0600 whatever the SSH server's or sudo's umask; without sudo pyinfra writes the
    destination directly, again into the 0600 file. Never /tmp, where pyinfra would stage a 0644
    file under a predictable name.

    **Example** (in an operation):

    .. code:: python

        staging = staging_dir("/opt/mcpgate")
        yield prepare_private_uploads(staging, ["/run/secret"])
        yield private_upload(b"...", "/run/secret", staging)
        yield finish_private_upload(staging, "/run/secret")
    """
    user = '"${SUDO_USER:-$(id -un)}"'
    parent = _q(posixpath.dirname(upload_dir))
    steps = [
        f"{{ [ -d {parent} ] || install -d -m 755 {parent}; }}",  # the SSH user must reach upload_dir
        f"install -d -m 700 -o {user} {_q(upload_dir)}",
        f"chown {user} {_q(upload_dir)}",
        f"chmod 700 {_q(upload_dir)}",
        "umask 077",
        "set -C",  # a file created below is new (O_EXCL): never one that was there, nor a symlink's target
    ]
    for dest in dests:
        staged = _staging(upload_dir, dest)
        steps += [
            f"rm -f {_q(staged)} {_q(dest)}",
            f": > {_q(staged)}",
            f"chown {user} {_q(staged)}",
            f": > {_q(dest)}",
        ]
    return " && ".join(steps)


def private_upload(content: bytes, dest: str, upload_dir: str) -> FileUploadCommand:
    """Upload ``content`` into ``dest``, staged in ``upload_dir``; see :func:`prepare_private_uploads`."""
    return FileUploadCommand(io.BytesIO(content), dest, remote_temp_filename=_staging(upload_dir, dest))


def finish_private_upload(upload_dir: str, dest: str) -> str:
    """Remove the staging file (pyinfra leaves it when it wrote ``dest`` directly, without sudo)."""
    return f"rm -f {_q(_staging(upload_dir, dest))}"
