"""Paths the stack mounts: inside a backend container, on the host for a backend, and base_dir.

Every path is normalised ('//srv/notes/' is /srv/notes) before it is checked, and refused with the
reason it would hurt: a host path that hands a backend the host (:func:`host_path_danger`), a
container path where the runtime mounts something itself, a base_dir in a system folder.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator

from .fields import Pattern


def normalise(path: str) -> str:
    """The absolute path ``path`` names: '//etc/', '/etc/.' and '/etc/../etc' are all /etc."""
    return posixpath.normpath(re.sub(r"/+", "/", path))


def at_or_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _refuse_tree(value: str, path: str, trees: dict[str, str], message: str) -> None:
    """Refuse ``path`` at or under a folder of ``trees``; ``message`` words it from {value}, {where}
    ("is" or "is under"), {folder} and {why}."""
    for folder, why in trees.items():
        if at_or_under(path, folder):
            where = "is" if path == folder else "is under"
            raise ValueError(message.format(value=repr(value), where=where, folder=folder, why=why))


def _require_absolute(value: str, then: str) -> None:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path{then}")


def _refuse_mount_syntax(value: str) -> None:
    bad = [c for c in ",=" if c in value]
    if bad:
        raise ValueError(
            f"{value!r} contains {' and '.join(repr(c) for c in bad)}: docker's --mount option string separates "
            "its fields with ',' and '=', so the path would be misread; use a path without them"
        )


def _refuse_dotdot(value: str, path: str) -> None:
    if ".." in value.split("/"):
        raise ValueError(f"{value!r} has a '..' component: write the path it means without it ({path})")


def _normalised(value: str, refuse_place: Callable[[str, str], None]) -> str:
    """The absolute path ``value`` normalised, once ``refuse_place(value, path)`` found no fault with
    where it leads. A '..' is refused only after that: where it leads says more (/srv/../etc is /etc)."""
    _refuse_mount_syntax(value)
    path = normalise(value)
    refuse_place(value, path)
    _refuse_dotdot(value, path)
    return path


# --- inside a container --------------------------------------------------------------------------

# What the runtime puts there itself, and the private tmpfs on /tmp.
_CONTAINER_RESERVED = {
    "/proc": "where the runtime mounts the kernel's process view",
    "/sys": "where the runtime mounts the kernel's sysfs",
    "/dev": "where the runtime sets up the container's devices",
    "/tmp": "the container's own small noexec tmpfs, which a mount there would collide with",
}


def _refuse_container_place(value: str, path: str) -> None:
    if path == "/":
        raise ValueError(f"{value!r} is the container's root: a mount there would cover its whole filesystem")
    _refuse_tree(value, path, _CONTAINER_RESERVED, "{value} {where} {folder}, {why}; choose another path, e.g. /data")


def _container_path(value: str) -> str:
    """An absolute, normalised path inside a container that the stack may mount something at."""
    _require_absolute(value, " inside the container, e.g. /data")
    return _normalised(value, _refuse_container_place)


# An absolute path inside a backend container (volume targets, secret files), normalised.
ContainerPath = Annotated[str, AfterValidator(_container_path)]


# --- on the host, for a backend ------------------------------------------------------------------

# Host paths a backend must never see, nor a folder that holds one: each hands it the host.
_RUNS_AS_ROOT = "(a write there runs as root later)"
_SOCKETS = "the host's runtime sockets, the Docker socket among them"
_HOST_NEVER = {
    "/etc": "the host's configuration (accounts, password hashes, sudoers, cron)",
    "/root": "root's home (SSH keys, shell start-up files)",
    "/proc": "the kernel's view of every process on the host",
    "/sys": "the kernel's devices and settings",
    "/dev": "the host's devices (disks, memory)",
    "/boot": "the host's kernel and boot loader",
    **dict.fromkeys(("/run", "/var/run"), _SOCKETS),
    "/var/lib/docker": "the Docker engine's data root (every container's files and volumes)",
    "/var/lib/containerd": "containerd's data root (every container's files)",
    "/var/lib/tailscale": "tailscaled's state (the node key: whoever has it is this host on your tailnet)",
    "/var/spool/cron": f"every user's crontab {_RUNS_AS_ROOT}",
    "/var/lib/dpkg": f"the package database, with the scripts dpkg runs {_RUNS_AS_ROOT}",
    "/usr": f"the host's programs and libraries {_RUNS_AS_ROOT}",
    **dict.fromkeys(("/bin", "/sbin"), f"the host's programs {_RUNS_AS_ROOT}"),
    **dict.fromkeys(("/lib", "/lib32", "/lib64", "/libx32"), f"the host's libraries {_RUNS_AS_ROOT}"),
}


def host_path_danger(path: str) -> str | None:
    """Why mounting the normalised host ``path`` would hand a backend the host, or None (the
    stack's own base_dir is checked by Stack, which knows it)."""
    if path == "/":
        return "is the host's whole filesystem"
    if any(part.endswith("docker.sock") for part in path.split("/")):
        return "is the Docker socket (whoever can reach it is root on the host)"
    if ".ssh" in path.split("/"):
        return "holds SSH keys (whoever writes there can log in)"
    if path == "/home":
        return "holds every person's home (SSH keys, shell start-up files)"
    if posixpath.dirname(path) == "/home":
        return "is a person's whole home (SSH keys, shell start-up files)"
    for folder, what in _HOST_NEVER.items():
        if path == folder:
            return f"is {folder}, {what}"
        if at_or_under(path, folder):
            return f"is under {folder}, {what}"
        if at_or_under(folder, path):
            return f"holds {folder}, {what}"
    return None


_VOLUME_NAME = Pattern(
    r"^[a-z0-9][a-z0-9_.-]{0,62}$",
    "volume source {value!r} must be an absolute host path (e.g. /srv/notes) or a volume name ({pattern})",
)


def _refuse_host_danger(value: str, path: str) -> None:
    danger = host_path_danger(path)
    if danger:
        raise ValueError(
            f"{value!r} {danger}: mounting it would hand the backend the host; mount a folder of the "
            "backend's own data instead, e.g. /srv/notes"
        )


def _volume_source(value: str) -> str:
    if not value.startswith("/"):
        return _VOLUME_NAME(value)
    return _normalised(value, _refuse_host_danger)


# A host folder (absolute, normalised) or a named volume.
VolumeSource = Annotated[str, AfterValidator(_volume_source)]


# --- base_dir ------------------------------------------------------------------------------------

# The deploy makes base_dir 0755 root:root and owns what is in it, so it must be a folder of its
# own. These may not be base_dir themselves...
_SYSTEM_DIRS = {
    "/": "the root of the filesystem",
    "/etc": "the host's configuration",
    "/var": "variable data of every program",
    "/var/lib": "every program's state",
    "/var/opt": "add-on packages' state",
    "/usr": "installed programs",
    "/usr/local": "locally installed programs",
    "/home": "the people's home folders",
    "/root": "root's home",
    "/srv": "the folder for served data, where your backends' data may live",
    "/opt": "the folder for add-on software",
    "/mnt": "the mount point for temporary file systems",
    "/media": "the mount point for removable media",
}
# ...and may not be inside these at all.
_SYSTEM_TREES = {
    "/proc": "the kernel's process view, not a real folder",
    "/sys": "the kernel's sysfs, not a real folder",
    "/dev": "the host's devices",
    "/run": "memory, emptied at every boot",
    "/var/run": "memory, emptied at every boot",
    "/tmp": "shared with every user and emptied at boot",
    "/var/tmp": "shared with every user and cleaned by systemd-tmpfiles",
    "/boot": "the kernel and boot loader",
    "/var/lib/docker": "the Docker engine's own data root",
    "/var/lib/containerd": "containerd's own data root",
    "/bin": "programs the package manager owns",
    "/sbin": "programs the package manager owns",
    "/lib": "libraries the package manager owns",
    "/lib32": "libraries the package manager owns",
    "/lib64": "libraries the package manager owns",
    "/libx32": "libraries the package manager owns",
    "/usr/bin": "programs the package manager owns",
    "/usr/sbin": "programs the package manager owns",
    "/usr/lib": "libraries the package manager owns",
    "/usr/share": "data the package manager owns",
}


_BASE_DIR_EXAMPLE = "give the stack a dedicated folder such as /opt/mcpgate"


def _refuse_system_folder(value: str, path: str) -> None:
    owns = "the deploy makes base_dir 0755 root:root and its own folders root- or service-owned with tight modes"
    if path in _SYSTEM_DIRS:
        raise ValueError(f"{value!r} is a system folder ({_SYSTEM_DIRS[path]}); {owns}: {_BASE_DIR_EXAMPLE}")
    _refuse_tree(value, path, _SYSTEM_TREES, "{value} {where} {folder} ({why}): " + _BASE_DIR_EXAMPLE)


def _base_dir(value: str) -> str:
    _require_absolute(value, f": {_BASE_DIR_EXAMPLE}")
    if any(c.isspace() for c in value):
        raise ValueError(f"{value!r} contains white space: {_BASE_DIR_EXAMPLE}")
    return _normalised(value, _refuse_system_folder)


# The stack's own folder on the host, normalised ("/opt/mcpgate/" is "/opt/mcpgate").
BaseDir = Annotated[str, AfterValidator(_base_dir)]
