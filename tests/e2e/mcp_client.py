"""A minimal streamable-HTTP MCP client, for the gateway behind the ingress."""

from __future__ import annotations

import json
from typing import Any

import httpx


class McpClient:
    """A minimal streamable-HTTP MCP client speaking to the gateway through the ingress."""

    def __init__(self, base: str, hostname: str, token: str | None) -> None:
        self.base = base  # http://127.0.0.1:<port> of the ingress
        self.headers = {
            "Host": hostname,
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.next_id = 0

    def post(self, method: str, params: dict[str, Any] | None = None, notify: bool = False) -> httpx.Response:
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
        if not notify:
            self.next_id += 1
            body["id"] = self.next_id
        return httpx.post(f"{self.base}/mcp", json=body, headers=self.headers, timeout=30)

    @staticmethod
    def message(r: httpx.Response) -> dict[str, Any]:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            for line in r.text.splitlines():
                if line.startswith("data:") and line[5:].strip():
                    return json.loads(line[5:])
            raise AssertionError(f"no data in event stream: {r.text[:300]}")
        return r.json()

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.post(method, params)
        assert r.status_code == 200, f"{method}: {r.status_code} {r.text[:300]}"
        return self.message(r)

    def initialize(self) -> None:
        r = self.post(
            "initialize",
            {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}},
        )
        assert r.status_code == 200, f"initialize: {r.status_code} {r.headers} {r.text[:300]}"
        session = r.headers.get("mcp-session-id")
        if session:
            self.headers["mcp-session-id"] = session
        self.post("notifications/initialized", notify=True)
