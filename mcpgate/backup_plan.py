"""What the stack's backups hold, derived from the model, and the shell the backup and restore share.

Backed up (with restic, see templates/backup/): Authelia's data volume, with its SQLite database
replaced by a copy taken with SQLite's online backup while Authelia runs (refresh tokens, consents,
TOTP history, subjects); and every enabled backend's named volumes and host folders, except one
marked ``"backup": False``. Not backed up: Redis' volume, which holds only the portal's browser
sessions (a restore signs people out of the sign-in pages, not Claude: refresh tokens and consents
are in Authelia's database); the stack's folder (rendered again from the inventory and the store);
and the secrets store, which lives on the operator's machine and is the other half of a restore.

Example::

    [i.name for i in backup_items(stack)]   # ["mcpgate-authelia-data", "/srv/notes"]
    restore_selection("latest")              # "latest"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from .errors import MCPGateError
from .layout import volume_name
from .model import Stack


@dataclass(frozen=True)
class BackupItem:
    """One folder a backup holds: a named volume (found by name on any host) or a host folder."""

    kind: Literal["volume", "folder"]
    name: str  # the volume's name, or the folder's absolute path
    service: str  # whose data it is: authelia, or the backend's name

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name} ({self.service})"


def backup_items(stack: Stack) -> list[BackupItem]:
    """Everything a backup of ``stack`` holds besides Authelia's database copy, in a fixed order."""
    items = [BackupItem("volume", volume_name(stack.name, "authelia"), "authelia")]
    for b in stack.enabled_backends:
        for v in b.volumes:
            if not v.backup:
                continue
            item = BackupItem("folder" if v.is_host_path else "volume", v.source, b.name)
            if all(i.name != item.name for i in items):
                items.append(item)
    return items


def not_backed_up(stack: Stack) -> list[str]:
    """The stack's data a backup leaves out, and why (for the reader of the rendered script)."""
    out = [f"volume {volume_name(stack.name, 'redis')}: Redis holds only the sign-in pages' browser sessions"]
    for b in stack.enabled_backends:
        out += [f"{v.source} ({b.name}): marked backup: false" for v in b.volumes if not v.backup]
    return out


_SNAPSHOT_ID = re.compile(r"^[0-9a-f]{8,64}$")


def restore_selection(value: Any) -> str | None:
    """The snapshot a deploy restores (host data ``mcpgate_restore``): "latest" or a snapshot id
    (the 8-character short id restic prints, or the whole one); None: no restore."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if text == "latest" or _SNAPSHOT_ID.match(text):
        return text
    raise MCPGateError(
        f"mcpgate_restore: {text!r} names no snapshot: give latest, or a snapshot id as restic prints it "
        "(8 to 64 hex digits, e.g. 4f3c2a1b; see `restic snapshots` on the host)"
    )


def yes(value: Any, key: str) -> bool:
    """A yes/no host data value (``--data key=yes``)."""
    if value in (None, "", False):
        return False
    text = str(value).strip().lower()
    if text in ("yes", "true", "1"):
        return True
    if text in ("no", "false", "0"):
        return False
    raise MCPGateError(f"{key}: {value!r} is neither yes nor no")
