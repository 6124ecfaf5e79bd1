"""The host's journal, where the stack's containers log (the inventory's ``audit.logs``): the
stack's drop-in for journald with how long and how much it keeps (:func:`journal_retention`)."""

from __future__ import annotations

import posixpath
from shlex import quote as _q

from pyinfra.api import operation

from ..rendered import HostFile
from . import snapshot
from .file_facts import JournalConf, JournalState
from .messages import noop_when_unchanged


def journal_state(path: str) -> JournalState:
    """Whether the host has systemd's journal, and the drop-in at ``path`` as it is there."""
    return snapshot.read_fact(JournalConf, "journal", lambda q: q.journal_conf == path, path=path)


@operation()
@snapshot.changes_host("journal")
@noop_when_unchanged(
    lambda a: (
        f"the journal keeps the containers' logs as {a['path']} says"
        if a["conf"] is not None
        else f"the containers log to Docker's files: no {a['path']}"
    )
)
def journal_retention(path: str, conf: HostFile | None):
    """
    The stack's drop-in for journald as rendered, journald restarted when it changed so that it
    keeps what the drop-in says from now on; with no ``conf`` (audit.logs "docker"), a drop-in an
    earlier deploy placed is removed.

    + path: the drop-in (``layout.journald_conf``), in /etc/systemd/journald.conf.d
    + conf: the rendered drop-in (``Rendered.journal``), or None

    **Example:**

    .. code:: python

        journal_retention(path="/etc/systemd/journald.conf.d/mcpgate.conf", conf=rendered.journal)
    """
    state = journal_state(path)
    if conf is None:
        if state.conf_sha256 is not None:
            yield f"rm -f {_q(path)} && systemctl restart systemd-journald"
        return
    if state.conf_sha256 == conf.sha256:
        return
    folder = posixpath.dirname(path)
    temp = posixpath.join(folder, f".{posixpath.basename(path)}.mcpgate-new")
    # Not a secret: written from the command line, then renamed into place whole.
    yield (
        f"install -d -m 755 {_q(folder)} && printf %s {_q(conf.content.decode())} > {_q(temp)} && "
        f"chown {conf.owner} {_q(temp)} && chmod {conf.mode:o} {_q(temp)} && mv -f {_q(temp)} {_q(path)}"
    )
    # journald reads its configuration only when it starts; Storage=persistent makes /var/log/journal then.
    yield "systemctl restart systemd-journald"
