"""One home host: the whole stack, public through Tailscale Funnel.

Replace the SSH target, the Funnel name (<node>.<tailnet>.ts.net, see `tailscale status`), the
user and the Home Assistant URL with yours, then:

    printf %s "$TS_AUTHKEY" | mcpgate secrets set inventory/home.py tailscale-auth-key
    printf %s "$HA_TOKEN"   | mcpgate secrets set inventory/home.py home-assistant-token
    mcpgate check inventory/home.py
    pyinfra -y inventory/home.py deploy.py
"""

# Module-level names without a leading "_" are host groups to pyinfra: keep helpers private.
from mcpgate.model import CLAUDE_REDIRECT_URIS as _CLAUDE_CALLBACKS

home = [
    (
        "gateway.lan",
        {
            "ssh_user": "admin",
            "_sudo": True,
            "mcpgate": {
                # The node's MagicDNS name: Funnel serves https://<this>/ to the ingress.
                "hostname": "mcp-gateway.example-tailnet.ts.net",
                "users": [
                    {"name": "alice", "display_name": "Alice", "email": "alice@example.org"},
                ],
                # Scopes are data: a consent screen shows each description.
                "scopes": {
                    "notes:read": "Search and read notes in the vault",
                    "notes:write": "Create, change and delete notes in the vault",
                    "home:control": "Control Home Assistant devices",
                    "sandbox:run": "Run code in the sandbox",
                },
                "backends": [
                    {
                        "name": "notes",
                        "description": "Obsidian-style Markdown vault",
                        "build": "notes-vault",
                        "port": 8080,
                        "user": "1000:1000",  # owner of the vault folder on the host
                        "volumes": [{"source": "/srv/notes", "target": "/vault"}],
                        "tools": {
                            "notes:read": ["search", "read"],
                            "notes:write": ["write", "delete"],
                        },
                    },
                    {
                        # Home Assistant's built-in MCP server; the gateway adds the token.
                        "name": "home-assistant",
                        "url": "http://homeassistant.lan:8123/api/mcp",
                        "token_secret": "home-assistant-token",
                        # Its token crosses the LAN in clear over http://: use https:// if Home
                        # Assistant has TLS; otherwise this says you accept that on your LAN.
                        "allow_plain_http": True,
                        "scope": "home:control",
                    },
                    {
                        # Declared but off: see "A code sandbox" in the README before enabling.
                        "name": "sandbox",
                        "enabled": False,
                        "image": "ghcr.io/example/mcp-code-sandbox:0.4.2",
                        "port": 8000,
                        "limits": {"memory": "512m", "cpus": 1.0, "pids": 128},
                        "tools": {"sandbox:run": ["run_python"]},
                    },
                ],
                # Daily restic snapshots of the host's state (Authelia's database, the notes vault) onto a
                # USB disk mounted here; "sftp:user@nas:/backups/mcpgate" or "s3:https://..." work too.
                # The secrets store beside the inventory is the other half of a restore: keep it safe.
                "backup": {"repository": "/mnt/backup/mcpgate"},
                "clients": [
                    {
                        "id": "claude-ai",
                        "name": "Claude.ai",
                        "redirect_uris": list(_CLAUDE_CALLBACKS),
                        "auth_method": "client_secret_post",
                        # Claude refreshes late: its access tokens live 8 hours unless set here
                        # (README: "Token lifetimes"), e.g. "access_token_lifespan": "12h".
                    },
                ],
            },
        },
    ),
]
