"""What the host's Docker holds, as the operations of :mod:`mcpgate.hostops.engine` read it: from
the deploy's snapshot where its query covers what is asked, else as a fact of its own.
"""

from __future__ import annotations

from typing import Any

from pyinfra import host

from ..layout import LABEL_STACK
from . import snapshot
from .docker_facts import ContainerReady, ImageIds, NetworkInfo, StackContainers, StackNetworks
from .snapshot import read_fact


def read_containers() -> dict[str, Any]:
    return read_fact(StackContainers, "containers", lambda q: True)


def read_images(ref: str) -> dict[str, str]:
    return read_fact(ImageIds, "images", lambda q: ref in q.images, refs=[ref])


def read_networks(stack: str, names: list[str]) -> dict[str, NetworkInfo]:
    covered = lambda q: q.stack == stack and set(names) <= set(q.networks)  # noqa: E731
    return read_fact(StackNetworks, "networks", covered, stack=stack, names=names)


def is_ready(container: str, probe: str | None, own_check: str | None = None) -> bool:
    snap = snapshot.current(needs="ready" if probe else "containers")
    if snap is not None and probe is None:
        state = (read_containers().get(container) or {}).get("State") or {}
        health = (state.get("Health") or {}).get("Status")
        if health == "starting" and own_check:
            # Started less than an interval ago (a run right after a restart): its own check decides,
            # as it did for the run that started it.
            return host.get_fact(ContainerReady, container=container, probe=None, own_check=own_check)
        return health == "healthy" if health else bool(state.get("Running"))
    own = {"own_check": own_check} if own_check else {}
    covered = lambda q: (container, probe) in q.probes  # noqa: E731
    return read_fact(ContainerReady, f"ready:{container}", covered, container=container, probe=probe, **own)


def read_stack_containers(stack: str) -> dict[str, Any]:
    return {
        name: c
        for name, c in read_containers().items()
        if ((c.get("Config") or {}).get("Labels") or {}).get(LABEL_STACK) == stack
    }


def engine_version() -> str | None:
    """The running Docker engine's version, from the snapshot (None: no engine answers)."""
    snap = snapshot.current(needs="engine")
    if snap is None:
        raise RuntimeError("no snapshot registered for this host")
    lines = [line.strip() for line in snap.lines("engine") if line.strip()]
    return lines[0] if lines else None
