"""The whole stack on the machine you are on: Tailscale off, the ingress on 127.0.0.1:8088.

A newcomer's first try, and what the end-to-end tests deploy:

    pyinfra -y inventory/local.py deploy.py
    curl -s -H 'Host: mcp-gateway.home.test' http://127.0.0.1:8088/.well-known/openid-configuration

Images can be swapped for locally built ones with MCPGATE_IMAGE_{REDIS,AUTHELIA,AGENTGATEWAY,INGRESS}
and MCPGATE_PYTHON_BASE_IMAGE (the test harness does; see tests/harness). With MCPGATE_SSH_PORT set
the machine is reached over SSH on 127.0.0.1 instead of pyinfra's @local connector.
"""

import os as _os

from mcpgate.model import CLAUDE_REDIRECT_URIS as _CLAUDE_CALLBACKS
from mcpgate.model import Images as _Images

_defaults = _Images()
_images = {
    name: _os.environ.get(f"MCPGATE_IMAGE_{name.upper()}", getattr(_defaults, name))
    for name in ("redis", "authelia", "agentgateway", "ingress")
}

_stack = {
    "hostname": _os.environ.get("MCPGATE_LOCAL_HOSTNAME", "mcp-gateway.home.test"),
    "name": _os.environ.get("MCPGATE_LOCAL_NAME", "mcpgate"),
    "base_dir": _os.environ.get("MCPGATE_LOCAL_BASE_DIR", "/opt/mcpgate"),
    "ingress_port": int(_os.environ.get("MCPGATE_LOCAL_PORT", "8088")),
    **(
        {"network_pool": _os.environ["MCPGATE_LOCAL_NETWORK_POOL"]}
        if _os.environ.get("MCPGATE_LOCAL_NETWORK_POOL")
        else {}
    ),
    "images": _images,
    "docker": {"install": _os.environ.get("MCPGATE_DOCKER_INSTALL", "debian")},
    "tailscale": {"enabled": False},
    # Docker's own log files: the machine you try it on (and the tests' machine) may have no systemd
    # journal, which audit.logs' default "journald" needs (README: The audit trail).
    "audit": {"logs": _os.environ.get("MCPGATE_LOCAL_LOGS", "docker")},
    "users": [
        {"name": "alice", "display_name": "Alice", "email": "alice@example.org", "groups": ["admins"]},
        {"name": "bob", "display_name": "Bob", "email": "bob@example.org", "groups": ["family"]},
    ],
    # Who may use which scope's tools: Bob reads the vault, only Alice changes it.
    "groups": {"admins": ["notes:read", "notes:write"], "family": ["notes:read"]},
    "scopes": {
        "notes:read": "Search and read notes in the vault",
        "notes:write": "Create, change and delete notes in the vault",
    },
    "backends": [
        {
            "name": "notes",
            "description": "Obsidian-style Markdown vault",
            "build": "notes-vault",
            "base_image": _os.environ.get("MCPGATE_PYTHON_BASE_IMAGE", "python:3.12.14-slim-bookworm"),
            "port": 8080,
            "user": "10001:10001",
            "volumes": [
                {"source": _os.environ.get("MCPGATE_LOCAL_VAULT", "/var/lib/mcpgate-notes"), "target": "/vault"}
            ],
            "tools": {"notes:read": ["search", "read"], "notes:write": ["write", "delete"]},
        },
    ],
    "clients": [
        {"id": "claude-ai", "name": "Claude.ai", "redirect_uris": list(_CLAUDE_CALLBACKS)},
        {
            # MCP Inspector / Claude Code style: a public client on a loopback callback, PKCE only,
            # whose tools are limited to reading whoever signs in.
            "id": "mcp-inspector",
            "name": "MCP Inspector",
            "redirect_uris": ["http://localhost:6274/oauth/callback"],
            "auth_method": "none",
            "scopes": ["notes:read"],
        },
    ],
}

if _os.environ.get("MCPGATE_SSH_PORT"):
    local = [
        (
            "127.0.0.1",
            {
                "ssh_port": int(_os.environ["MCPGATE_SSH_PORT"]),
                "ssh_user": _os.environ.get("MCPGATE_SSH_USER", "root"),
                "ssh_key": _os.environ.get("MCPGATE_SSH_KEY"),
                "ssh_known_hosts_file": _os.environ.get("MCPGATE_SSH_KNOWN_HOSTS"),
                "ssh_strict_host_key_checking": "yes",
                "mcpgate": _stack,
            },
        )
    ]
else:
    local = [("@local", {"mcpgate": _stack})]
