"""The host's release and architecture as apt sources need them, and Docker's apt repository (Tailscale's is in
:mod:`mcpgate.tailscale_node`, with the rest of the Tailscale node).

Pure: the tasks pass in what pyinfra's ``LinuxDistribution`` and ``DebArch`` facts say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import MCPGateError

DOCKER_KEY_URL = "https://download.docker.com/linux/{distro}/gpg"
DOCKER_KEYRING = "/etc/apt/keyrings/docker.asc"


@dataclass(frozen=True)
class AptRelease:
    """What an apt source line for this host needs: ``debian``/``ubuntu``, codename, dpkg architecture."""

    distro: str
    codename: str
    arch: str


def apt_release(distribution: dict[str, Any] | None, arch: str | None) -> AptRelease:
    """The host's release from pyinfra's facts; a clear error on a host mcpgate cannot install on.

    >>> apt_release({"name": "Debian", "release_meta": {"VERSION_CODENAME": "bookworm"}}, "arm64")
    AptRelease(distro='debian', codename='bookworm', arch='arm64')
    """
    distribution = distribution or {}
    meta = distribution.get("release_meta") or {}
    ids = " ".join(str(v) for v in (distribution.get("name"), meta.get("ID"), meta.get("ID_LIKE")) if v).lower()
    distro = "ubuntu" if "ubuntu" in ids else "debian" if "debian" in ids else None
    codename = meta.get("UBUNTU_CODENAME") if distro == "ubuntu" else None
    codename = codename or meta.get("VERSION_CODENAME")
    if distro is None or not codename:
        seen = distribution.get("name") or "an unknown system"
        raise MCPGateError(
            f"mcpgate installs packages on Debian or Ubuntu (with a release codename in /etc/os-release); "
            f"this host runs {seen}. Install Docker yourself and set docker.install to 'existing'"
        )
    if not arch:
        raise MCPGateError("dpkg --print-architecture gave nothing on this host: is it Debian or Ubuntu?")
    return AptRelease(distro, codename, arch)


def docker_source(release: AptRelease) -> str:
    """Docker's apt source line (https://docs.docker.com/engine/install/debian/).

    >>> docker_source(AptRelease("ubuntu", "noble", "arm64")).split(" https://")
    ['deb [arch=arm64 signed-by=/etc/apt/keyrings/docker.asc]', 'download.docker.com/linux/ubuntu noble stable']
    """
    return (
        f"deb [arch={release.arch} signed-by={DOCKER_KEYRING}] "
        f"https://download.docker.com/linux/{release.distro} {release.codename} stable"
    )
