"""Tailscale state as the deploy reads it: pure decisions over ``tailscale ... --json`` output."""

from __future__ import annotations

from typing import Any


def backend_running(status: dict[str, Any] | None) -> bool:
    return bool(status) and status.get("BackendState") == "Running"


def node_name(status: dict[str, Any] | None) -> str | None:
    """The node's MagicDNS name, without the trailing dot."""
    name = ((status or {}).get("Self") or {}).get("DNSName")
    return name.rstrip(".") if name else None


def funnel_target(ingress_port: int) -> str:
    return f"http://127.0.0.1:{ingress_port}"


def funnel_matches(funnel: dict[str, Any] | None, hostname: str, ingress_port: int) -> bool:
    """True when Funnel already serves https://<hostname>:443/ (one mount at "/") to the ingress."""
    if not funnel:
        return False
    key = f"{hostname}:443"
    if not (funnel.get("AllowFunnel") or {}).get(key):
        return False
    if not ((funnel.get("TCP") or {}).get("443") or {}).get("HTTPS"):
        return False
    handlers = ((funnel.get("Web") or {}).get(key) or {}).get("Handlers") or {}
    # Exactly one mount at "/": tailscale strips the prefix of any other mount point.
    return list(handlers) == ["/"] and handlers["/"].get("Proxy") == funnel_target(ingress_port)
