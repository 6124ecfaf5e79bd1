"""The Tailscale node, as the deploy decides about it: where its package comes from (the apt source),
and pure decisions over ``tailscale ... --json`` output.

mcpgate owns one Serve entry on the node: the mount ``/`` of ``https://<hostname>:443`` (the stack's
public URL), proxied to the ingress, with Funnel on for ``<hostname>:443`` when ``tailscale.funnel``
is on. Every other Serve/Funnel entry is a person's and is never changed: the commands below name
the port and the mount (``tailscale funnel reset`` would erase them all). What the CLI writes, read
in tailscale v1.102.5's cmd/tailscale/cli/serve_v2.go and ipn/serve.go:

- ``tailscale funnel --bg --yes --https=443 <target>`` sets ``TCP["443"] = {"HTTPS": true}``,
  ``Web["<dns>:443"].Handlers["/"] = {"Proxy": <target>}`` (replacing only that mount) and
  ``AllowFunnel["<dns>:443"] = true``; it first checks that the node may use Funnel (the ``https``
  and ``funnel`` node capabilities) and fails without them;
- ``tailscale serve --https=443 --set-path=/ off`` removes only the mount ``/`` (without
  ``--set-path`` it removes every mount on the port), and with it ``TCP["443"]`` and
  ``AllowFunnel["<dns>:443"]`` once no mount is left on the port; ``tailscale funnel ... off`` does
  the same but first asks for the Funnel capability, which a node whose Funnel is to go off may have
  lost.
"""

from __future__ import annotations

from typing import Any

from .apt import AptRelease
from .errors import MCPGateError

FUNNEL_PORT = 443  # Claude.ai reaches 443 only; Funnel serves 443, 8443 and 10000
MOUNT = "/"  # one mount at "/": tailscale strips the mount point from the path of any other
FUNNEL_CAPS = ("https", "funnel")  # tailcfg.CapabilityHTTPS, tailcfg.NodeAttrFunnel

TAILSCALE_KEYRING = "/usr/share/keyrings/tailscale-archive-keyring.gpg"


def tailscale_base(release: AptRelease) -> str:
    return f"https://pkgs.tailscale.com/stable/{release.distro}/{release.codename}"


def tailscale_source(release: AptRelease) -> str:
    """Tailscale's apt source line (https://pkgs.tailscale.com/stable/#debian-bookworm).

    >>> tailscale_source(AptRelease("debian", "bookworm", "amd64")).split("] ")[1]
    'https://pkgs.tailscale.com/stable/debian bookworm main'
    """
    repo = f"https://pkgs.tailscale.com/stable/{release.distro}"
    return f"deb [signed-by={TAILSCALE_KEYRING}] {repo} {release.codename} main"


def backend_running(status: dict[str, Any] | None) -> bool:
    return bool(status) and status.get("BackendState") == "Running"


def node_name(status: dict[str, Any] | None) -> str | None:
    """The node's MagicDNS name, without the trailing dot."""
    name = ((status or {}).get("Self") or {}).get("DNSName")
    return name.rstrip(".") if name else None


def funnel_target(ingress_port: int) -> str:
    return f"http://127.0.0.1:{ingress_port}"


def _key(hostname: str) -> str:
    return f"{hostname}:{FUNNEL_PORT}"


def _handlers(serve: dict[str, Any] | None, hostname: str) -> dict[str, Any]:
    return (((serve or {}).get("Web") or {}).get(_key(hostname)) or {}).get("Handlers") or {}


def _funnel_on(serve: dict[str, Any] | None, hostname: str) -> bool:
    return bool(((serve or {}).get("AllowFunnel") or {}).get(_key(hostname)))


def _serves_ingress(serve: dict[str, Any] | None, hostname: str, ingress_port: int) -> bool:
    return (_handlers(serve, hostname).get(MOUNT) or {}).get("Proxy") == funnel_target(ingress_port)


def funnel_matches(funnel: dict[str, Any] | None, hostname: str, ingress_port: int) -> bool:
    """True when Funnel already serves https://<hostname>:443/ (one mount at "/") to the ingress."""
    if not funnel or not _funnel_on(funnel, hostname):
        return False
    if not ((funnel.get("TCP") or {}).get(str(FUNNEL_PORT)) or {}).get("HTTPS"):
        return False
    return list(_handlers(funnel, hostname)) == [MOUNT] and _serves_ingress(funnel, hostname, ingress_port)


def funnel_unavailable(status: dict[str, Any] | None) -> str | None:
    """Why this node may not use Funnel (the capabilities the control server did not grant), or None.

    >>> funnel_unavailable({"Self": {"CapMap": {"https": None, "funnel": None}}}) is None
    True
    """
    caps = set(((status or {}).get("Self") or {}).get("CapMap") or {})
    caps |= set(((status or {}).get("Self") or {}).get("Capabilities") or [])
    missing = [c for c in FUNNEL_CAPS if c not in caps]
    if not missing:
        return None
    return (
        "the tailnet's control server does not let this node use Funnel (capabilities "
        f"{' and '.join(repr(c) for c in missing)} not granted): enable HTTPS certificates and Funnel for "
        "the tailnet (https://tailscale.com/kb/1223/funnel; a control server without Funnel, such as "
        "headscale, cannot), or set tailscale.funnel = False"
    )


def _foreign_problem(serve: dict[str, Any] | None, hostname: str) -> str | None:
    """A person's entry on <hostname>:443 that mcpgate's Funnel would publish or that blocks it."""
    tcp = ((serve or {}).get("TCP") or {}).get(str(FUNNEL_PORT)) or {}
    if tcp.get("TCPForward"):
        return (
            f"port {FUNNEL_PORT} of this node forwards TCP to {tcp['TCPForward']} (tailscale serve --tcp), "
            f"where mcpgate serves https://{hostname}/; remove it (tailscale serve --tcp={FUNNEL_PORT} off) "
            "or set tailscale.enabled = False"
        )
    others = sorted(m for m in _handlers(serve, hostname) if m != MOUNT)
    if others:
        mounts = ", ".join(others)
        return (
            f"https://{_key(hostname)} also serves {mounts}, which mcpgate did not set: Funnel publishes "
            f"every mount of a port, so {mounts} would be on the internet; move it to another port "
            f"(e.g. tailscale serve --bg --https=8443 --set-path={others[0]} <target>) or remove it "
            f"(tailscale serve --https={FUNNEL_PORT} --set-path={others[0]} off), then deploy again"
        )
    return None


def funnel_commands(
    serve: dict[str, Any] | None,
    hostname: str,
    ingress_port: int,
    funnel: bool,
) -> list[list[str]]:
    """The tailscale commands that bring mcpgate's own entry to what the inventory says (none: it
    already is); an MCPGateError when that cannot be done without touching a person's entries.
    Turning Funnel on also needs the node's capabilities (:func:`funnel_unavailable`).
    """
    if funnel and funnel_matches(serve, hostname, ingress_port):
        return []
    if not funnel and not (_funnel_on(serve, hostname) and _serves_ingress(serve, hostname, ingress_port)):
        return []
    problem = _foreign_problem(serve, hostname)
    if problem:
        raise MCPGateError(problem)
    if not funnel:
        return [["tailscale", "serve", f"--https={FUNNEL_PORT}", f"--set-path={MOUNT}", "off"]]
    return [["tailscale", "funnel", "--bg", "--yes", f"--https={FUNNEL_PORT}", funnel_target(ingress_port)]]


def funnel_noop(serve: dict[str, Any] | None, hostname: str, funnel: bool) -> str:
    """Why nothing was done (for ``host.noop``)."""
    if funnel:
        return "funnel already serves the ingress"
    if _funnel_on(serve, hostname):
        return f"funnel is off for mcpgate (Funnel on https://{_key(hostname)} serves no mount of mcpgate's)"
    return "funnel is off"
