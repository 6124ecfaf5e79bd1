"""Render every file the deploy places on a host: templates/ + the model + the secrets store.

Nothing else decides a file's content, and rendering twice with the same store gives the same
bytes. Paths are relative to the stack's base folder on the host (``stack.base_dir``).

Example::

    rendered = render_stack(stack, StackSecrets(store, stack))
    rendered.config("agentgateway").content   # agentgateway/config/config.yaml
"""

from __future__ import annotations

import posixpath

from . import layout
from .egress import egress_firewall
from .errors import SecretsError
from .layout import BACKENDS_DIR, backend_env_file, backend_secret_file
from .model import Stack
from .model.durations import duration_seconds
from .render_backup import render_backup
from .render_builds import build_files, build_image_tag, render_builds
from .render_services import render_agentgateway, render_authelia, render_ingress, render_redis
from .rendered import HostFile, Rendered, RenderInput, RenderOutput, template_environment
from .secrets import StackSecrets
from .users_db import desired_users

# Read here by bench/converge.py (the image tags a deploy builds), and the render's result by most.
__all__ = ["Rendered", "build_files", "build_image_tag", "render_stack"]


def render_stack(stack: Stack, secrets: StackSecrets, inventory: str = "INVENTORY", host: str = "") -> Rendered:
    """Everything the deploy writes under base_dir, in the order it is written."""
    given = RenderInput(stack, secrets, template_environment(), inventory, host)
    out = RenderOutput()
    render_redis(given, out)
    render_authelia(given, out)
    render_agentgateway(given, out)
    render_ingress(given, out)
    render_backend_secrets(given, out)
    render_firewall(given, out)
    units = render_backup(given, out)
    builds = render_builds(given, out)
    return Rendered(stack, out.dirs, out.files, builds, desired_users(stack, secrets), units, render_journal(given))


def render_journal(given: RenderInput) -> HostFile | None:
    """journald's drop-in with the inventory's retention, where the containers log to the journal."""
    stack = given.stack
    if stack.audit.logs != "journald":
        return None
    content = given.template("journald/journald.conf.j2", keep_seconds=int(duration_seconds(stack.audit.keep)))
    return HostFile(layout.journald_conf(stack.name), content.encode(), 0o644, "0:0", "", False)


def render_backend_secrets(given: RenderInput, out: RenderOutput) -> None:
    """Backends' own secrets: root-only folders; a file secret belongs to the backend's user (0400)
    and is bind-mounted; env secrets are one 0600 root file that docker reads when it creates the
    container, so no value is ever on a command line."""
    for b in given.stack.enabled_backends:
        if not b.secrets:
            continue
        out.dir(BACKENDS_DIR)
        out.dir(posixpath.dirname(backend_env_file(b.name)), 0o700)
        env_lines = []
        for sec in b.secrets:
            value = given.token(sec.name)
            if sec.file:
                path = backend_secret_file(b.name, sec.name)
                out.dir(posixpath.dirname(path), 0o700)
                assert b.user is not None  # the model requires it for file secrets
                out.file(path, value, mode=0o400, owner=b.user, service="", secret=True)
            else:
                if "\n" in value or "\r" in value:
                    raise SecretsError(
                        f"secret {sec.name!r} holds a line break; backend {b.name!r} takes it in the variable "
                        f"{sec.env}, which is one line: set it again without one, or mount it as a file"
                    )
                env_lines.append(f"{sec.env}={value}\n")
        if env_lines:
            out.file(backend_env_file(b.name), "".join(env_lines), mode=0o600, owner="0:0", service="", secret=True)


def render_firewall(given: RenderInput, out: RenderOutput) -> None:
    """The script that keeps egress backends to the internet (none without one): root's alone."""
    firewall = egress_firewall(given.stack)
    if firewall is None:
        return
    folder = posixpath.dirname(layout.EGRESS_FIREWALL_SCRIPT)
    out.dir(folder, 0o700)
    out.file(layout.EGRESS_FIREWALL_SCRIPT, firewall.script(), mode=0o700, owner="0:0", service="", secret=False)
