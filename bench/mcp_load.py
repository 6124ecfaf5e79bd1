"""MCP tools/call load client for bench/converge.py: the standard library only, so that it runs with
the base image's python3 inside a short-lived container on one of the stack's networks.

Reads its settings as JSON on stdin (host, port, authority, token, path, arguments, clients, calls,
warmup, seconds). Each client has one keep-alive connection and one MCP session: initialize, the
read tool from tools/list, ``warmup`` unmeasured calls; then all clients start together and call
until ``calls`` each or ``seconds`` have passed. Prints one JSON line: latencies_ms (successful
calls), errors, first_error, seconds.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from typing import Any

CFG: dict[str, Any] = {}


def message(raw: bytes) -> dict[str, Any]:
    """The JSON-RPC message of a response, plain JSON or one server-sent event."""
    text = raw.decode()
    for line in text.splitlines():
        if line.startswith("data:") and line[5:].strip():
            return json.loads(line[5:])
    return json.loads(text)


class Client:
    """One MCP session over one keep-alive HTTP/1.1 connection."""

    def __init__(self) -> None:
        self.conn = http.client.HTTPConnection(CFG["host"], CFG["port"], timeout=30)
        self.headers = {
            "Host": CFG["authority"],
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        if CFG["token"]:
            self.headers["Authorization"] = "Bearer " + CFG["token"]
        self.next_id = 0
        self.tool = ""

    def post(self, method: str, params: dict[str, Any], notify: bool = False) -> tuple[int, str | None, bytes]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        if not notify:
            self.next_id += 1
            body["id"] = self.next_id
        try:
            self.conn.request("POST", CFG["path"], json.dumps(body), self.headers)
            r = self.conn.getresponse()
            return r.status, r.getheader("mcp-session-id"), r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # the next request connects again
            raise

    def start(self) -> None:
        """initialize, notifications/initialized, and the read tool's name (prefixed or not)."""
        info = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}
        status, session, raw = self.post("initialize", info)
        if status != 200:
            raise RuntimeError(f"initialize: HTTP {status} {raw[:200]!r}")
        if session:
            self.headers["mcp-session-id"] = session
        self.post("notifications/initialized", {}, notify=True)
        status, _, raw = self.post("tools/list", {})
        names = [t["name"] for t in message(raw).get("result", {}).get("tools", [])]
        tool = next((n for n in names if n == "read" or n.endswith("_read")), None)
        if tool is None:
            raise RuntimeError(f"no read tool in tools/list: HTTP {status} {raw[:200]!r}")
        self.tool = tool

    def call(self) -> str | None:
        """One tools/call; None, or what went wrong."""
        try:
            status, _, raw = self.post("tools/call", {"name": self.tool, "arguments": CFG["arguments"]})
        except (OSError, http.client.HTTPException) as err:
            return repr(err)
        if status != 200:
            return f"HTTP {status} {raw[:200]!r}"
        msg = message(raw)
        if "result" not in msg or msg["result"].get("isError"):
            return str(msg)[:200]
        return None


def work(client: Client, barrier: threading.Barrier, deadline: list[float], out: dict[str, list]) -> None:
    """Wait for every client, then call until the count or the deadline."""
    barrier.wait()
    for _ in range(CFG["calls"]):
        if time.monotonic() > deadline[0]:
            break
        start = time.perf_counter()
        err = client.call()
        elapsed_ms = (time.perf_counter() - start) * 1000
        if err:
            out["errors"].append(err)
        else:
            out["latencies_ms"].append(elapsed_ms)


def main() -> int:
    CFG.update(json.load(sys.stdin))
    try:
        clients = [Client() for _ in range(CFG["clients"])]
        for c in clients:
            c.start()
            for _ in range(CFG["warmup"]):
                c.call()
    except (OSError, http.client.HTTPException, RuntimeError, ValueError) as err:
        print(json.dumps({"error": repr(err)}))
        return 1
    out: dict[str, list] = {"latencies_ms": [], "errors": []}
    deadline = [0.0]
    barrier = threading.Barrier(len(clients) + 1)
    threads = [threading.Thread(target=work, args=(c, barrier, deadline, out)) for c in clients]
    for t in threads:
        t.start()
    deadline[0] = time.monotonic() + CFG["seconds"]
    barrier.wait()
    start = time.monotonic()
    for t in threads:
        t.join()
    errors = out["errors"]
    report = {
        "latencies_ms": out["latencies_ms"],
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": time.monotonic() - start,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
