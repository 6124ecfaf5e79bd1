"""The rendered ingress under a bounded fuzz: the real Caddyfile in the harness' Caddy image, tricky
requests sent byte for byte, and what each upstream received checked (tests/e2e/ingress_fuzz.py
says what counts as a finding). Needs only the Docker engine and the Caddy image, so it runs in CI.

Run it alone, one line per case: ``MCPGATE_E2E=1 .venv/bin/pytest tests/e2e/test_ingress_fuzz.py -q -s``.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mcpgate.layout import INGRESS_TIMEOUTS
from mcpgate.model import load_stack
from mcpgate.render import render_stack
from mcpgate.secrets import SecretStore, StackSecrets
from tests.conftest import BASE_STACK
from tests.e2e.harness import LOCAL_IMAGES, image_exists
from tests.e2e.ingress_fuzz import TOTAL_TIMEOUT, all_cases, fuzz, running_caddy

pytestmark = pytest.mark.skipif(
    os.environ.get("MCPGATE_E2E") != "1", reason="the test harness is not up (run the suite with bin/test as root)"
)


def test_the_rendered_ingress_survives_the_fuzz(tmp_path: Path) -> None:
    image = LOCAL_IMAGES["ingress"]
    if not image_exists(image):
        pytest.skip(f"local image {image} is missing (tests/harness/build-images.sh)")
    stack = load_stack("fuzz.test", copy.deepcopy(BASE_STACK))
    store = SecretStore.for_host(tmp_path / "secrets", "fuzz.test")
    store.set("tokens/home-assistant-token", "not-used-by-the-ingress")
    caddyfile = render_stack(stack, StackSecrets(store, stack)).file("ingress/config/Caddyfile").content.decode()

    report = fuzz(caddyfile, image, stack.hostname, stack.gateway_port)

    assert not report.timed_out, f"the fuzz ran over {TOTAL_TIMEOUT:.0f} s"
    assert len(report.results) == len(all_cases(stack.hostname))
    assert not report.findings, "\n".join(r.line() for r in report.findings)


def _rendered_caddyfile(tmp_path: Path) -> tuple[str, Any]:
    stack = load_stack("fuzz.test", copy.deepcopy(BASE_STACK))
    store = SecretStore.for_host(tmp_path / "secrets", "fuzz.test")
    store.set("tokens/home-assistant-token", "not-used-by-the-ingress")
    return render_stack(stack, StackSecrets(store, stack)).file("ingress/config/Caddyfile").content.decode(), stack


def _container_at(ip: str) -> str:
    names = subprocess.run(
        ["docker", "ps", "--filter", "name=mcpgate-fuzz-", "--format", "{{.Names}}"], capture_output=True, text=True
    ).stdout.split()
    for name in names:
        info = json.loads(subprocess.run(["docker", "inspect", name], capture_output=True, text=True).stdout)[0]
        if any(n.get("IPAddress") == ip for n in info["NetworkSettings"]["Networks"].values()):
            return name
    raise AssertionError(f"no fuzz container at {ip}")


def _memory_mib(container: str) -> float:
    """The resident memory of the container's main process (Caddy), in MiB, read from /proc."""
    pid = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Pid}}", container], capture_output=True, text=True
    ).stdout.strip()
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(rss.split()[1]) / 1024


def test_slow_clients_are_cut_off_and_an_unrouted_body_is_never_read(tmp_path: Path) -> None:
    """Bounded, on this machine: 100 clients that send their headers a byte a second and 100 that
    declare a 1 MiB body for /mcp and send it a KiB a second. The ingress (the rendered Caddyfile in
    real Caddy) closes each within its read_header or read_body timeout, answers a normal client
    meanwhile, and its memory stays small; a body for a path no route takes is not even waited for."""
    image = LOCAL_IMAGES["ingress"]
    if not image_exists(image):
        pytest.skip(f"local image {image} is missing (tests/harness/build-images.sh)")
    caddyfile, stack = _rendered_caddyfile(tmp_path)
    limits = INGRESS_TIMEOUTS
    host = stack.hostname.encode()
    with running_caddy(caddyfile, image, stack.gateway_port) as (addr, _):
        container = _container_at(addr[0])
        idle = _memory_mib(container)

        # Unrouted: answered 404 at once, though the declared body never comes.
        started = time.monotonic()
        with socket.create_connection(addr, timeout=5) as s:
            s.sendall(b"POST /nowhere HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 1048576\r\n\r\n")
            assert s.recv(64).startswith(b"HTTP/1.1 404")
        assert time.monotonic() - started < 2

        closed_after: dict[str, list[float]] = {"header": [], "body": []}
        lock = threading.Lock()

        def slow(kind: str) -> None:
            start = time.monotonic()
            try:
                with socket.create_connection(addr, timeout=5) as s:
                    if kind == "header":
                        s.sendall(b"POST /mcp HTTP/1.1\r\nHost: " + host + b"\r\n")
                        chunk, step = b"X", 1.0
                    else:
                        s.sendall(
                            b"POST /mcp HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 1048576\r\n\r\n"
                        )
                        chunk, step = b"x" * 1024, 1.0
                    deadline = start + limits["read_body"] + limits["read_header"] + 20
                    while time.monotonic() < deadline:
                        time.sleep(step)
                        s.sendall(chunk)
                        s.settimeout(0.01)
                        try:
                            if s.recv(4096) == b"":
                                break
                        except TimeoutError:
                            pass
                        except OSError:
                            break
            except OSError:
                pass
            with lock:
                closed_after[kind].append(time.monotonic() - start)

        threads = [threading.Thread(target=slow, args=(k,)) for k in ("header", "body") for _ in range(100)]
        for t in threads:
            t.start()
        time.sleep(5)
        busy = max(_memory_mib(container) for _ in range(3))
        started = time.monotonic()
        with socket.create_connection(addr, timeout=5) as s:
            s.sendall(b"GET /nowhere HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
            assert s.recv(64).startswith(b"HTTP/1.1 404")
        answered = time.monotonic() - started
        for t in threads:
            t.join(timeout=limits["read_body"] + limits["read_header"] + 30)
    worst = {k: max(v) for k, v in closed_after.items()}
    print(
        f"\nslow clients: memory {idle:.1f} MiB idle, {busy:.1f} MiB with 200 slow clients; a normal request "
        f"answered in {answered * 1000:.0f} ms; slow headers cut after {worst['header']:.1f} s at most "
        f"(read_header {limits['read_header']} s), slow bodies after {worst['body']:.1f} s (read_body "
        f"{limits['read_body']} s)"
    )
    assert len(closed_after["header"]) == len(closed_after["body"]) == 100
    assert worst["header"] < limits["read_header"] + 5
    assert worst["body"] < limits["read_body"] + 5
    assert answered < 2
    assert busy < 128
