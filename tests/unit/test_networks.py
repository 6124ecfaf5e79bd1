"""The stack's network layout as data: which container joins which network, and the subnets."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from mcpgate.container_specs import stack_containers
from mcpgate.errors import InventoryError
from mcpgate.model import Stack, load_stack
from mcpgate.model.network_plan import NetworkSpec, assign_subnets, stack_networks
from mcpgate.render import Rendered, render_stack
from mcpgate.secrets import SecretStore, StackSecrets


def _render(stack: Stack, store: SecretStore) -> Rendered:
    store.set("tokens/home-assistant-token", "ha-long-lived-token")
    return render_stack(stack, StackSecrets(store, stack))


def _layout(data: dict[str, Any], store: SecretStore) -> dict[str, list[str]]:
    stack = load_stack("h", data)
    rendered = _render(stack, store)
    return {c.service: [n.removeprefix("mcpgate-") for n in c.networks] for c in stack_containers(stack, rendered)}


def test_each_backend_shares_a_network_with_the_gateway_only(
    stack_data: dict[str, Any], filled_store: SecretStore
) -> None:
    stack_data["backends"].append(
        {"name": "sandbox", "image": "example/sandbox:1@sha256:" + "a" * 64, "port": 8000, "scope": "home:control"}
    )
    assert _layout(stack_data, filled_store) == {
        "redis": ["sessions"],
        "authelia": ["auth", "sessions"],
        "backend-notes": ["to-notes"],
        "backend-sandbox": ["to-sandbox"],
        "ingress": ["edge", "auth", "gateway"],
        # Home Assistant is a URL backend: reached through the edge network.
        "agentgateway": ["gateway", "to-notes", "to-sandbox", "edge"],
    }


def test_a_backend_with_egress_gets_a_way_out_of_its_own(stack_data: dict[str, Any], filled_store: SecretStore) -> None:
    stack_data["backends"][0]["egress"] = True
    assert _layout(stack_data, filled_store)["backend-notes"] == ["to-notes", "egress-notes"]
    nets = {n.name: n.internal for n in stack_networks(load_stack("h", stack_data))}
    assert nets["mcpgate-egress-notes"] is False
    assert nets["mcpgate-to-notes"] is True


def test_the_edge_network_is_the_pools_first_slot(stack_data: dict[str, Any]) -> None:
    stack = load_stack("h", stack_data)
    subnets = assign_subnets(stack.network_pool, stack_networks(stack), {})
    assert subnets["mcpgate-edge"] == ipaddress.IPv4Network("172.31.252.0/28")
    assert stack.edge_gateway_address == "172.31.252.1"
    assert len(set(subnets.values())) == len(subnets)
    assert all(s.subnet_of(ipaddress.IPv4Network(stack.network_pool)) for s in subnets.values())


def test_existing_networks_keep_their_subnets_and_new_ones_take_free_slots() -> None:
    nets = [NetworkSpec("edge", False, pinned=True), NetworkSpec("a", True), NetworkSpec("b", True)]
    # "b" exists on the second slot; "a" is new; "edge" exists outside the pool (an older layout).
    have = {"edge": "172.18.0.0/16", "b": "10.0.0.16/28"}
    subnets = assign_subnets("10.0.0.0/26", nets, have)
    assert {k: str(v) for k, v in subnets.items()} == {"edge": "10.0.0.0/28", "b": "10.0.0.16/28", "a": "10.0.0.32/28"}


def test_two_networks_never_share_a_slot() -> None:
    nets = [NetworkSpec("edge", False, pinned=True), NetworkSpec("a", True), NetworkSpec("b", True)]
    # Both claim the same slot (a hand-made network); the second moves.
    subnets = assign_subnets("10.0.0.0/26", nets, {"a": "10.0.0.16/28", "b": "10.0.0.16/28"})
    assert str(subnets["a"]) == "10.0.0.16/28"
    assert str(subnets["b"]) == "10.0.0.32/28"


def test_a_full_pool_is_refused_with_the_fix() -> None:
    nets = [NetworkSpec("edge", False, pinned=True), *(NetworkSpec(f"n{i}", True) for i in range(4))]
    with pytest.raises(ValueError, match=r"room for 3 networks .* needs 4: give a larger pool"):
        assign_subnets("10.0.0.0/26", nets, {})


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        ("172.31.252.0/33", "not an IPv4 network"),
        ("172.31.252.1/22", "host bits"),
        ("8.8.0.0/22", "not a private range"),
        ("127.0.0.0/22", "not a private range"),
        ("10.0.0.0/8", "/16 to /26"),
        ("10.0.0.0/28", "/16 to /26"),
    ],
)
def test_bad_network_pools_are_refused(stack_data: dict[str, Any], pool: str, message: str) -> None:
    stack_data["network_pool"] = pool
    with pytest.raises(InventoryError, match=message):
        load_stack("h", stack_data)


def test_a_changed_pool_recreates_every_container(stack_data: dict[str, Any], filled_store: SecretStore) -> None:
    """Networks are recreated on their new subnets; containers must then join them again."""
    before = load_stack("h", stack_data)
    after = load_stack("h", {**stack_data, "network_pool": "10.20.0.0/22"})
    old = {c.service: c.spec_hash for c in stack_containers(before, _render(before, filled_store))}
    new = {c.service: c.spec_hash for c in stack_containers(after, _render(after, filled_store))}
    assert all(old[s] != new[s] for s in old)


def test_an_inventory_that_needs_more_networks_than_its_pool_holds_is_refused(stack_data: dict[str, Any]) -> None:
    stack_data["network_pool"] = "10.9.0.0/26"  # 4 slots: the edge, sessions, auth, gateway
    with pytest.raises(InventoryError, match=r"network_pool 10.9.0.0/26 has room for 3 networks .* give a larger pool"):
        load_stack("h", stack_data)
