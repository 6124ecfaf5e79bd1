"""The egress firewall's rule set (mcpgate.egress), from the model alone; tests/e2e/test_network_isolation.py
runs it on real containers."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from mcpgate.egress import egress_firewall
from mcpgate.layout import EGRESS_FIREWALL_SCRIPT, egress_bridge, firewall_chain
from mcpgate.model import load_stack
from mcpgate.model.addresses import EGRESS_BLOCKED
from mcpgate.render import render_stack
from mcpgate.secrets import SecretStore, StackSecrets


@pytest.fixture(autouse=True)
def _complete_store(filled_store: SecretStore) -> None:
    """Each test's ``store`` starts as a copy of the session's complete one: these tests are about
    the egress firewall, not about generating keys and digests (a 3072-bit key, argon2id, pbkdf2 cost seconds)."""


def _egress(stack_data: dict[str, Any], allow: list[str]) -> Any:
    stack_data["backends"][0] |= {"egress": True, "egress_allow": allow}
    return load_stack("gateway.lan", stack_data)


def test_no_backend_with_egress_means_no_rules_and_no_script(stack_data: dict[str, Any], store: SecretStore) -> None:
    stack = load_stack("gateway.lan", stack_data)
    assert egress_firewall(stack) is None
    store.set("tokens/home-assistant-token", "ha-long-lived-token")
    rendered = render_stack(stack, StackSecrets(store, stack))
    assert not [f for f in rendered.files if f.path == EGRESS_FIREWALL_SCRIPT]


def test_every_private_range_is_refused_after_the_allowed_destinations(stack_data: dict[str, Any]) -> None:
    stack = _egress(stack_data, ["192.168.1.50:8123"])
    fw = egress_firewall(stack)
    assert fw is not None
    bridge = egress_bridge(stack.name, "notes")
    fwd = fw.rules[fw.chains["fwd"]]
    refused = [r.split()[1] for r in fwd if r.endswith("-j REJECT") and r.startswith("-d ")]
    assert refused == list(EGRESS_BLOCKED)
    assert ipaddress.IPv4Network(stack.network_pool).subnet_of(ipaddress.IPv4Network("172.16.0.0/12"))
    allow = f"-d 192.168.1.50/32 -i {bridge} -p tcp -m tcp --dport 8123 -j RETURN"
    assert fwd.index(allow) < fwd.index(f"-d 192.168.0.0/16 -i {bridge} -j REJECT")
    # Nothing new into the bridge; to the host only the allowed destination, then nothing.
    assert fwd[:2] == [f"-o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN", f"-o {bridge} -j REJECT"]
    assert fw.rules[fw.chains["in"]] == [allow, f"-i {bridge} -j REJECT"]
    assert fw.rules[fw.chains["out"]][-1] == f"-o {bridge} -j REJECT"


def test_a_changed_destination_changes_the_digest(stack_data: dict[str, Any]) -> None:
    first = egress_firewall(_egress(stack_data, ["192.168.1.50:8123"]))
    second = egress_firewall(_egress(stack_data, ["192.168.1.50:8124"]))
    assert first is not None and second is not None
    assert first.digest != second.digest
    assert f"mcpgate-egress-digest:{first.digest}" in first.restore_input()


def test_names_fit_the_kernels_limits() -> None:
    long = "a" * 63
    assert len(egress_bridge(long, "b" * 63)) <= 15
    for role in ("fwd", "in", "out"):
        assert len(firewall_chain(long, role)) <= 28
        assert firewall_chain("mcpgate", role) == f"mcpgate-egress-{role}"
    assert firewall_chain(long, "fwd") != firewall_chain("a" * 62, "fwd")


def test_the_egress_network_names_its_bridge(stack_data: dict[str, Any]) -> None:
    from mcpgate.model.network_plan import stack_networks

    stack = _egress(stack_data, [])
    net = next(n for n in stack_networks(stack) if n.name == "mcpgate-egress-notes")
    assert net.bridge == egress_bridge("mcpgate", "notes")
    assert f"com.docker.network.bridge.name={net.bridge}" in net.create_args(ipaddress.IPv4Network("10.0.0.0/28"), "x")
