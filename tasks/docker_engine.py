"""The Docker engine: from Docker's apt repository or Debian's docker.io; a working engine is left alone."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.operations import apt, files, server

from mcpgate.apt import DOCKER_KEY_URL, DOCKER_KEYRING, docker_source
from mcpgate.hostops import snapshot
from mcpgate.hostops.context import DeployContext, release_for
from mcpgate.hostops.docker_reads import engine_version


@deploy("Docker engine")
def docker_engine(ctx: DeployContext) -> None:
    if engine_version():
        host.noop("a Docker engine is running: left alone")
        return
    # What is read from the host now no longer holds once the engine is installed.
    snapshot.expire_on_execute()
    install = ctx.stack.docker.install
    if install == "existing":
        raise PyinfraError(
            f"{host.name}: docker.install is 'existing' but no Docker engine answers (docker version); "
            "start it, or set docker.install to 'docker-ce' or 'debian'"
        )
    if install == "debian":
        apt.packages(name="Install docker.io", packages=["docker.io"], update=True, cache_time=3600)
    else:
        release = release_for(host)
        apt.packages(name="Install apt prerequisites", packages=["ca-certificates", "curl"], update=True)
        files.directory(name="apt keyrings folder", path="/etc/apt/keyrings", mode="0755")
        files.download(
            name="Docker's apt signing key",
            src=DOCKER_KEY_URL.format(distro=release.distro),
            dest=DOCKER_KEYRING,
            mode="0644",
        )
        apt.repo(name="Docker's apt repository", src=docker_source(release), filename="docker")
        apt.packages(
            name="Install Docker CE",
            packages=["docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin"],
            update=True,
        )
    server.service(name="Docker enabled at boot and running", service="docker", running=True, enabled=True)
