"""The Docker engine: from Docker's apt repository or Debian's docker.io; a working engine is left alone."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import apt, files, server

from mcpgate.deploy import context_for
from mcpgate.hostops import DockerEngine

DOCKER_KEY_URL = "https://download.docker.com/linux/{id}/gpg"
DOCKER_KEYRING = "/etc/apt/keyrings/docker.asc"


@deploy("Docker engine")
def docker_engine() -> None:
    ctx = context_for(host)
    if host.get_fact(DockerEngine):
        host.noop("a Docker engine is running: left alone")
        return
    install = ctx.stack.docker.install
    if install == "existing":
        raise PyinfraError(
            f"{host.name}: docker.install is 'existing' but no Docker engine answers (docker version); "
            "start it, or set docker.install to 'docker-ce' or 'debian'"
        )
    if install == "debian":
        apt.packages(name="Install docker.io", packages=["docker.io"], update=True, cache_time=3600)
    else:
        distro = host.get_fact(LinuxDistribution)
        distro_id = (distro.get("name") or "debian").lower()
        distro_id = "ubuntu" if "ubuntu" in distro_id else "debian"
        codename = distro.get("release_meta", {}).get("VERSION_CODENAME") or distro.get("release_meta", {}).get(
            "UBUNTU_CODENAME"
        )
        apt.packages(name="Install apt prerequisites", packages=["ca-certificates", "curl"], update=True)
        files.directory(name="apt keyrings folder", path="/etc/apt/keyrings", mode="0755")
        files.download(
            name="Docker's apt signing key",
            src=DOCKER_KEY_URL.format(id=distro_id),
            dest=DOCKER_KEYRING,
            mode="0644",
        )
        apt.repo(
            name="Docker's apt repository",
            src=(
                f"deb [arch=amd64 signed-by={DOCKER_KEYRING}] "
                f"https://download.docker.com/linux/{distro_id} {codename} stable"
            ),
            filename="docker",
        )
        apt.packages(
            name="Install Docker CE",
            packages=["docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin"],
            update=True,
        )
    server.service(name="Docker enabled at boot and running", service="docker", running=True, enabled=True)
