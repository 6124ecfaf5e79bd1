"""Decisions the deploy takes from `tailscale status --json` and `tailscale funnel status --json`.

The real tailscaled cannot join a tailnet from the test machines (no network but package
registries), so these check the decisions on the JSON shapes tailscale prints.
"""

from __future__ import annotations

from mcpgate.funnel import backend_running, funnel_matches, funnel_target, node_name

HOST = "mcp-gateway.example-tailnet.ts.net"


def _funnel(proxy: str = "http://127.0.0.1:8088", allow: bool = True, mounts: tuple[str, ...] = ("/",)) -> dict:
    return {
        "TCP": {"443": {"HTTPS": True}},
        "Web": {f"{HOST}:443": {"Handlers": {m: {"Proxy": proxy} for m in mounts}}},
        "AllowFunnel": {f"{HOST}:443": allow},
    }


def test_status() -> None:
    running = {"BackendState": "Running", "Self": {"DNSName": f"{HOST}."}}
    assert backend_running(running) and node_name(running) == HOST
    assert not backend_running({"BackendState": "NeedsLogin", "Self": {"DNSName": ""}})
    assert not backend_running(None) and node_name(None) is None


def test_funnel_matches_only_the_exact_wanted_state() -> None:
    assert funnel_target(8088) == "http://127.0.0.1:8088"
    assert funnel_matches(_funnel(), HOST, 8088)
    assert not funnel_matches(_funnel(), HOST, 9000)  # another ingress port
    assert not funnel_matches(_funnel(allow=False), HOST, 8088)  # served on the tailnet only
    assert not funnel_matches(_funnel(mounts=("/", "/mcp")), HOST, 8088)  # a sub-path mount strips prefixes
    assert not funnel_matches(_funnel(mounts=("/mcp",)), HOST, 8088)
    assert not funnel_matches(_funnel(), "other.example-tailnet.ts.net", 8088)
    assert not funnel_matches({}, HOST, 8088) and not funnel_matches(None, HOST, 8088)
    no_tls = _funnel()
    no_tls["TCP"] = {"443": {"HTTPS": False}}
    assert not funnel_matches(no_tls, HOST, 8088)
