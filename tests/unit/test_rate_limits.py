"""Rate limits as rendered: Authelia counts failed sign-ins per client address, agentgateway caps /mcp."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from mcpgate.errors import InventoryError
from mcpgate.model import load_stack
from mcpgate.render import render_stack
from mcpgate.secrets import StackSecrets


def _configs(stack_data: dict[str, Any], secrets: StackSecrets) -> tuple[dict[str, Any], dict[str, Any]]:
    stack = load_stack("gateway.lan", stack_data)
    rendered = render_stack(stack, StackSecrets(secrets.store, stack))
    # Authelia's own template filter ({{ secret "..." }}) is left for Authelia: read around it.
    text = re.sub(r"\{\{.*?\}\}", "x", rendered.file("authelia/config/configuration.yml").content.decode())
    authelia = yaml.safe_load(text)
    gateway = yaml.safe_load(rendered.file("agentgateway/config/config.yaml").content)
    return authelia, gateway


def _mcp_route(gateway: dict[str, Any]) -> dict[str, Any]:
    routes = gateway["binds"][0]["listeners"][0]["routes"]
    return next(r for r in routes if r["name"] == "mcp")


def test_defaults(stack_data: dict[str, Any], secrets: StackSecrets) -> None:
    authelia, gateway = _configs(stack_data, secrets)
    assert authelia["regulation"] == {
        "modes": ["ip"],
        "max_retries": 5,
        "find_time": "10 minutes",
        "ban_time": "15 minutes",
    }
    assert _mcp_route(gateway)["policies"]["localRateLimit"] == [
        {"maxTokens": 200, "tokensPerFill": 20, "fillInterval": "1s"}
    ]


def test_the_inventory_sets_them(stack_data: dict[str, Any], secrets: StackSecrets) -> None:
    stack_data["rate_limits"] = {
        "sign_in_failures": 3,
        "sign_in_window": "5m",
        "sign_in_ban": 3600,
        "mcp_requests_per_second": 5,
        "mcp_burst": 50,
    }
    authelia, gateway = _configs(stack_data, secrets)
    assert authelia["regulation"] == {"modes": ["ip"], "max_retries": 3, "find_time": "5m", "ban_time": 3600}
    assert _mcp_route(gateway)["policies"]["localRateLimit"] == [
        {"maxTokens": 50, "tokensPerFill": 5, "fillInterval": "1s"}
    ]


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"mcp_burst": 0}, "rate_limits.mcp_burst"),
        ({"sign_in_failures": 0}, "rate_limits.sign_in_failures"),
        ({"sign_in_ban": "a while"}, "rate_limits.sign_in_ban"),
        ({"per_user": 3}, "rate_limits.per_user"),
    ],
)
def test_bad_limits_are_refused(stack_data: dict[str, Any], limits: dict[str, Any], message: str) -> None:
    stack_data["rate_limits"] = limits
    with pytest.raises(InventoryError, match=message):
        load_stack("gateway.lan", stack_data)
