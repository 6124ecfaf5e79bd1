"""Run a few of mcpgate's pyinfra operations (not the whole deploy) over the harness's real SSH target.

The target is this machine (sshd on 127.0.0.1, see tests/harness): what the operations do there can
be watched and read directly by the test, which runs as root.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import PROJECT_ROOT, SSHD_DIR, RunResult, parse_results


def deploy_user() -> str:
    """The harness's non-root SSH user with passwordless sudo."""
    return os.environ.get("MCPGATE_SSHD_DEPLOY_USER", "mcpgate-deploy")


def ssh_target_missing() -> str | None:
    """Why the SSH target cannot be used, or None."""
    if os.environ.get("MCPGATE_E2E") != "1":
        return "the test harness is not up (run the suite with bin/test as root)"
    if os.geteuid() != 0:
        return "the test watches and cleans the target's folders: run it as root"
    config = SSHD_DIR / "ssh_config"
    if not config.is_file():
        return f"no SSH target ({config} is missing; tests/harness/sshd-up.sh)"
    probe = subprocess.run(["ssh", "-F", str(config), "mcpgate-test", "true"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        return f"the SSH target does not answer: {probe.stderr.decode(errors='replace').strip()}"
    return None


@contextmanager
def target_folder(purpose: str) -> Iterator[Path]:
    """A folder of the test's own under /opt on the SSH target (this machine), removed afterwards;
    skips the test when the target cannot be used."""
    reason = ssh_target_missing()
    if reason:
        pytest.skip(f"SSH target unavailable: {reason}")
    root = Path(f"/opt/mcpgate-{purpose}-{secrets.token_hex(4)}")
    root.mkdir(mode=0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Target:
    """How to reach an SSH target: its port and the known_hosts file naming its host key."""

    port: int
    known_hosts: Path


HARNESS = Target(int(os.environ.get("MCPGATE_SSHD_PORT", "2222")), SSHD_DIR / "known_hosts")


@contextmanager
def sshd_with_umask(folder: Path, umask: str) -> Iterator[Target]:
    """The harness's sshd (same binary, config, host key and users), run by the test on a free
    loopback port under ``umask`` for as long as the context lasts.

    The harness's sshd runs under umask 077, so everything it creates is private whatever pyinfra
    does; a stock sshd started by systemd runs under 022, where pyinfra's uploads are 0644. This
    one behaves like most real hosts. ``folder`` must be readable by the SSH users (sshd reads
    authorized_keys as the user). (A ProxyCommand running ``sshd -i`` would need no port, but
    pyinfra's gevent and paramiko's ProxyCommand hang together.)
    """
    folder.mkdir(mode=0o755, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    skip = ("ListenAddress", "PidFile", "AuthorizedKeysFile")
    lines = [line for line in (SSHD_DIR / "sshd_config").read_text().splitlines() if not line.startswith(skip)]
    keys = folder / "authorized_keys"
    keys.write_text((SSHD_DIR / "authorized_keys").read_text())
    keys.chmod(0o644)
    config = folder / "sshd_config"
    config.write_text(
        "\n".join([*lines, f"ListenAddress 127.0.0.1:{port}", "PidFile none", f"AuthorizedKeysFile {keys}", ""])
    )
    known_hosts = folder / "known_hosts"
    key_line = (SSHD_DIR / "known_hosts").read_text().splitlines()[0].split(" ", 1)[1]
    known_hosts.write_text(f"[127.0.0.1]:{port} {key_line}\n")
    log = (folder / "sshd.log").open("wb")
    proc = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
        stdout=log, stderr=log, preexec_fn=lambda: os.umask(int(umask, 8)),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (folder / "sshd.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the test's sshd did not start listening"
                time.sleep(0.05)
        yield Target(port, known_hosts)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def write_inventory(workdir: Path, user: str, target: Target = HARNESS) -> Path:
    """An inventory of the SSH target, logged in as ``user`` (with sudo unless root)."""
    data: dict[str, object] = {
        "ssh_port": target.port,
        "ssh_user": user,
        "ssh_key": str(SSHD_DIR / "id_ed25519"),
        "ssh_known_hosts_file": str(target.known_hosts),
        "ssh_strict_host_key_checking": "yes",
    }
    if user != "root":
        data["_sudo"] = True
    path = workdir / f"inventory_{user.replace('-', '_')}.py"
    path.write_text(f"hosts = [('127.0.0.1', {data!r})]\n")
    return path


def run_operations(
    workdir: Path,
    code: str,
    user: str = "root",
    env: dict[str, str] | None = None,
    verbose: int = 0,
    target: Target = HARNESS,
) -> RunResult:
    """``code`` is a pyinfra deploy file (it may import mcpgate and tasks); run it with the CLI."""
    deploy_file = workdir / "operations.py"
    deploy_file.write_text(code)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pyinfra", "-y", *(["-" + "v" * verbose] if verbose else []),
         str(write_inventory(workdir, user, target)), str(deploy_file)],
        capture_output=True, text=True, cwd=PROJECT_ROOT, env={**os.environ, **(env or {})}, timeout=300,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    changed, errors = parse_results(output)
    return RunResult(proc.returncode, output, time.monotonic() - start, changed, errors)
