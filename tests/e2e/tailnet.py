"""A tailnet on the test machine: a real headscale (control server), real tailscaled nodes, and the
stand-in ``tailscale`` package in a local apt repository, all built by tests/harness/tailscale/ from
the Go module proxy (bin/test runs build.sh and package.sh; where that fails, its reason is in
``$MCPGATE_TAILSCALE_UNAVAILABLE_FILE`` and the tests skip with it).

headscale has no Funnel and no HTTPS certificates (headscale#3435, #1921): everything on the node's
side runs for real, Funnel's public relay nowhere offline. headscale's embedded STUN server answers
the nodes' netchecks; its DERP relay is unreachable (plain HTTP here, nodes speak DERP over TLS), so
nodes talk directly over the docker bridge.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TAILSCALE_VERSION = "1.102.5"
HEADSCALE_VERSION = "0.26.1"
CACHE = Path(os.environ.get("MCPGATE_CACHE", "/var/cache/mcpgate"))
BUILD = CACHE / "tailscale-build"
BIN = BUILD / "bin"
TAILSCALED = BIN / f"tailscaled-v{TAILSCALE_VERSION}"
TAILSCALE = BIN / f"tailscale-v{TAILSCALE_VERSION}"
HEADSCALE = BIN / f"headscale-v{HEADSCALE_VERSION}"
APT_REPO = BUILD / "apt"
# Tailscale's own source at that version (kept by build.sh): the stand-in package is checked against it.
TAILSCALE_SRC = BUILD / f"tailscale-src-v{TAILSCALE_VERSION}"
HEADSCALE_USER = "mcpgate"


def tailscale_unavailable() -> str | None:
    """Why the tailnet cannot be made here, or None."""
    if os.environ.get("MCPGATE_E2E") != "1":
        return "the test harness is not up (run the suite with bin/test as root)"
    reason_file = os.environ.get("MCPGATE_TAILSCALE_UNAVAILABLE_FILE")
    reason = Path(reason_file).read_text().strip() if reason_file and Path(reason_file).is_file() else ""
    for path in (TAILSCALED, TAILSCALE, HEADSCALE, APT_REPO / "Packages", TAILSCALE_SRC):
        if not path.exists():
            return f"{path} is missing (tests/harness/tailscale/build.sh and package.sh: {reason or 'not run'})"
    return None


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def free_udp_port(address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Any, timeout: float = 60, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as err:
            last = err
        time.sleep(every)
    raise AssertionError(f"{what}: not after {timeout:.0f} s (last: {last!r})")


@dataclass
class Headscale:
    """headscale serving ``http://<address>:<port>`` with MagicDNS names ``<node>.<base_domain>``."""

    workdir: Path
    address: str
    base_domain: str
    port: int = 0
    stun_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def config(self) -> Path:
        return self.workdir / "config.yaml"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.address)
        self.stun_port = free_udp_port(self.address)
        d = self.workdir
        # Only what differs from headscale's defaults (config-example.yaml at v0.26.1). The DERP map
        # is headscale's own embedded region alone (the default one is fetched from
        # controlplane.tailscale.com, unreachable here), for its STUN server: a node whose netcheck
        # can send no STUN packet marks IPv4 unusable and rebinds its sockets on every endpoint
        # update, every few seconds, dropping its direct paths each time (magicsock.go,
        # "last netcheck reported send error") -- the tailnet then barely carries a connection.
        # The region's DERP relay itself is not reachable (headscale serves plain HTTP here, nodes
        # speak DERP over TLS): nodes talk directly over the docker bridge.
        self.config.write_text(
            f"server_url: {self.url}\n"
            f"listen_addr: {self.address}:{self.port}\n"
            f"metrics_listen_addr: 127.0.0.1:{free_port()}\n"
            f"grpc_listen_addr: 127.0.0.1:{free_port()}\n"
            f"noise:\n  private_key_path: {d}/noise_private.key\n"
            "prefixes:\n  v4: 100.64.0.0/10\n  v6: fd7a:115c:a1e0::/48\n  allocation: sequential\n"
            f"derp:\n  server:\n    enabled: true\n    region_id: 999\n    region_code: test\n"
            f"    region_name: headscale (test)\n    stun_listen_addr: {self.address}:{self.stun_port}\n"
            f"    private_key_path: {d}/derp_server_private.key\n"
            f"    automatically_add_embedded_derp_region: true\n    ipv4: {self.address}\n"
            "  urls: []\n  paths: []\n  auto_update_enabled: false\n"
            "disable_check_updates: true\n"
            f"database:\n  type: sqlite\n  sqlite:\n    path: {d}/db.sqlite\n"
            "log:\n  level: info\n"
            'policy:\n  mode: file\n  path: ""\n'
            # MagicDNS names (Self.DNSName) without headscale rewriting the nodes' resolv.conf.
            f"dns:\n  magic_dns: true\n  base_domain: {self.base_domain}\n  override_local_dns: false\n"
            "  nameservers:\n    global: []\n"
            f"unix_socket: {d}/headscale.sock\n"
            'unix_socket_permission: "0700"\n'
        )
        log = (d / "headscale.log").open("ab")
        self.proc = subprocess.Popen(
            [str(HEADSCALE), "-c", str(self.config), "serve"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_for("headscale answers /health", self._healthy, timeout=60)

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"headscale exited: {(self.workdir / 'headscale.log').read_text()[-3000:]}")
        with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
            return r.status == 200

    def cli(self, *args: str) -> Any:
        proc = subprocess.run(
            [str(HEADSCALE), "-c", str(self.config), *args, "-o", "json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise AssertionError(f"headscale {' '.join(args)}: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def preauth_key(self) -> str:
        """A reusable pre-auth key of the test's user (made on first use), valid for two hours."""
        users = self.cli("users", "list") or []
        user = next((u for u in users if u.get("name") == HEADSCALE_USER), None)
        if user is None:
            user = self.cli("users", "create", HEADSCALE_USER)
        key = self.cli("preauthkeys", "create", "--user", str(user["id"]), "--reusable", "--expiration", "2h")
        return key["key"]

    def nodes(self) -> dict[str, dict[str, Any]]:
        """Every node, by its given name (the MagicDNS label)."""
        return {n["given_name"]: n for n in self.cli("nodes", "list") or []}

    def log_tail(self, chars: int = 6000) -> str:
        path = self.workdir / "headscale.log"
        return path.read_text(errors="replace")[-chars:] if path.is_file() else "(no log)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@dataclass
class Node:
    """A tailscaled on the test machine in userspace mode (no TUN, no routes, nothing of the
    machine's changed), with its own socket and state folder."""

    workdir: Path
    name: str
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return self.workdir / "tailscaled.sock"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # TS_LOGS_DIR: or tailscaled writes under /var/lib/tailscale; no log upload to Tailscale.
        self.env = {**os.environ, "TS_LOGS_DIR": str(self.workdir / "logs"), "TS_NO_LOGS_NO_SUPPORT": "true"}
        log = (self.workdir / "tailscaled.log").open("ab")
        self.proc = subprocess.Popen(
            [str(TAILSCALED), "--tun=userspace-networking", f"--statedir={self.workdir / 'state'}",
             f"--socket={self.socket}", "--port=0"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
        )  # fmt: skip
        wait_for(f"{self.name}: tailscaled answers", lambda: self.cli("status", "--json", check=False).stdout)

    def cli(self, *args: str, check: bool = True, timeout: int = 60, stdin: str | None = None) -> Any:
        proc = subprocess.run(
            [str(TAILSCALE), f"--socket={self.socket}", *args],
            capture_output=True, text=True, timeout=timeout, env=self.env, input=stdin,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{self.name}: tailscale {' '.join(args)}: {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
            )
        return proc

    def status(self) -> dict[str, Any]:
        return json.loads(self.cli("status", "--json").stdout)

    def serve_status(self) -> dict[str, Any] | None:
        return json.loads(self.cli("serve", "status", "--json").stdout)

    def up(self, login_server: str, key: str) -> None:
        key_file = self.workdir / "authkey"
        key_file.touch(mode=0o600)
        key_file.write_text(key)
        try:
            self.cli(
                "up", f"--login-server={login_server}", f"--auth-key=file:{key_file}", f"--hostname={self.name}",
                timeout=120,
            )  # fmt: skip
        finally:
            key_file.unlink()

    def connect(self, ip: str, port: int, timeout: int = 15, hold: int = 3) -> tuple[int, str]:
        """``tailscale nc`` to ip:port over the tailnet, sending nothing; (return code, what came back
        in ``hold`` seconds). nc closes the connection when its stdin ends: it is held open that long."""
        nc = f"{shlex.quote(str(TAILSCALE))} --socket={shlex.quote(str(self.socket))} nc {ip} {port}"
        try:
            proc = subprocess.run(
                ["sh", "-c", f"sleep {hold} | exec {nc}"], capture_output=True, text=True, timeout=timeout,
                env=self.env, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired as err:
            out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            return -1, out + f"[no answer in {timeout} s]"
        return proc.returncode, (proc.stdout + proc.stderr)

    def log_tail(self, chars: int = 6000) -> str:
        path = self.workdir / "tailscaled.log"
        return path.read_text(errors="replace")[-chars:] if path.is_file() else "(no log)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.cli("logout", check=False, timeout=30)
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@contextmanager
def apt_repository(address: str) -> Iterator[str]:
    """The stand-in's flat apt repository over HTTP at ``address`` (e.g. the docker bridge's, which a
    day-one host reaches); yields its URL."""
    handler = functools.partial(_QuietHandler, directory=str(APT_REPO))
    server = http.server.ThreadingHTTPServer((address, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
