"""Shared fixtures: a valid stack as inventory data, and a private secrets store per test."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from mcpgate.model import CLAUDE_REDIRECT_URIS, Stack, load_stack
from mcpgate.secrets import SecretStore, StackSecrets

PROJECT_ROOT = Path(__file__).resolve().parent.parent

BASE_STACK: dict[str, Any] = {
    "hostname": "mcp-gateway.example-tailnet.ts.net",
    "users": [{"name": "alice", "display_name": "Alice", "email": "alice@example.org"}],
    "scopes": {
        "notes:read": "Search and read notes",
        "notes:write": "Change notes",
        "home:control": "Control the house",
    },
    "backends": [
        {
            "name": "notes",
            "build": "notes-vault",
            "port": 8080,
            "user": "1000:1000",  # owns the vault folder it writes to
            "volumes": [{"source": "/srv/notes", "target": "/vault"}],
            "tools": {"notes:read": ["search", "read"], "notes:write": ["write", "delete"]},
        },
        {
            "name": "home-assistant",
            "url": "http://homeassistant.lan:8123/api/mcp",
            "token_secret": "home-assistant-token",
            "allow_plain_http": True,
            "scope": "home:control",
        },
    ],
    "clients": [{"id": "claude-ai", "name": "Claude.ai", "redirect_uris": list(CLAUDE_REDIRECT_URIS)}],
}


@pytest.fixture
def stack_data() -> dict[str, Any]:
    return copy.deepcopy(BASE_STACK)


@pytest.fixture
def stack(stack_data: dict[str, Any]) -> Stack:
    return load_stack("gateway.lan", stack_data)


@pytest.fixture
def store(tmp_path: Path) -> SecretStore:
    return SecretStore.for_host(tmp_path / "secrets", "gateway.lan")


@pytest.fixture(scope="session")
def signing_key_pem() -> str:
    """One RSA key for the whole session: generating a 3072-bit key per test costs seconds."""
    from mcpgate.secrets import _generate_rsa_pem

    return _generate_rsa_pem()


@pytest.fixture
def secrets(store: SecretStore, stack: Stack, signing_key_pem: str) -> StackSecrets:
    s = StackSecrets(store, stack)
    store.set("authelia/oidc_jwks_rs256.pem", signing_key_pem)
    store.set("tokens/home-assistant-token", "ha-long-lived-token")
    return s
