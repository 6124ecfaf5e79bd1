"""Tailscale: the node joins the tailnet once, and Funnel serves https://<node>/ to the ingress."""

import json
import posixpath
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, deploy, operation
from pyinfra.api.exceptions import PyinfraError
from pyinfra.operations import apt, files, server

from mcpgate.apt import TAILSCALE_KEYRING, tailscale_base, tailscale_source
from mcpgate.deploy import context_for, release_for
from mcpgate.errors import SecretsError
from mcpgate.funnel import backend_running, funnel_matches, funnel_target, node_name
from mcpgate.hostops import (
    UPLOAD_DIR,
    finish_private_upload,
    prepare_private_uploads,
    private_upload,
    shell_command,
)

AUTH_KEY_FILE = "/run/mcpgate-tailscale-authkey"  # tmpfs, root only (0600 from creation), removed right after use


class TailscaleJSON(FactBase):
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
def tailscale_up(auth_key: str | None, hostname: str, base_dir: str):
    """
    Join the tailnet, only when the node is not already running.

    The key goes to a root-only file that ``tailscale up --auth-key=file:<path>`` reads and that is
    removed right after: uploaded privately (staged in base_dir's private upload folder, both files
    created 0600 under umask 077 before a byte is written; see ``prepare_private_uploads``), so it
    is never readable by another user, never on a command line and never in pyinfra's output.
    """
    status = host.get_fact(TailscaleJSON, what="status")
    if backend_running(status):
        name = node_name(status)
        if name != hostname:
            raise PyinfraError(
                f"this node is {name} on the tailnet, but the inventory's hostname is {hostname}; "
                "the issuer and cookies would not match. Fix hostname in the inventory."
            )
        host.noop("tailscale is running")
        return
    if auth_key is None:
        raise PyinfraError("tailscale is not logged in and the store has no auth key (mcpgate secrets set ...)")
    upload_dir = posixpath.join(base_dir, UPLOAD_DIR)
    yield prepare_private_uploads(upload_dir, [AUTH_KEY_FILE])
    yield private_upload(auth_key.encode(), AUTH_KEY_FILE, upload_dir)
    node = hostname.split(".", 1)[0]
    up = shell_command("tailscale", "up", f"--auth-key=file:{AUTH_KEY_FILE}", f"--hostname={node}")
    yield f"{up}; rc=$?; rm -f {AUTH_KEY_FILE}; {finish_private_upload(upload_dir, AUTH_KEY_FILE)}; exit $rc"


@operation()
def tailscale_funnel(hostname: str, ingress_port: int):
    """Funnel on 443 to the ingress; changed only when ``tailscale funnel status --json`` differs."""
    if funnel_matches(host.get_fact(TailscaleJSON, what="funnel"), hostname, ingress_port):
        host.noop("funnel already serves the ingress")
        return
    yield shell_command("tailscale", "funnel", "reset")
    yield shell_command("tailscale", "funnel", "--bg", "--yes", "--https=443", funnel_target(ingress_port))


@deploy("Tailscale and Funnel")
def tailscale() -> None:
    ctx = context_for(host)
    ts = ctx.stack.tailscale
    release = release_for(host)
    files.download(
        name="Tailscale's apt signing key",
        src=f"{tailscale_base(release)}.noarmor.gpg",
        dest=TAILSCALE_KEYRING,
        mode="0644",
    )
    apt.repo(name="Tailscale's apt repository", src=tailscale_source(release), filename="tailscale")
    apt.packages(name="Install tailscale", packages=["tailscale"], update=True, cache_time=3600)
    server.service(name="tailscaled enabled and running", service="tailscaled", running=True, enabled=True)
    try:
        key = ctx.secrets.token(ts.auth_key_secret)
    except SecretsError:
        key = None
    tailscale_up(
        name="tailscale up (once)",
        auth_key=key.strip() if key else None,
        hostname=ctx.stack.hostname,
        base_dir=ctx.stack.base_dir,
    )
    if ts.funnel:
        tailscale_funnel(name="Funnel 443 -> ingress", hostname=ctx.stack.hostname, ingress_port=ctx.stack.ingress_port)
