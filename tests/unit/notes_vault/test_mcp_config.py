"""Configuration from the environment and the Host-header (DNS-rebinding) policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from notes_vault.server import HEALTH_PATH, MCP_PATH, Config, create_app
from notes_vault.vault import Limits


def test_defaults() -> None:
    cfg = Config.from_env({})
    assert (cfg.root, cfg.host, cfg.port) == ("/vault", "0.0.0.0", 8080)
    assert cfg.allowed_hosts == ()
    assert cfg.limits == Limits()
    assert cfg.log_level == "INFO"


def test_everything_from_env() -> None:
    cfg = Config.from_env(
        {
            "NOTES_VAULT_ROOT": "/srv/notes",
            "NOTES_VAULT_HOST": "127.0.0.1",
            "NOTES_VAULT_PORT": "9000",
            "NOTES_VAULT_ALLOWED_HOSTS": "notes:8080, notes:*,,",
            "NOTES_VAULT_ALLOWED_ORIGINS": "https://gw.example",
            "NOTES_VAULT_MAX_READ_BYTES": "10",
            "NOTES_VAULT_MAX_WRITE_BYTES": "20",
            "NOTES_VAULT_SEARCH_MAX_FILE_BYTES": "30",
            "NOTES_VAULT_SEARCH_MAX_FILES": "40",
            "NOTES_VAULT_SEARCH_TIMEOUT": "1.5",
            "NOTES_VAULT_LOG_LEVEL": "debug",
        }
    )
    assert (cfg.root, cfg.host, cfg.port) == ("/srv/notes", "127.0.0.1", 9000)
    assert cfg.allowed_hosts == ("notes:8080", "notes:*")
    assert cfg.allowed_origins == ("https://gw.example",)
    assert cfg.limits == Limits(
        max_read_bytes=10, max_write_bytes=20, search_max_file_bytes=30, search_max_files=40, search_timeout_s=1.5
    )
    assert cfg.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("NOTES_VAULT_PORT", "http"),
        ("NOTES_VAULT_PORT", "0"),
        ("NOTES_VAULT_MAX_READ_BYTES", "-1"),
        ("NOTES_VAULT_SEARCH_TIMEOUT", "0"),
        ("NOTES_VAULT_LOG_LEVEL", "chatty"),
    ],
)
def test_bad_values_are_rejected(key: str, value: str) -> None:
    with pytest.raises(ValueError):
        Config.from_env({key: value})


def test_host_check_is_off_by_default_even_on_loopback() -> None:
    """Without an allow-list the SDK would auto-enable a localhost-only check on 127.0.0.1."""
    sec = Config(host="127.0.0.1").transport_security()
    assert sec.enable_dns_rebinding_protection is False


def test_host_check_uses_the_configured_allow_list() -> None:
    sec = Config(allowed_hosts=("notes:8080",), allowed_origins=("https://x",)).transport_security()
    assert sec.enable_dns_rebinding_protection is True
    assert sec.allowed_hosts == ["notes:8080"]
    assert sec.allowed_origins == ["https://x"]


def test_app_routes(tmp_path: Path) -> None:
    app = create_app(Config(root=str(tmp_path)))
    paths = {getattr(route, "path", None) for route in app.routes}
    assert {MCP_PATH, HEALTH_PATH} <= paths
