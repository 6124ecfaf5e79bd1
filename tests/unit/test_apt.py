"""Third-party apt sources follow the host's release and architecture (a Raspberry Pi is arm64)."""

from __future__ import annotations

import pytest

from mcpgate.apt import AptRelease, apt_release, docker_source
from mcpgate.errors import MCPGateError
from mcpgate.tailscale_node import tailscale_base, tailscale_source


def _distribution(name: str, **meta: str) -> dict:
    """What pyinfra's LinuxDistribution fact gives: the name and /etc/os-release's keys."""
    return {"name": name, "major": None, "minor": None, "release_meta": meta}


@pytest.mark.parametrize(
    "distribution, arch, expected",
    [
        (_distribution("Debian", ID="debian", VERSION_CODENAME="bookworm"), "amd64", ("debian", "bookworm", "amd64")),
        # Raspberry Pi OS (64-bit) says it is Debian; its packages are arm64.
        (_distribution("Debian", ID="debian", VERSION_CODENAME="bookworm"), "arm64", ("debian", "bookworm", "arm64")),
        (
            _distribution("Ubuntu", ID="ubuntu", VERSION_CODENAME="noble", UBUNTU_CODENAME="noble"),
            "arm64",
            ("ubuntu", "noble", "arm64"),
        ),
        # Linux Mint: Ubuntu's repositories, under Ubuntu's codename, not Mint's own.
        (
            _distribution(
                "Linux Mint",
                ID="linuxmint",
                ID_LIKE="ubuntu debian",
                VERSION_CODENAME="virginia",
                UBUNTU_CODENAME="jammy",
            ),
            "amd64",
            ("ubuntu", "jammy", "amd64"),
        ),
    ],
)
def test_apt_release_from_the_hosts_facts(distribution: dict, arch: str, expected: tuple[str, str, str]) -> None:
    assert apt_release(distribution, arch) == AptRelease(*expected)


@pytest.mark.parametrize(
    "distribution, arch, needle",
    [
        (_distribution("Fedora Linux", ID="fedora", VERSION_ID="40"), "x86_64", "this host runs Fedora Linux"),
        (_distribution("Debian", ID="debian"), "amd64", "codename"),
        (None, "amd64", "an unknown system"),
        (_distribution("Debian", ID="debian", VERSION_CODENAME="bookworm"), "", "dpkg --print-architecture"),
    ],
)
def test_a_host_without_a_release_apt_knows_is_refused_clearly(distribution, arch: str, needle: str) -> None:
    with pytest.raises(MCPGateError, match=needle):
        apt_release(distribution, arch)


def test_docker_source_names_the_hosts_architecture_and_release() -> None:
    assert docker_source(AptRelease("debian", "bookworm", "arm64")) == (
        "deb [arch=arm64 signed-by=/etc/apt/keyrings/docker.asc] "
        "https://download.docker.com/linux/debian bookworm stable"
    )


def test_tailscale_source_and_key_follow_the_release() -> None:
    release = AptRelease("ubuntu", "noble", "amd64")
    assert tailscale_source(release) == (
        "deb [signed-by=/usr/share/keyrings/tailscale-archive-keyring.gpg] "
        "https://pkgs.tailscale.com/stable/ubuntu noble main"
    )
    assert tailscale_base(release) == "https://pkgs.tailscale.com/stable/ubuntu/noble"
