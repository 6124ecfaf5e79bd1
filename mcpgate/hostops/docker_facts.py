"""What the host's Docker engine holds, read with the ``docker`` CLI: pyinfra facts, no operation.

The engine's version, the stack's containers, networks, volumes and images, and whether a container
is ready. The deploy gathers them in one round trip (:mod:`mcpgate.hostops.snapshot`); the
operations of :mod:`mcpgate.hostops.engine` decide from them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from shlex import quote as _q
from typing import Any

from pyinfra.api import FactBase

from ..layout import BRIDGE_NAME_OPTION, LABEL_SERVICE, LABEL_STACK


class EngineFact(FactBase):
    """A fact read with the ``docker`` CLI: the fact's default when the host has none."""

    abstract = True

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "docker"


class EngineVersion(EngineFact):
    """The running engine's version, or None when no engine answers."""

    def command(self) -> str:
        return "docker version --format '{{.Server.Version}}' 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        return output[0].strip() if output and output[0].strip() else None

    def default(self) -> None:
        return None


class StackContainers(EngineFact):
    """``docker inspect`` of every container mcpgate made (any stack's; names carry the stack's), by name."""

    def command(self) -> str:
        # A container removed between ps and inspect (another stack's, on a shared engine) makes
        # inspect fail after printing the others: its output is still the one JSON list.
        return (
            f"ids=$(docker ps -aq --filter label={LABEL_SERVICE} 2>/dev/null); "
            'if [ -n "$ids" ]; then docker inspect $ids 2>/dev/null || true; fi'
        )

    def process(self, output: list[str]) -> dict[str, Any]:
        text = "\n".join(output).strip()
        return {c["Name"].lstrip("/"): c for c in (json.loads(text) if text else [])}

    def default(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class NetworkInfo:
    internal: bool
    subnet: str | None
    containers: tuple[str, ...]  # names of the containers attached
    bridge: str | None = None  # the host interface's name, when the deploy gave it one


class StackNetworks(EngineFact):
    """The stack's networks (by its label) and any network with one of ``names``: whether each is
    internal, its IPv4 subnet and the containers attached. One command for all of them."""

    def command(self, stack: str, names: list[str]) -> str:
        label = _q(f"{LABEL_STACK}={stack}")
        quoted = " ".join(_q(n) for n in names)
        return (
            f"docker network inspect --format '{{{{json .}}}}' "
            f"$(docker network ls -q --filter label={label}) {quoted} 2>/dev/null; true"
        )

    def process(self, output: list[str]) -> dict[str, NetworkInfo]:
        nets: dict[str, NetworkInfo] = {}
        for line in output:
            line = line.strip()
            if not line.startswith("{"):
                continue
            net = json.loads(line)
            configs = (net.get("IPAM") or {}).get("Config") or []
            subnet = next((c["Subnet"] for c in configs if "." in c.get("Subnet", "")), None)
            attached = tuple(sorted(c.get("Name", "") for c in (net.get("Containers") or {}).values()))
            bridge = (net.get("Options") or {}).get(BRIDGE_NAME_OPTION)
            nets[net["Name"]] = NetworkInfo(bool(net.get("Internal")), subnet, attached, bridge)
        return nets

    def default(self) -> dict[str, NetworkInfo]:
        return {}


class ContainerReady(EngineFact):
    """Whether a container is ready: healthy, or running (and ``probe`` succeeds) without a healthcheck,
    or still ``starting`` with its own healthcheck (``own_check``) passing."""

    def command(self, container: str, probe: str | None = None, own_check: str | None = None) -> str:
        return f"if {ready_check(container, probe, own_check)}; then echo ready; else echo waiting; fi"

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[-1].strip() == "ready"

    def default(self) -> bool:
        return False


def ready_check(name: str, probe: str | None = None, own_check: str | None = None) -> str:
    """A shell condition that holds when the container is ready.

    ``own_check`` runs the container's own healthcheck while Docker still says ``starting``: Docker
    20.10 runs the first check only one interval (10 s) after a start, and has no start interval.
    """
    status = (
        "{{if .State.Health}}{{.State.Health.Status}}{{else if .State.Running}}running{{else}}{{.State.Status}}{{end}}"
    )
    s = f"s=$(docker inspect --format {_q(status)} {_q(name)} 2>/dev/null)"
    running = f'[ "$s" = running ] && {probe}' if probe else '[ "$s" = running ]'
    starting = f' || {{ [ "$s" = starting ] && {own_check}; }}' if own_check else ""
    return f'{{ {s}; [ "$s" = healthy ] || {{ {running}; }}{starting}; }}'


def own_healthcheck(name: str, command: str, timeout_seconds: int) -> str:
    """The shell that runs a container's CMD-SHELL healthcheck as Docker does (``/bin/sh -c``), bounded
    like Docker bounds it."""
    return f"timeout {timeout_seconds} docker exec {_q(name)} /bin/sh -c {_q(command)} >/dev/null 2>&1"


class StackVolumes(EngineFact):
    """For each named volume that exists: its mountpoint's owner and mode."""

    def command(self, names: list[str]) -> str:
        return _for_each(
            "n",
            names,
            "mp=$(docker volume inspect --format '{{.Mountpoint}}' \"$n\" 2>/dev/null) || continue; "
            'echo "$n|$(stat -c \'%u:%g|%a\' "$mp")|$mp"',
        )

    def process(self, output: list[str]) -> dict[str, tuple[str, int, str]]:
        out = {}
        for line in output:
            name, owner, mode, mountpoint = line.split("|", 3)
            out[name] = (owner, int(mode, 8), mountpoint)
        return out

    def default(self) -> dict[str, tuple[str, int, str]]:
        return {}


class VolumeStacks(EngineFact):
    """For each named volume that exists: the stack its label names ("" when it has none: a volume
    Docker made without the deploy, or one another program made)."""

    def command(self, names: list[str]) -> str:
        fmt = _q(f'{{{{.Name}}}}|{{{{index .Labels "{LABEL_STACK}"}}}}')
        body = f'docker volume inspect --format {fmt} "$n" 2>/dev/null'
        return f"{_for_each('n', names, body)}; true"

    def process(self, output: list[str]) -> dict[str, str]:
        out = {}
        for line in output:
            name, bar, stack = line.strip().partition("|")
            if bar:
                out[name] = "" if stack == "<no value>" else stack
        return out

    def default(self) -> dict[str, str]:
        return {}


class ImageIds(EngineFact):
    """The local image id of each given reference that exists."""

    def command(self, refs: list[str]) -> str:
        body = 'i=$(docker image inspect --format \'{{.Id}}\' "$r" 2>/dev/null) && echo "$r|$i"'
        return f"{_for_each('r', refs, body)}; true"

    def process(self, output: list[str]) -> dict[str, str]:
        return dict(line.strip().split("|", 1) for line in output if "|" in line)

    def default(self) -> dict[str, str]:
        return {}


def _for_each(var: str, values: list[str], body: str) -> str:
    """A shell loop running ``body`` with ``$var`` set to each of ``values`` (quoted)."""
    return f"for {var} in {' '.join(_q(v) for v in values)}; do {body}; done"


def volume_mountpoint(volume: str) -> str:
    """A shell expression: the mountpoint of the named volume."""
    return f"$(docker volume inspect --format '{{{{.Mountpoint}}}}' {_q(volume)})"
