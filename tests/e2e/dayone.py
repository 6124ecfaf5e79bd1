"""A user's host on day one, inside the harness's engine: Debian 12 with systemd as PID 1, openssh-server,
sudo and ca-certificates, reached over real SSH as ``admin`` with passwordless sudo, as inventory/home.py
expects. No Docker and no Python: the deploy installs the engine itself (``docker.install: debian``).

The image is ``mcpgate-local/dayone-host:bookworm`` (tests/harness/images/dayone-host, built from
Debian's packages by build-images.sh). Each host made here gets its own SSH host key, its own client
key, and a fresh volume for /var/lib/docker; ``destroy`` takes all of it away. ``docker restart`` of
the host container is a reboot: systemd stops docker and its containers, boots, starts docker.

Images. The deploy pulls every image it does not find; no registry answers here. So before the host
first boots, the images it would pull are loaded, under the names the inventory pins, into the volume
that becomes its /var/lib/docker (by Debian's own docker.io in a throwaway container,
``mcpgate-local/engine:20.10``). The engine the deploy installs finds them there as if pulled.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.harness import PROJECT_ROOT, docker, image_exists

HOST_IMAGE = "mcpgate-local/dayone-host:bookworm"
ENGINE_IMAGE = "mcpgate-local/engine:20.10"
ADMIN_UID = 1000  # the image's admin user (tests/harness/images/dayone-host/Dockerfile)
# On every container and volume made here, so bin/test can take away what a killed run left.
TEST_LABEL = "io.mcpgate.test=dayone-host"

# What systemd as PID 1 and a nested engine need on these machines (../shared/design/ARCHITECTURE.md,
# "Test machines"): --privileged fails here, the bounding set lacks CAP_SYS_RESOURCE.
SYSTEM_CONTAINER_OPTIONS = [
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined", "--device-cgroup-rule", "a *:* rwm",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
]  # fmt: skip


def dayone_unavailable() -> str | None:
    """Why a day-one host cannot be made here, or None."""
    if os.environ.get("MCPGATE_E2E") != "1":
        return "the test harness is not up (run the suite with bin/test as root)"
    if docker("info", check=False).returncode != 0:
        return "no Docker engine answers"
    for ref in (HOST_IMAGE, ENGINE_IMAGE):
        if not image_exists(ref):
            return f"local image {ref} is missing (tests/harness/build-images.sh)"
    if not Path("/sys/fs/cgroup").is_dir():
        return "no /sys/fs/cgroup to give systemd"
    return None


def seed_images(volume: str, images: dict[str, str]) -> float:
    """Load local images into ``volume`` (a future /var/lib/docker) under other names.

    ``images`` maps a local image to the name it gets there (the inventory's); the local names are
    not kept. Returns the seconds it took."""
    start = time.monotonic()
    if not images:  # a host that pulls nothing (tests/e2e/test_egress_boot.py)
        return 0.0
    tags = " ".join(f"{shlex.quote(src)} {shlex.quote(dst)}" for src, dst in images.items())
    script = (
        "set -eu\n"
        "dockerd --iptables=false --log-level=error >/tmp/dockerd.log 2>&1 &\n"
        "for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done\n"
        "docker load -q\n"
        f"set -- {tags}\n"
        'while [ $# -gt 0 ]; do docker tag "$1" "$2"; docker rmi -f "$1" >/dev/null; shift 2; done\n'
        "docker image ls --format '{{.Repository}}:{{.Tag}}'\n"
        'kill "$(cat /var/run/docker.pid)"; wait\n'
        # The engine's network store is the seeding engine's, not the host's: let the host make its own.
        "rm -rf /var/lib/docker/network\n"
    )
    save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
    try:
        load = subprocess.run(
            ["docker", "run", "--rm", "-i", *SYSTEM_CONTAINER_OPTIONS, "-v", f"{volume}:/var/lib/docker",
             "--entrypoint", "sh", ENGINE_IMAGE, "-c", script],
            stdin=save.stdout, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        assert save.stdout is not None
        save.stdout.close()
        save.wait(timeout=60)
    if load.returncode != 0 or save.returncode != 0:
        raise RuntimeError(f"seeding {volume} failed: {load.stdout[-2000:]} {load.stderr[-2000:]}")
    loaded = set(load.stdout.split())
    missing = set(images.values()) - loaded
    if missing:
        raise RuntimeError(f"seeding {volume}: {sorted(missing)} not loaded ({sorted(loaded)})")
    return time.monotonic() - start


def _tar(entries: dict[str, tuple[bytes, int, int]]) -> bytes:
    """A tar of files: path -> (content, mode, uid); parent folders are expected to exist."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, (content, mode, uid) in entries.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.uid, info.gid = len(content), mode, uid, uid
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@dataclass
class DayOneHost:
    """One day-one host: its container, its /var/lib/docker volume, and the SSH files to reach it."""

    name: str  # the container's
    workdir: Path
    alias: str = "gateway.lan"  # the host's name in inventory/home.py and in the SSH config
    volume: str = ""
    address: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    # More `docker create` options: ["--device", "/dev/net/tun"] for a host that runs tailscaled, or
    # ["-v", "<volume>:/mnt/backup"] for a test's "USB disk" (a volume that outlives the host).
    options: list[str] = field(default_factory=list)
    # Files that hold the host's address, each with what rewrites it for a new one (see ``reboot``).
    address_files: dict[Path, Callable[[], object]] = field(default_factory=dict)

    @property
    def key(self) -> Path:
        return self.workdir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.workdir / "ssh_config"

    def ssh(self, command: str, *, timeout: int = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command on the host as admin (prefix ``sudo`` for root), over SSH."""
        proc = subprocess.run(
            ["ssh", "-F", str(self.ssh_config), self.alias, command],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(f"on {self.name}: {command!r} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return proc

    def create(self, images: dict[str, str]) -> None:
        """A new bare host: fresh volume seeded with ``images``, fresh host and client keys, booted."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.volume = f"{self.name}-var-lib-docker"
        docker("volume", "create", "--label", TEST_LABEL, self.volume)
        self.seconds["seed images"] = seed_images(self.volume, images)
        start = time.monotonic()
        for p in self.workdir.glob("*ed25519*"):
            p.unlink()
        host_pub = _keygen(self.workdir / "ssh_host_ed25519_key", f"{self.name} host")
        client_pub = _keygen(self.key, "mcpgate day-one test")
        docker(
            "create", "--name", self.name, "--label", TEST_LABEL, "--hostname", "gateway", *SYSTEM_CONTAINER_OPTIONS,
            "--tmpfs", "/run", "--tmpfs", "/run/lock", "-v", f"{self.volume}:/var/lib/docker", *self.options,
            HOST_IMAGE,
        )  # fmt: skip
        host_key = (self.workdir / "ssh_host_ed25519_key").read_bytes()
        files = _tar(
            {
                "etc/ssh/ssh_host_ed25519_key": (host_key, 0o600, 0),
                "etc/ssh/ssh_host_ed25519_key.pub": (host_pub.encode() + b"\n", 0o644, 0),
                "home/admin/.ssh/authorized_keys": (client_pub.encode() + b"\n", 0o600, ADMIN_UID),
            }
        )
        subprocess.run(["docker", "cp", "-", f"{self.name}:/"], input=files, check=True, capture_output=True)
        docker("start", self.name)
        self.address = self._current_address()
        self._write_ssh_files()
        self.wait_booted()
        self.seconds["boot"] = time.monotonic() - start

    def _current_address(self) -> str:
        return docker(
            "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", self.name
        ).stdout.strip()

    def _write_ssh_files(self) -> None:
        """known_hosts and ssh_config for the host's current address."""
        host_pub = (self.workdir / "ssh_host_ed25519_key.pub").read_text().strip()
        self.known_hosts.write_text(f"{self.address} {host_pub}\n")
        self.ssh_config.write_text(
            f"Host {self.alias}\n"
            f"  HostName {self.address}\n  User admin\n  Port 22\n"
            f"  IdentityFile {self.key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.known_hosts}\n  StrictHostKeyChecking yes\n"
            "  BatchMode yes\n  ConnectTimeout 5\n"
            # In /tmp under the host's own name, not the workdir: a socket's path holds at most 107
            # bytes, and pytest-xdist's workers nest the workdir a level deeper.
            f"  ControlMaster auto\n  ControlPath /tmp/{self.name}.cm-%C\n  ControlPersist 60\n"
        )

    def wait_booted(self, timeout: float = 120) -> str:
        """Wait until SSH answers and systemd has finished booting; systemd's verdict."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            proc = self.ssh("systemctl is-system-running --wait", timeout=60, check=False)
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                if state == "degraded":
                    failed = self.ssh("systemctl --failed --no-legend --plain", check=False).stdout
                    raise AssertionError(f"{self.name} booted degraded: {failed.strip()}")
                return state
            time.sleep(1)
        raise AssertionError(f"{self.name} did not boot in {timeout:.0f} s (systemd: {state or 'no answer'})")

    def reboot(self) -> float:
        """``docker restart``: systemd shuts down (docker stops its containers), then boots.

        The engine hands out the address again at start: while the host was down another container
        may have taken its old one. The SSH files and every file registered in ``address_files`` (an
        inventory's ssh_hostname) are rewritten when it changed."""
        self.close_ssh()
        start = time.monotonic()
        docker("restart", "-t", "60", self.name)
        address = self._current_address()
        if address != self.address:
            self.address = address
            self._write_ssh_files()
            for rewrite in self.address_files.values():
                rewrite()
        self.wait_booted()
        return time.monotonic() - start

    def close_ssh(self) -> None:
        subprocess.run(
            ["ssh", "-F", str(self.ssh_config), "-O", "exit", self.alias], capture_output=True, check=False, timeout=10
        )

    def destroy(self) -> None:
        """Throw the host away: container, volume and its nested containers' data with it."""
        if self.ssh_config.is_file():
            self.close_ssh()
        docker("rm", "-fv", self.name, check=False)
        if self.volume:
            docker("volume", "rm", "-f", self.volume, check=False)

    @contextmanager
    def forward(self, remote_port: int) -> Iterator[int]:
        """An SSH tunnel from a local port to the host's 127.0.0.1:``remote_port`` (where the ingress
        listens, as tailscaled reaches it); yields the local port."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            local = s.getsockname()[1]
        proc = subprocess.Popen(
            ["ssh", "-F", str(self.ssh_config), "-o", "ControlPath=none", "-o", "ExitOnForwardFailure=yes",
             "-N", "-L", f"127.0.0.1:{local}:127.0.0.1:{remote_port}", self.alias],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", local), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(f"no tunnel to {self.name}:{remote_port}") from None
                    time.sleep(0.2)
            yield local
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    def wait_containers_ready(self, timeout: float = 300) -> float:
        """Wait until every container of the host's engine runs, and is healthy where it has a
        healthcheck; the seconds it took."""
        start = time.monotonic()
        states: dict[str, tuple[str, str | None]] = {}
        while time.monotonic() - start < timeout:
            states = {
                name: (c["State"]["Status"], (c["State"].get("Health") or {}).get("Status"))
                for name, c in self.containers().items()
            }
            if states and all(s == "running" and h in (None, "healthy") for s, h in states.values()):
                return time.monotonic() - start
            time.sleep(2)
        raise AssertionError(f"containers on {self.name} not ready after {timeout:.0f} s: {states}")

    def containers(self) -> dict[str, dict]:
        """Every container of the host's engine, by name (docker inspect)."""
        ids = self.ssh("sudo docker ps -aq").stdout.split()
        if not ids:
            return {}
        out = self.ssh(f"sudo docker inspect {' '.join(ids)}").stdout
        return {c["Name"].lstrip("/"): c for c in json.loads(out)}


def new_host_name() -> str:
    """A name of the test's own, never one a deploy or another run uses."""
    return f"mcpgate-test-dayone-{secrets.token_hex(3)}"


def dockerfile_base_image(build: str) -> str:
    """The default BASE_IMAGE of a backend folder under files/ (what the host pulls for its build)."""
    text = (PROJECT_ROOT / "files" / build / "Dockerfile").read_text()
    m = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    if not m:
        raise AssertionError(f"files/{build}/Dockerfile has no ARG BASE_IMAGE default")
    return m.group(1)


@dataclass
class Deploy:
    returncode: int
    output: str
    seconds: float


def run_deploy(
    inventory: Path, env: dict[str, str], extra: list[str], *, kill_when: str | None = None, kill_after: float = 0
) -> Deploy:
    """``bin/deploy <inventory> [extra...]`` as a user runs it. With ``kill_when``, the whole process
    group is killed (SIGKILL) ``kill_after`` seconds after an output line containing it."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(PROJECT_ROOT / "bin" / "deploy"), str(inventory), *extra],
        cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    timer: threading.Timer | None = None

    def kill() -> None:
        lines.append(f"[test] killed the deploy {kill_after:.0f} s after a line with {kill_when!r}\n")
        os.killpg(proc.pid, signal.SIGKILL)

    try:
        for line in proc.stdout:
            lines.append(line)
            if kill_when and timer is None and kill_when in line:
                timer = threading.Timer(kill_after, kill)
                timer.start()
        proc.wait(timeout=1800)
    finally:
        if timer is not None:
            timer.cancel()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return Deploy(proc.returncode, "".join(lines), time.monotonic() - start)


# inventory/home.py's host, and what a test host changes in it (nothing else differs):
#   - the SSH target: the host container's address (ssh_hostname), port 22, the test's own key and
#     known_hosts; the host keeps its inventory name, so the secrets store is the same across rebuilds;
#   - Tailscale off: no tailnet here (the ingress is reached over an SSH tunnel, as tailscaled would);
#   - Docker from Debian (docker.install: debian): Docker's own apt repository cannot be reached here
#     (its path is covered by a --dry test);
#   - the Home Assistant backend off: there is no Home Assistant here, and no token for it.
HOME_INVENTORY_CHANGES = """
import copy as _copy
import runpy as _runpy

((_name, _data),) = _runpy.run_path({home!r})["home"]
_data = _copy.deepcopy(_data)
_data.update(
    ssh_hostname={address!r},
    ssh_port=22,
    ssh_key={key!r},
    ssh_known_hosts_file={known_hosts!r},
    ssh_strict_host_key_checking="yes",
)
_data["mcpgate"]["tailscale"] = {{"enabled": False}}
_data["mcpgate"]["docker"] = {{"install": "debian"}}
for _backend in _data["mcpgate"]["backends"]:
    if _backend["name"] == "home-assistant":
        _backend["enabled"] = False
home = [(_name, _data)]
"""


def write_home_inventory(path: Path, host: DayOneHost) -> Path:
    """inventory/home.py as deployed onto ``host`` (see HOME_INVENTORY_CHANGES); written again with
    the host's new address when a reboot changes it."""
    host.address_files[path] = lambda: write_home_inventory(path, host)
    path.write_text(
        '"""inventory/home.py for a day-one test host (tests/e2e/dayone.py)."""\n'
        + HOME_INVENTORY_CHANGES.format(
            home=str(PROJECT_ROOT / "inventory" / "home.py"),
            address=host.address,
            key=str(host.key),
            known_hosts=str(host.known_hosts),
        )
    )
    return path
