"""Decisions the deploy takes from `tailscale status --json` and `tailscale funnel status --json`.

These check the decisions on the JSON shapes tailscale prints (read in v1.102.5's ipn/serve.go);
tests/e2e/test_tailnet.py runs them against a real tailscaled joined to headscale.
"""

from __future__ import annotations

import copy

import pytest

from mcpgate.errors import InventoryError, MCPGateError
from mcpgate.model import load_stack
from mcpgate.secrets import StackSecrets
from mcpgate.tailscale_node import (
    backend_running,
    funnel_commands,
    funnel_matches,
    funnel_target,
    funnel_unavailable,
    node_name,
)
from tests.conftest import BASE_STACK

HOST = "mcp-gateway.example-tailnet.ts.net"


def _funnel(proxy: str = "http://127.0.0.1:8088", allow: bool = True, mounts: tuple[str, ...] = ("/",)) -> dict:
    return {
        "TCP": {"443": {"HTTPS": True}},
        "Web": {f"{HOST}:443": {"Handlers": {m: {"Proxy": proxy} for m in mounts}}},
        "AllowFunnel": {f"{HOST}:443": allow},
    }


def test_status() -> None:
    running = {"BackendState": "Running", "Self": {"DNSName": f"{HOST}."}}
    assert backend_running(running) and node_name(running) == HOST
    assert not backend_running({"BackendState": "NeedsLogin", "Self": {"DNSName": ""}})
    assert not backend_running(None) and node_name(None) is None


def test_funnel_matches_only_the_exact_wanted_state() -> None:
    assert funnel_target(8088) == "http://127.0.0.1:8088"
    assert funnel_matches(_funnel(), HOST, 8088)
    assert not funnel_matches(_funnel(), HOST, 9000)  # another ingress port
    assert not funnel_matches(_funnel(allow=False), HOST, 8088)  # served on the tailnet only
    assert not funnel_matches(_funnel(mounts=("/", "/mcp")), HOST, 8088)  # a sub-path mount strips prefixes
    assert not funnel_matches(_funnel(mounts=("/mcp",)), HOST, 8088)
    assert not funnel_matches(_funnel(), "other.example-tailnet.ts.net", 8088)
    assert not funnel_matches({}, HOST, 8088) and not funnel_matches(None, HOST, 8088)
    no_tls = _funnel()
    no_tls["TCP"] = {"443": {"HTTPS": False}}
    assert not funnel_matches(no_tls, HOST, 8088)


ON = ["tailscale", "funnel", "--bg", "--yes", "--https=443", "http://127.0.0.1:8088"]
OFF = ["tailscale", "serve", "--https=443", "--set-path=/", "off"]


def test_funnel_commands_touch_only_mcpgates_mount() -> None:
    foreign = {"TCP": {"5432": {"TCPForward": "127.0.0.1:5432"}}}
    assert funnel_commands(None, HOST, 8088, True) == [ON]
    assert funnel_commands(foreign, HOST, 8088, True) == [ON]  # no reset: theirs stays
    assert funnel_commands(_funnel(proxy="http://127.0.0.1:8080"), HOST, 8088, True) == [ON]
    assert funnel_commands(_funnel(), HOST, 8088, True) == []
    # Never a reset, whatever the state.
    for state in (None, {}, foreign, _funnel(), _funnel(allow=False)):
        for funnel in (True, False):
            for command in funnel_commands(state, HOST, 8088, funnel):
                assert "reset" not in command


def test_funnel_false_turns_mcpgates_funnel_off() -> None:
    assert funnel_commands(_funnel(), HOST, 8088, False) == [OFF]
    with_theirs = {**_funnel(), "TCP": {"443": {"HTTPS": True}, "5432": {"TCPForward": "127.0.0.1:5432"}}}
    assert funnel_commands(with_theirs, HOST, 8088, False) == [OFF]
    assert funnel_commands({}, HOST, 8088, False) == []
    assert funnel_commands(None, HOST, 8088, False) == []
    assert funnel_commands(_funnel(allow=False), HOST, 8088, False) == []  # tailnet only: not Funnel
    assert funnel_commands(_funnel(proxy="http://127.0.0.1:3000"), HOST, 8088, False) == []  # not ours


@pytest.mark.parametrize("funnel", [True, False])
def test_funnel_refuses_to_publish_or_erase_a_persons_mount(funnel: bool) -> None:
    with pytest.raises(MCPGateError, match=r"also serves /admin, which mcpgate did not set.*--set-path=/admin off"):
        funnel_commands(_funnel(mounts=("/", "/admin")), HOST, 8088, funnel)
    with pytest.raises(MCPGateError, match=r"forwards TCP to 127\.0\.0\.1:22"):
        funnel_commands({"TCP": {"443": {"TCPForward": "127.0.0.1:22"}}}, HOST, 8088, True)


def test_funnel_unavailable_names_the_missing_capabilities() -> None:
    ports = "https://tailscale.com/cap/funnel-ports?ports=443"
    granted = {"Self": {"CapMap": {"https": None, "funnel": None, ports: None}}}
    assert funnel_unavailable(granted) is None
    assert funnel_unavailable({"Self": {"Capabilities": ["https", "funnel"]}}) is None  # the older field
    problem = funnel_unavailable({"Self": {"CapMap": {"https": None}}})
    assert problem and "'funnel' not granted" in problem and "tailscale.funnel = False" in problem
    problem = funnel_unavailable({"Self": {"CapMap": {}}})
    assert problem and "'https' and 'funnel' not granted" in problem


def test_optional_token_reports_a_damaged_key_as_damaged(secrets: StackSecrets) -> None:
    name = secrets.stack.tailscale.auth_key_secret
    assert secrets.optional_token(name, "gateway.lan") == (None, None)  # missing: None, no problem
    secrets.store.set(f"tokens/{name}", "  test-tailnet-auth-key-not-real\n")
    assert secrets.optional_token(name, "gateway.lan") == ("test-tailnet-auth-key-not-real", None)
    path = secrets.store._path(f"tokens/{name}")
    path.write_bytes(b"test key with spaces")
    key, problem = secrets.optional_token(name, "gateway.lan")
    assert key is None and problem and problem.startswith(f"damaged secret {path}") and "spaces" in problem
    path.write_bytes(b"\xff\xfe not text")
    key, problem = secrets.optional_token(name, "gateway.lan")
    assert key is None and problem and "damaged secret" in problem and "not UTF-8" in problem


def test_apt_source_and_login_server_are_checked_settings() -> None:
    data = copy.deepcopy(BASE_STACK)
    assert load_stack("gateway.lan", data).tailscale.apt_source is None  # default: Tailscale's repository
    data["tailscale"] = {
        "apt_source": " deb [trusted=yes] http://172.17.0.1:8080/ ./ ",
        "login_server": "http://172.17.0.1:8081",
    }
    ts = load_stack("gateway.lan", data).tailscale
    assert ts.apt_source == "deb [trusted=yes] http://172.17.0.1:8080/ ./"
    assert ts.login_server == "http://172.17.0.1:8081"
    data["tailscale"] = {"apt_source": "http://apt.lan/ ./\ndeb x", "login_server": "headscale.lan"}
    with pytest.raises(InventoryError) as err:
        load_stack("gateway.lan", data)
    assert "tailscale.apt_source: apt_source" in str(err.value) and "one apt source line" in str(err.value)
    assert "tailscale.login_server: login_server 'headscale.lan'" in str(err.value)
