"""The real server process on 127.0.0.1, spoken to over MCP streamable HTTP with the SDK client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import TextContent

from .conftest import SERVER_DIR

STARTUP_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    proc: subprocess.Popen[bytes]
    port: int
    root: Path
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base}/mcp"


def start_server(root: Path, log: Path, **extra_env: str) -> RunningServer:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTES_VAULT_")}
    env.update(
        NOTES_VAULT_ROOT=str(root),
        NOTES_VAULT_HOST="127.0.0.1",
        NOTES_VAULT_PORT=str(port),
        PYTHONPATH=str(SERVER_DIR),
        PYTHONDONTWRITEBYTECODE="1",
        **extra_env,
    )
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "notes_vault"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root.parent
        )
    server = RunningServer(proc, port, root, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{server.base}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            stop_server(server)
            raise AssertionError(f"server did not become healthy in {STARTUP_TIMEOUT_S}s:\n{log.read_text()}")
        time.sleep(0.1)


def stop_server(server: RunningServer) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover
            server.proc.kill()
            server.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def http_vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("http")
    root = base / "vault"
    (root / "Projects").mkdir(parents=True)
    (root / ".obsidian").mkdir()
    (root / "Projects" / "mcpgate.md").write_text("# mcpgate\nFunnel -> Caddy -> Authelia\n", encoding="utf-8")
    (root / ".obsidian" / "app.md").write_text("hidden\n", encoding="utf-8")
    (base / "outside").mkdir()
    (base / "outside" / "secret.md").write_text("top secret\n", encoding="utf-8")
    (root / "escape.md").symlink_to(base / "outside" / "secret.md")
    return root


@pytest.fixture(scope="module")
def server(http_vault: Path) -> Iterator[RunningServer]:
    srv = start_server(http_vault, http_vault.parent / "server.log")
    try:
        yield srv
    finally:
        stop_server(srv)
    # uvicorn re-raises the SIGTERM it handled after a graceful shutdown, hence -15.
    assert srv.proc.returncode in (0, -signal.SIGTERM), srv.log.read_text()
    assert "Application shutdown complete" in srv.log.read_text()


def post_jsonrpc(url: str, body: dict[str, Any], host: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Accept", "application/json, text/event-stream")
    req.add_header("MCP-Protocol-Version", "2025-06-18")
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "proxy-test", "version": "0"},
    },
}


def test_full_session_over_streamable_http(server: RunningServer) -> None:
    async def main() -> dict[str, Any]:
        # mode="legacy": the classic initialize handshake, as Claude.ai / agentgateway do it.
        async with Client(server.mcp_url, mode="legacy") as client:
            seen: dict[str, Any] = {"protocol": client.protocol_version, "info": client.server_info}
            seen["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
            seen["search"] = await client.call_tool("search", {"query": "caddy"})
            seen["read"] = await client.call_tool("read", {"path": "Projects/mcpgate.md"})
            seen["write"] = await client.call_tool("write", {"path": "New/Note.md", "content": "hello\n"})
            seen["read_new"] = await client.call_tool("read", {"path": "New/Note.md"})
            seen["delete"] = await client.call_tool("delete", {"path": "New/Note.md"})
            seen["escape"] = await client.call_tool("read", {"path": "escape.md"})
            seen["dotdot"] = await client.call_tool("write", {"path": "../outside/x.md", "content": "x"})
            seen["hidden"] = await client.call_tool("read", {"path": ".obsidian/app.md"})
            return seen

    seen = anyio.run(main)
    assert seen["protocol"]
    assert seen["info"].name == "notes-vault"
    assert seen["tools"] == ["delete", "read", "search", "write"]
    assert seen["search"].structured_content["matches"] == [
        {"path": "Projects/mcpgate.md", "line_number": 2, "line": "Funnel -> Caddy -> Authelia"}
    ]
    assert isinstance(seen["read"].content[0], TextContent)
    assert seen["read"].content[0].text == "# mcpgate\nFunnel -> Caddy -> Authelia\n"
    assert seen["write"].structured_content == {"path": "New/Note.md", "bytes_written": 6, "created": True}
    assert seen["read_new"].content[0].text == "hello\n"
    assert seen["delete"].structured_content == {"path": "New/Note.md", "deleted": True}
    for key, message in (("escape", "outside the vault"), ("dotdot", "'..'"), ("hidden", "hidden")):
        result = seen[key]
        assert result.is_error, key
        assert message in result.content[0].text
        assert "top secret" not in result.content[0].text
    assert not (server.root / "New" / "Note.md").exists()
    assert not (server.root.parent / "outside" / "x.md").exists()


def test_auto_negotiation_also_works(server: RunningServer) -> None:
    async def main() -> list[str]:
        async with Client(server.mcp_url) as client:
            return sorted(t.name for t in (await client.list_tools()).tools)

    assert anyio.run(main) == ["delete", "read", "search", "write"]


@pytest.mark.parametrize("host", ["notes:8080", "notes", "mcpgate-notes-1:8080", "10.89.0.5:8080"])
def test_proxy_host_headers_are_accepted_by_default(server: RunningServer, host: str) -> None:
    """agentgateway forwards with its upstream name as Host; the SDK's localhost-only check must not 421 it."""
    status, body = post_jsonrpc(server.mcp_url, INITIALIZE, host=host)
    assert status == 200, body
    result = json.loads(body)["result"]
    assert result["serverInfo"]["name"] == "notes-vault"
    assert "tools" in result["capabilities"]


def test_stateless_tools_call_without_session(server: RunningServer) -> None:
    """Stateless mode: a tools/call POST needs no prior session (the gateway may pick any request)."""
    status, body = post_jsonrpc(
        server.mcp_url,
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "read", "arguments": {"path": "x/../y.md"}},
        },
        host="notes:8080",
    )
    assert status == 200, body
    result = json.loads(body)["result"]
    assert result["isError"] is True
    assert "'..'" in result["content"][0]["text"]


def test_healthz_and_healthcheck_script(server: RunningServer) -> None:
    with urllib.request.urlopen(f"{server.base}/healthz", timeout=5) as resp:
        assert resp.status == 200
        assert json.loads(resp.read()) == {"status": "ok"}
    env = {**os.environ, "NOTES_VAULT_PORT": str(server.port), "PYTHONPATH": str(SERVER_DIR)}
    ok = subprocess.run([sys.executable, "-m", "notes_vault.healthcheck"], env=env, capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    env["NOTES_VAULT_PORT"] = str(free_port())
    bad = subprocess.run([sys.executable, "-m", "notes_vault.healthcheck"], env=env, capture_output=True, timeout=30)
    assert bad.returncode == 1
    assert b"healthcheck failed" in bad.stderr


def test_allowed_hosts_turns_the_host_check_on(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    root.mkdir()
    srv = start_server(root, tmp_path / "server.log", NOTES_VAULT_ALLOWED_HOSTS="notes:8080, 127.0.0.1:*")
    try:
        assert post_jsonrpc(srv.mcp_url, INITIALIZE, host="notes:8080")[0] == 200
        assert post_jsonrpc(srv.mcp_url, INITIALIZE)[0] == 200  # Host: 127.0.0.1:<port>
        status, body = post_jsonrpc(srv.mcp_url, INITIALIZE, host="evil.example:8080")
        assert status == 421, body
        # healthz reports the vault going away (503) so the container is marked unhealthy
        root.rename(tmp_path / "gone")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{srv.base}/healthz", timeout=5)
        assert err.value.code == 503
    finally:
        stop_server(srv)


def test_missing_vault_root_fails_fast(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "NOTES_VAULT_ROOT": str(tmp_path / "nope"),
        "NOTES_VAULT_PORT": str(free_port()),
        "PYTHONPATH": str(SERVER_DIR),
    }
    proc = subprocess.run([sys.executable, "-m", "notes_vault"], env=env, capture_output=True, timeout=60)
    assert proc.returncode != 0
    assert b"is not a directory" in proc.stderr
