"""A person's browser against the deployed stack: headless Debian Chromium driven over WebDriver.

Tailscale Funnel is stood in for by a TLS front on loopback (Debian's caddy, ``tls internal``) that
forwards to the real ingress, as tailscaled does: the browser resolves the public name to it
(``--host-resolver-rules``) and trusts the front's own CA (``--ignore-certificate-errors-spki-list``
with the key of the CA that signed the front's certificate), so every URL it loads is the one a person
sees. The front sets X-Forwarded-For to an address of the test's choosing (tailscaled names the
Funnel client there; the ingress keeps it from tailscaled's address only), so Authelia counts
failures per test and one test's ban does not lock out the next. Claude's callback host
(claude.ai) is mapped to the front too, which answers it with a blank page: the code is read from
the URL and is never sent anywhere else.

Chromium aborts every request in flight (net::ERR_NETWORK_CHANGED) when an address or link of its
network namespace changes, which on a shared engine happens whenever another stack creates a
network. So chromedriver and Chromium run in a network namespace of their own, joined to this one by a
veth pair: the front listens on this side's address, WebDriver is spoken to the other side's. That
namespace has IPv6 off and is settled before Chromium starts: otherwise the veth's link-local address
arrives about 1.4 s after the link comes up (after duplicate address detection), in the middle of the
first page load, and aborts it the same way (seen in CI: the sign-in page's scripts all failed at once).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("MCPGATE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MCPGATE_CHROMEDRIVER", "/usr/bin/chromedriver")
CADDY = os.environ.get("MCPGATE_FRONT_CADDY", "/usr/bin/caddy")
CALLBACK_HOST = "claude.ai"
CALLBACK_PAGE = (
    '<!doctype html><html><head><link rel="icon" href="data:,"><title>callback</title></head>'
    "<body>callback</body></html>"
)


def browser_unavailable() -> str | None:
    """Why no browser test can run here, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver"), (CADDY, "caddy")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} is missing (Debian package {package}; bin/test installs it)"
    if os.geteuid() != 0 or not shutil.which("ip"):
        return "the browser runs in a network namespace of its own, which needs root and iproute2's ip"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is missing (pip install -e '.[test]')"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class BrowserNet:
    """A network namespace with a veth pair to this one: ``outer`` here, ``inner`` in the namespace."""

    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    outer: str = ""
    inner: str = ""

    @property
    def ns(self) -> str:
        return f"mcpgate-browser-{self.tag}"

    def up(self) -> None:
        taken = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True, check=True).stdout
        while True:
            # 10.200.0.0/16: outside the test stacks' 10.64.0.0/10 and Docker's default pools.
            base = f"10.200.{secrets.randbelow(256)}.{4 * secrets.randbelow(64)}"
            prefix, last = base.rsplit(".", 1)
            self.outer, self.inner = f"{prefix}.{int(last) + 1}", f"{prefix}.{int(last) + 2}"
            if f" {self.outer}/" not in taken and f" {self.inner}/" not in taken:
                break
        here, there = f"mgb{self.tag}h", f"mgb{self.tag}n"
        _ip("netns", "add", self.ns)
        # Before any link is moved in: a link takes the namespace's defaults when it arrives.
        subprocess.run(
            ["ip", "netns", "exec", self.ns, "sysctl", "-qw",
             "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
            check=True, capture_output=True,
        )  # fmt: skip
        _ip("link", "add", here, "type", "veth", "peer", "name", there)
        _ip("link", "set", there, "netns", self.ns)
        _ip("addr", "add", f"{self.outer}/30", "dev", here)
        _ip("link", "set", here, "up")
        _ip("-n", self.ns, "addr", "add", f"{self.inner}/30", "dev", there)
        _ip("-n", self.ns, "link", "set", there, "up")
        _ip("-n", self.ns, "link", "set", "lo", "up")
        self._settle(there)

    def _settle(self, there: str, seconds: float = 10) -> None:
        """Until the namespace's links and addresses are final: the inner link has its carrier and
        no address is tentative or IPv6, and nothing changed for half a second."""
        deadline = time.monotonic() + seconds
        last, since = "", time.monotonic()
        while time.monotonic() < deadline:
            now = subprocess.run(["ip", "-n", self.ns, "-o", "addr"], capture_output=True, text=True).stdout
            now += subprocess.run(["ip", "-n", self.ns, "-o", "link"], capture_output=True, text=True).stdout
            if now != last:
                last, since = now, time.monotonic()
            ready = "state UP" in now and "tentative" not in now and " inet6 " not in now
            if ready and time.monotonic() - since >= 0.5:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the browser's network namespace {self.ns} did not settle in {seconds:.0f} s: {last}")

    def down(self) -> None:
        subprocess.run(["ip", "link", "del", f"mgb{self.tag}h"], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Front:
    """Caddy on 127.0.0.1:<port>: TLS for the public name (forwarded to the ingress) and for the
    callback host (a blank page), with its own CA in its own folder."""

    hostname: str
    ingress_port: int
    client_address: str
    workdir: Path
    address: str = "127.0.0.1"  # where it listens (the browser namespace's way out)
    port: int = field(default_factory=_free_port)
    # Plain HTTP, for loopback callbacks (http://localhost:<port>/...) the browser is sent to.
    http_port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None

    def caddyfile(self) -> str:
        return f"""{{
	admin off
	skip_install_trust
	local_certs
	auto_https disable_redirects
	storage file_system {{
		root {self.workdir / "data"}
	}}
}}
https://{self.hostname}:{self.port} {{
	bind {self.address}
	tls internal
	reverse_proxy 127.0.0.1:{self.ingress_port} {{
		header_up X-Forwarded-For {self.client_address}
	}}
}}
https://{CALLBACK_HOST}:{self.port} {{
	bind {self.address}
	tls internal
	header Content-Type "text/html; charset=utf-8"
	respond `{CALLBACK_PAGE}` 200
}}
http://localhost:{self.http_port} {{
	bind {self.address}
	header Content-Type "text/html; charset=utf-8"
	respond `{CALLBACK_PAGE}` 200
}}
"""

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "Caddyfile"
        conf.write_text(self.caddyfile())
        env = {**os.environ, "XDG_CONFIG_HOME": str(self.workdir / "config"), "XDG_DATA_HOME": str(self.workdir)}
        log = (self.workdir / "caddy.log").open("wb")
        self.proc = subprocess.Popen(
            [CADDY, "run", "--config", str(conf), "--adapter", "caddyfile"], stdout=log, stderr=log, env=env
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the TLS front (caddy) exited: {(self.workdir / 'caddy.log').read_text()[-2000:]}")
            if self.intermediate.is_file():
                try:
                    with socket.create_connection((self.address, self.port), timeout=1):
                        return
                except OSError:
                    pass
            time.sleep(0.2)
        raise RuntimeError(f"the TLS front did not come up: {(self.workdir / 'caddy.log').read_text()[-2000:]}")

    @property
    def intermediate(self) -> Path:
        return self.workdir / "data" / "pki" / "authorities" / "local" / "intermediate.crt"

    def ca_spki(self) -> str:
        """base64 SHA-256 of the public key of the CA that signs the front's certificates."""
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        cert = x509.load_pem_x509_certificate(self.intermediate.read_bytes())
        der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(hashlib.sha256(der).digest()).decode()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Browser:
    """One headless Chromium with a new empty profile, resolving the public name to a Front."""

    def __init__(self, front: Front, net: BrowserNet, shots: Path, loopback_ports: tuple[int, ...] = ()) -> None:
        from selenium import webdriver

        self.front = front
        self.shots = shots
        self.profile = tempfile.mkdtemp(prefix="mcpgate-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1000,1100",
            "--lang=en-US",
            f"--user-data-dir={self.profile}",
            f"--host-resolver-rules=MAP {front.hostname}:443 {front.address}:{front.port}, "
            f"MAP {CALLBACK_HOST}:443 {front.address}:{front.port}"
            + "".join(f", MAP localhost:{p} {front.address}:{front.http_port}" for p in loopback_ports),
            f"--ignore-certificate-errors-spki-list={front.ca_spki()}",
        ):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        port = _free_port()
        self.driver_log = (shots / "chromedriver.log").open("wb")
        self.chromedriver = subprocess.Popen(
            ["ip", "netns", "exec", net.ns, CHROMEDRIVER, f"--port={port}", f"--allowed-ips={net.outer}"],
            stdout=self.driver_log,
            stderr=self.driver_log,
        )
        url = f"http://{net.inner}:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection((net.inner, port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self.chromedriver.poll() is not None:
                    self.chromedriver.kill()
                    raise RuntimeError(f"chromedriver did not start in {net.ns}") from None
                time.sleep(0.2)
        self.driver = webdriver.Remote(command_executor=url, options=opts)
        self.driver.set_page_load_timeout(90)
        self.step = 0

    def shot(self, name: str) -> Path:
        self.step += 1
        path = self.shots / f"{self.step:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def console_errors(self) -> list[dict[str, Any]]:
        logged = self.driver.execute("getLog", {"type": "browser"})["value"]
        return [e for e in logged if e.get("level") == "SEVERE"]

    def wait(self, seconds: float = 90) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, seconds, poll_frequency=0.2)

    def by_id(self, element_id: str, seconds: float = 90) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        return self._until(ec.visibility_of_element_located((By.ID, element_id)), seconds, f"#{element_id}")

    def text_appears(self, text: str, seconds: float = 90) -> None:
        from selenium.webdriver.common.by import By

        self._until(lambda d: text in d.find_element(By.TAG_NAME, "body").text, seconds, repr(text))

    def _until(self, condition: Any, seconds: float, what: str) -> Any:
        """``condition`` within ``seconds``; else a screenshot and an error saying what the page showed."""
        from selenium.common.exceptions import TimeoutException

        try:
            return self.wait(seconds).until(condition)
        except TimeoutException:
            shot = self.shot("timeout")
            raise AssertionError(
                f"{what} did not appear within {seconds:.0f} s at {self.driver.current_url}; the page shows "
                f"{self.body_text()!r} (screenshot {shot}; console {self.console_errors()})"
            ) from None

    def body_text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            self.chromedriver.terminate()
            try:
                self.chromedriver.wait(10)
            except subprocess.TimeoutExpired:
                self.chromedriver.kill()
            self.driver_log.close()
            shutil.rmtree(self.profile, ignore_errors=True)


@contextmanager
def browser_at(
    hostname: str, ingress_port: int, client_address: str, shots: Path, workdir: Path, loopback_ports: tuple[int, ...]
) -> Iterator[Browser]:
    """A Front for ``client_address`` and a Browser through it (loopback callbacks on ``loopback_ports``
    land on the Front too), in a network namespace of its own; all removed afterwards."""
    net = BrowserNet()
    try:
        net.up()
        front = Front(hostname, ingress_port, client_address, workdir, address=net.outer)
        front.start()
        try:
            shots.mkdir(parents=True, exist_ok=True)
            b = Browser(front, net, shots, loopback_ports)
            try:
                yield b
            finally:
                b.close()
        finally:
            front.stop()
    finally:
        net.down()
