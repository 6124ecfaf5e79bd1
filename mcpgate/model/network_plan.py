"""The stack's networks and their subnets: which networks its containers join, carved from the pool.

Part of the model: the stack's checks (:mod:`mcpgate.model.stack_checks`) ask whether the pool has
room for them, the deploy creates them (:func:`mcpgate.hostops.engine.docker_networks`) and the
container specs join them by name.

Example::

    nets = stack_networks(stack)
    assign_subnets(stack.network_pool, nets, {})   # {"mcpgate-edge": IPv4Network("172.31.252.0/26"), ...}
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..layout import (
    BRIDGE_NAME_OPTION,
    LABEL_SERVICE,
    LABEL_STACK,
    NETWORK_SLOT_PREFIX,
    STACK_NETWORKS,
    backend_network,
    egress_bridge,
    egress_network,
    network_slots,
    stack_network,
)

if TYPE_CHECKING:
    from .stack_model import Stack


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    internal: bool  # no route out, and no address on the host
    pinned: bool = False  # the edge network: always the pool's first slot
    # The host interface's name, when the deploy names it (an egress network: its firewall rules
    # name the interface before the network exists); None lets Docker call it br-<id>.
    bridge: str | None = None

    def create_args(self, subnet: ipaddress.IPv4Network, stack: str) -> list[str]:
        """Arguments for ``docker network create``."""
        args = ["--driver", "bridge", "--label", f"{LABEL_SERVICE}=network", "--label", f"{LABEL_STACK}={stack}"]
        if self.bridge:
            args += ["--opt", f"{BRIDGE_NAME_OPTION}={self.bridge}"]
        # An explicit gateway: the edge network's is the address the ingress trusts.
        args += ["--subnet", str(subnet), "--gateway", str(next(subnet.hosts()))]
        if self.internal:
            # No gateway address on the host's side either: the host cannot reach Redis or a backend.
            args += ["--internal", "--opt", "com.docker.network.bridge.inhibit_ipv4=true"]
        return [*args, self.name]


def stack_networks(stack: Stack) -> list[NetworkSpec]:
    """Every network the stack's containers join."""
    nets = [
        NetworkSpec(stack_network(stack.name, net.role), internal=net.internal, pinned=net.role == "edge")
        for net in STACK_NETWORKS.values()
    ]
    for b in stack.enabled_backends:
        if b.kind != "url":
            nets.append(NetworkSpec(backend_network(stack.name, b.name), internal=True))
            if b.egress:
                bridge = egress_bridge(stack.name, b.name)
                nets.append(NetworkSpec(egress_network(stack.name, b.name), internal=False, bridge=bridge))
    return nets


def assign_subnets(
    pool: str, networks: list[NetworkSpec], existing: dict[str, str | None]
) -> dict[str, ipaddress.IPv4Network]:
    """A subnet for every wanted network: the pinned one gets the pool's first slot; a network
    that exists keeps its subnet while it is a free slot of the pool; a new one takes the first free slot.

    ``existing`` maps the names of networks on the host to their subnet. One the stack no longer
    wants still holds its subnet until it is removed (after the containers, at the end of the
    deploy): no new network may take it, or Docker refuses the overlap. Raises ``ValueError`` when
    the pool is full.
    """
    slots = network_slots(pool)
    wanted = {net.name for net in networks}
    taken: set[ipaddress.IPv4Network] = {slots[0]}
    taken |= {ipaddress.IPv4Network(s, strict=False) for name, s in existing.items() if s and name not in wanted}
    result: dict[str, ipaddress.IPv4Network] = {}
    for net in networks:
        if net.pinned:
            result[net.name] = slots[0]
    for net in networks:
        have = existing.get(net.name)
        if net.pinned or not have:
            continue
        subnet = ipaddress.IPv4Network(have, strict=False)
        if subnet in slots and subnet not in taken:
            result[net.name] = subnet
            taken.add(subnet)
    free = (s for s in slots if s not in taken)
    for net in networks:
        if net.name not in result:
            slot = next(free, None)
            if slot is None:
                raise ValueError(
                    f"network_pool {pool} has room for {len(slots) - 1} networks besides the edge one and the "
                    f"stack needs {len(networks) - 1}: give a larger pool (a /{NETWORK_SLOT_PREFIX} per network)"
                )
            result[net.name] = slot
            taken.add(slot)
    return result
