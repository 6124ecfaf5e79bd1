"""The rendered ingress and the rendered agentgateway, both real, in front of a backend that records
what it receives: what a backend may see of a client's request, and which 403 becomes a step-up.

A recording MCP backend (a remote ``url`` backend, on this machine at the test network's gateway
address) stands in for a backend, so that its requests can be read and it can answer its own 403.
Needs the real agentgateway: where it cannot run the module skips, as one, with the reason.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import secrets as pysecrets
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from mcpgate.layout import INGRESS, INGRESS_HEALTH_PORT
from mcpgate.model import Stack, load_stack
from mcpgate.render import render_stack
from mcpgate.render_services import GATEWAY_DENIAL, GATEWAY_PASSED_HEADER
from mcpgate.secrets import SIGNING_KEY, SecretStore, StackSecrets, key_id_for
from tests.conftest import BASE_STACK
from tests.e2e.harness import LOCAL_IMAGES, image_exists, skip_module_without
from tests.e2e.mcp_client import McpClient

skip_module_without("agentgateway")

HOSTNAME = "mcp-chain.home.test"
BACKEND_TOKEN = f"backend-token-{pysecrets.token_hex(8)}"  # the backend's own, from the store

# Headers a client could send hoping a backend trusts them: none may reach a backend.
FORGED = {
    "X-Forged-Identity": "admin",
    "Tailscale-User-Login": "admin@example.org",
    "X-Client-IP": "1.2.3.4",
    "X-Webauth-User": "admin",
    "Cookie": "session=stolen",
    "User-Agent": "e2e-chain",
}


class Recorder:
    """A minimal MCP server (Streamable HTTP, JSON answers) that records every request's headers.
    Its tool ``refuse`` answers its own 403: text/plain, the very text of the gateway's denial."""

    def __init__(self, host: str) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []  # HTTP method, JSON-RPC method, headers
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def _answer(self, status: int, body: bytes = b"", ctype: str = "application/json", **extra: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra.items():
                    self.send_header(k.replace("_", "-"), v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                message = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorder.seen.append(("POST", message.get("method", ""), headers))
                if "id" not in message:
                    return self._answer(202)
                method, params = message.get("method"), message.get("params") or {}
                if method == "tools/call" and params.get("name") == "refuse":
                    return self._answer(403, GATEWAY_DENIAL.encode(), "text/plain")
                result: dict[str, Any] = {
                    "initialize": {
                        "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                        "capabilities": {"tools": {}},
                        "serverInfo": {"name": "recorder", "version": "1"},
                    },
                    "tools/list": {
                        "tools": [
                            {"name": n, "description": n, "inputSchema": {"type": "object"}} for n in ("echo", "refuse")
                        ]
                    },
                    "tools/call": {"content": [{"type": "text", "text": "echoed"}]},
                    "ping": {},
                }.get(method, {})
                body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
                self._answer(200, body, Mcp_Session_Id="recorder-session")

            def do_GET(self) -> None:
                recorder.seen.append(("GET", "", {k.lower(): v for k, v in self.headers.items()}))
                self._answer(405)

            def do_DELETE(self) -> None:
                self._answer(200)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, rpc_method: str) -> list[dict[str, str]]:
        return [headers for _, method, headers in self.seen if method == rpc_method]


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=120)


@contextmanager
def chain(tmp_path: Path) -> Iterator[tuple[str, Recorder, Stack, SecretStore]]:
    """The network, the recorder, agentgateway and Caddy with the stack's rendered configs; the
    base URL of the ingress. Removes what it made whatever happens."""
    caddy_image, gateway_image = LOCAL_IMAGES["ingress"], os.environ["MCPGATE_AGENTGATEWAY_IMAGE"]
    if not image_exists(caddy_image):
        pytest.skip(f"local image {caddy_image} is missing (tests/harness/build-images.sh)")
    tag = f"mcpgate-chain-{pysecrets.token_hex(4)}"
    made: list[str] = []
    network = False
    recorder: Recorder | None = None
    try:
        for _ in range(8):
            subnet = f"10.{200 + pysecrets.randbelow(40)}.{pysecrets.randbelow(256)}.0/24"
            if _docker("network", "create", "--subnet", subnet, tag, check=False).returncode == 0:
                network = True
                break
        else:
            raise RuntimeError("could not create a network for the test")
        ipam = json.loads(_docker("network", "inspect", tag).stdout)[0]["IPAM"]["Config"][0]
        gw = ipam.get("Gateway") or str(next(ipaddress.ip_network(subnet).hosts()))
        recorder = Recorder(gw)

        data = copy.deepcopy(BASE_STACK)
        data["hostname"] = HOSTNAME
        data["tailscale"] = {"enabled": False}
        data["scopes"] = {"probe:use": "Use the probe"}
        # The gateway sends the backend its own token (token_secret): the header allow-list must
        # not take it off again.
        data["backends"] = [
            {
                "name": "probe",
                "url": f"http://{gw}:{recorder.port}/mcp",
                "scope": "probe:use",
                "token_secret": "probe-token",
                "allow_plain_http": True,
            }
        ]
        stack = load_stack("chain.test", data)
        store = SecretStore.for_host(tmp_path / "secrets", "chain.test")
        store.set("tokens/probe-token", BACKEND_TOKEN)
        rendered = render_stack(stack, StackSecrets(store, stack))
        files = tmp_path / "files"
        for service in ("agentgateway", "ingress"):
            for f in rendered.for_service(service):
                path = files / f.path
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(f.content)
                path.chmod(0o644)
        for d in [files, *files.rglob("*")]:
            if d.is_dir():
                d.chmod(0o755)

        _docker(
            "run", "-d", "--name", f"{tag}-gw", "--network", tag, "--network-alias", "agentgateway",
            "-v", f"{files / 'agentgateway' / 'config'}:/config:ro",
            "-v", f"{files / 'agentgateway' / 'secrets'}:/secrets:ro", gateway_image, "-f", "/config/config.yaml",
        )  # fmt: skip
        made.append(f"{tag}-gw")
        _docker(
            "run", "-d", "--name", f"{tag}-ingress", "--network", tag, "--add-host", f"authelia:{gw}",
            "-v", f"{files / 'ingress' / 'config'}:/etc/caddy:ro", caddy_image,
            "caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile",
        )  # fmt: skip
        made.append(f"{tag}-ingress")
        ip = json.loads(_docker("inspect", f"{tag}-ingress").stdout)[0]["NetworkSettings"]["Networks"][tag]["IPAddress"]
        base = f"http://{ip}:{INGRESS.port}"
        deadline = time.monotonic() + 60
        while True:  # the ingress answers, and through it the gateway
            try:
                up = httpx.get(f"http://{ip}:{INGRESS_HEALTH_PORT}/healthz", timeout=2).status_code == 200
                r = httpx.get(f"{base}/.well-known/oauth-protected-resource/mcp", headers={"Host": HOSTNAME}, timeout=2)
                if up and r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                logs = "".join(_docker("logs", name, check=False).stderr[-3000:] for name in made)
                raise RuntimeError(f"the ingress and the gateway did not come up:\n{logs}")
            time.sleep(0.5)
        yield base, recorder, stack, store
    finally:
        for name in made:
            _docker("rm", "-f", name, check=False)
        if network:
            _docker("network", "rm", tag, check=False)
        if recorder:
            recorder.close()
        shutil.rmtree(tmp_path / "files", ignore_errors=True)


def _token(store: SecretStore, scp: list[str]) -> str:
    """A token shaped like Authelia's, signed with the stack's own key."""
    pem = store.get(SIGNING_KEY)
    sub = store.get("users/alice.sub")
    assert pem and sub
    now = int(time.time())
    claims = {
        "iss": f"https://{HOSTNAME}/auth",
        "aud": [f"https://{HOSTNAME}/mcp"],
        "sub": sub,
        "client_id": "claude-ai",
        "scp": scp,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode({"alg": "RS256", "kid": key_id_for(pem), "typ": "at+jwt"}, claims, RSAKey.import_key(pem))


def test_a_backend_sees_only_the_allowed_headers_and_only_the_gateways_denial_is_a_step_up(tmp_path: Path) -> None:
    with chain(tmp_path) as (base, recorder, stack, store):
        client = McpClient(base, HOSTNAME, _token(store, ["probe:use"]))
        client.headers.update(FORGED)
        client.headers["Mcp-Protocol-Version"] = "2025-06-18"
        client.initialize()
        assert {t["name"] for t in client.call("tools/list")["result"]["tools"]} == {"echo", "refuse"}
        client.headers["Mcp-Param-Probe"] = "abc"
        answer = client.call("tools/call", {"name": "echo", "arguments": {}})
        assert answer["result"]["content"][0]["text"] == "echoed", answer

        # (a) What the backend got for that call: no forged header, no client token; what MCP needs.
        (seen,) = recorder.calls("tools/call")
        print(f"\nheaders the backend saw on tools/call: {sorted(seen)}")
        leaked = sorted(n for n in map(str.lower, FORGED) if n in seen)
        assert not leaked, f"forged headers reached the backend: {leaked}"
        assert seen.get("authorization") == f"Bearer {BACKEND_TOKEN}", "the backend's own token must reach it"
        assert seen["mcp-param-probe"] == "abc"
        assert seen["mcp-protocol-version"] == "2025-06-18"
        assert seen["mcp-session-id"] == "recorder-session"
        assert seen["content-type"] == "application/json"
        assert "text/event-stream" in seen["accept"]
        assert seen["x-forwarded-proto"] == "https"
        for headers in recorder.calls("initialize") + recorder.calls("tools/list"):
            assert not {n.lower() for n in FORGED} & set(headers), sorted(headers)
        # The filter must not fail open (agentgateway leaves the headers as they are when its
        # expression fails): a value that is not UTF-8 and repeated headers change nothing.
        odd = [(k.encode(), v.encode()) for k, v in client.headers.items()] + [
            (b"X-Odd", b"caf\xe9"),
            (b"Accept", b"application/json"),
            (b"X-Forged-Identity", b"again"),
            (b"Mcp-Param-Odd", b"\xff"),
        ]
        body = {"jsonrpc": "2.0", "id": 99, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
        r = httpx.post(f"{base}/mcp", content=json.dumps(body), headers=odd, timeout=30)
        print(f"odd headers: {r.status_code} {r.text[:200]!r}")
        for headers in recorder.calls("tools/call")[1:]:
            print(f"headers the backend saw with odd ones: {sorted(headers)}")
            assert not {"x-odd", *(n.lower() for n in FORGED)} & set(headers), sorted(headers)

        # (b) The backend's own 403, text/plain with the gateway's very text, passes unchanged.
        r = client.post("tools/call", {"name": "refuse", "arguments": {}})
        print(f"the backend's own 403 reached the client as: {r.status_code} {dict(r.headers)} {r.text[:200]!r}")
        assert r.status_code == 403, r.text
        assert "www-authenticate" not in r.headers
        assert r.text == GATEWAY_DENIAL
        assert GATEWAY_PASSED_HEADER.lower() not in r.headers

        # The gateway's own denial (a token with none of the server's scopes) is the step-up.
        nothing = McpClient(base, HOSTNAME, _token(store, ["openid", "offline_access"]))
        nothing.initialize()
        r = nothing.post("tools/list")
        assert r.status_code == 403, r.text
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="insufficient_scope", '), challenge
        assert f'scope="{" ".join(stack.scopes_supported)}"' in challenge, challenge
        assert GATEWAY_PASSED_HEADER.lower() not in r.headers
