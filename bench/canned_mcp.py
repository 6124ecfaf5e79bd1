"""A canned MCP upstream for bench/converge.py's per-hop breakdown: the standard library only, so that
it runs with the base image's python3 in a short-lived container on the bench's own network.

It stands where agentgateway stands behind the ingress (``agentgateway:3000``) and answers every
JSON-RPC request at once with a fixed result: ``initialize`` (with a session id), ``tools/list``
(one tool, ``read``), ``tools/call`` (a fixed text), a 202 for a notification. No work is done per
request, so a load run against it measures the ingress (and the client) alone.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESULTS = {
    "initialize": {
        "protocolVersion": "2025-06-18",
        "capabilities": {"tools": {}},
        "serverInfo": {"name": "canned", "version": "1"},
    },
    "tools/list": {"tools": [{"name": "read", "inputSchema": {"type": "object"}}]},
    "tools/call": {"content": [{"type": "text", "text": "- milk\n- coffee beans\n"}], "isError": False},
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the load client and Caddy use it
    # The headers and the body go out in two writes: without TCP_NODELAY the second waits for the
    # client's delayed ACK (40 ms), which would be all this upstream measures.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if "id" not in body:
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer = {"jsonrpc": "2.0", "id": body["id"], "result": RESULTS.get(body.get("method"), {})}
        raw = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        if body.get("method") == "initialize":
            self.send_header("Mcp-Session-Id", "canned")
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass  # one line per request would cost more than the answer


def main() -> int:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
