"""Tailscale on the host: the node joins the tailnet once, and Funnel serves https://<node>/ to the ingress."""

from __future__ import annotations

import json
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, operation

from ..errors import MCPGateError
from ..tailscale_node import backend_running, funnel_commands, funnel_noop, funnel_unavailable, node_name
from .messages import noop_when_unchanged, refuse
from .shell import shell_command
from .upload import finish_private_upload, prepare_private_uploads, private_upload, staging_dir

AUTH_KEY_FILE = "/run/mcpgate-tailscale-authkey"  # tmpfs, root only (0600 from creation), removed right after use


class TailscaleStatus(FactBase):
    """``tailscale status --json`` (``what="status"``) or ``tailscale funnel status --json``
    (``what="funnel"``), parsed; None when tailscale says nothing readable."""

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "tailscale"

    def command(self, what: str) -> str:
        args = {"status": "status --json", "funnel": "funnel status --json"}[what]
        return f"tailscale {args} 2>/dev/null || true"

    def process(self, output: list[str]) -> dict[str, Any] | None:
        text = "\n".join(output).strip()
        try:
            return json.loads(text) if text else None
        except json.JSONDecodeError:
            return None

    def default(self) -> None:
        return None


@operation()
@noop_when_unchanged()
def tailscale_up(
    auth_key: str | None,
    hostname: str,
    base_dir: str,
    key_problem: str | None = None,
    login_server: str | None = None,
):
    """
    Join the tailnet, only when the node is not already running.

    ``auth_key`` is None when the store has none; ``key_problem`` says why the store's key cannot be
    used (damaged), and is reported only when the key is needed. ``login_server``: a control server
    other than Tailscale's (``--login-server``), e.g. headscale.

    The key goes to a root-only file that ``tailscale up --auth-key=file:<path>`` reads and that is
    removed right after: uploaded privately (staged in base_dir's private upload folder, both files
    created 0600 under umask 077 before a byte is written; see ``prepare_private_uploads``), so it
    is never readable by another user, never on a command line and never in pyinfra's output.

    **Example:**

    .. code:: python

        tailscale_up(name="tailscale up (once)", auth_key="tskey-auth-...",
                     hostname="gateway.example-tailnet.ts.net", base_dir="/opt/mcpgate")
    """
    status = host.get_fact(TailscaleStatus, what="status")
    if backend_running(status):
        name = node_name(status)
        if name != hostname:
            yield refuse(
                f"this node is {name} on the tailnet, but the inventory's hostname is {hostname}; "
                "the issuer and cookies would not match. Fix hostname in the inventory."
            )
            return
        return "tailscale is running"
    if key_problem is not None:
        yield refuse(f"tailscale is not logged in and the store's auth key cannot be used: {key_problem}")
        return
    if auth_key is None:
        yield refuse("tailscale is not logged in and the store has no auth key (mcpgate secrets set ...)")
        return
    upload_dir = staging_dir(base_dir)
    yield prepare_private_uploads(upload_dir, [AUTH_KEY_FILE])
    yield private_upload(auth_key.encode(), AUTH_KEY_FILE, upload_dir)
    node = hostname.split(".", 1)[0]
    server = [f"--login-server={login_server}"] if login_server else []
    up = shell_command("tailscale", "up", f"--auth-key=file:{AUTH_KEY_FILE}", f"--hostname={node}", *server)
    yield f"{up}; rc=$?; rm -f {AUTH_KEY_FILE}; {finish_private_upload(upload_dir, AUTH_KEY_FILE)}; exit $rc"


@operation()
@noop_when_unchanged()
def tailscale_funnel(hostname: str, ingress_port: int, funnel: bool = True):
    """
    Funnel on 443 to the ingress (``funnel``), or mcpgate's Funnel off; only mcpgate's own entry,
    the mount ``/`` of ``https://<hostname>:443``, is ever changed (see :mod:`mcpgate.tailscale_node`).
    Changed only when ``tailscale funnel status --json`` differs.

    **Example:**

    .. code:: python

        tailscale_funnel(name="Funnel 443 -> ingress", hostname="gateway.example-tailnet.ts.net",
                         ingress_port=8088, funnel=True)
    """
    serve = host.get_fact(TailscaleStatus, what="funnel")
    try:
        commands = funnel_commands(serve, hostname, ingress_port, funnel)
    except MCPGateError as err:
        yield refuse(str(err))
        return
    if not commands:
        return funnel_noop(serve, hostname, funnel)
    if funnel:
        # Asked before the CLI, which without them fails or, on a tailnet that could enable Funnel
        # interactively, prints a URL and exits 0 having set nothing.
        problem = funnel_unavailable(host.get_fact(TailscaleStatus, what="status"))
        if problem:
            yield refuse(problem)
            return
    for command in commands:
        yield shell_command(*command)
