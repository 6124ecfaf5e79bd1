"""Facts about the host itself that the snapshot (:mod:`.snapshot`) also gathers: the stack's egress
firewall (chains, jumps, boot unit) and the backup's tools, units and timer. Kept apart from the
operations that use them (:mod:`.firewall`, :mod:`.restic`) so that the snapshot can name them
without importing those operations, which read the snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from shlex import quote as _q

from pyinfra.api import FactBase

from ..layout import FIREWALL_ROLES, SYSTEMD_UNIT_DIR, firewall_chain, firewall_unit


@dataclass(frozen=True)
class FirewallState:
    # chain -> its rules as ``iptables -S`` lists them ("-A ..." lines); absent: no such chain
    chains: dict[str, list[str]]
    jumps: frozenset[tuple[str, str]]  # (built-in chain, the stack's chain it jumps to)
    systemd: bool  # the host runs systemd (restoring at boot is its unit's job)
    unit_sha256: str | None  # of the stack's unit file, if there is one
    unit_enabled: bool


_SECTION = "@@mcpgate-firewall:"


class EgressFirewallState(FactBase):
    """The stack's egress chains, the jumps to them, and its systemd unit."""

    def command(self, stack: str) -> str:
        unit = _q(f"{SYSTEMD_UNIT_DIR}/{firewall_unit(stack)}")
        parts = ["if command -v iptables >/dev/null 2>&1; then"]
        for role, parent in FIREWALL_ROLES.items():
            chain = _q(firewall_chain(stack, role))
            parts.append(f"echo {_SECTION}chain:{chain}; iptables -w -S {chain} 2>/dev/null;")
            parts.append(f"echo {_SECTION}jumps:{parent}; iptables -w -S {parent} 2>/dev/null | grep -e ' -j ' ;")
        parts.append("fi;")
        parts.append(f"[ -d /run/systemd/system ] && echo {_SECTION}systemd;")
        parts.append(f"echo {_SECTION}unit; [ -f {unit} ] && sha256sum {unit} | cut -d' ' -f1;")
        parts.append(f"echo {_SECTION}enabled; systemctl is-enabled {_q(firewall_unit(stack))} 2>/dev/null;")
        return " ".join(parts) + " true"

    def process(self, output: list[str]) -> FirewallState:
        sections: dict[str, list[str]] = {}
        current: list[str] = []
        for line in output:
            if line.startswith(_SECTION):
                current = sections.setdefault(line[len(_SECTION) :].strip(), [])
            else:
                current.append(line.strip())
        chains = {
            name.removeprefix("chain:"): [rule for rule in lines if rule.startswith("-A ")]
            for name, lines in sections.items()
            if name.startswith("chain:") and any(rule.startswith("-N ") for rule in lines)
        }
        jumps = {
            (name.removeprefix("jumps:"), rule.split(" -j ", 1)[1].split()[0])
            for name, lines in sections.items()
            if name.startswith("jumps:")
            for rule in lines
            if " -j " in rule
        }
        unit = [line for line in sections.get("unit", []) if line]
        enabled = [line for line in sections.get("enabled", []) if line]
        return FirewallState(
            chains=chains,
            jumps=frozenset(jumps),
            systemd="systemd" in sections,
            unit_sha256=unit[0] if unit else None,
            unit_enabled=bool(enabled) and enabled[0] == "enabled",
        )

    def default(self) -> FirewallState:
        return FirewallState({}, frozenset(), False, None, False)


BACKUP_PACKAGES = ("restic", "sqlite3")


@dataclass(frozen=True)
class BackupState:
    tools: frozenset[str]  # the commands of BACKUP_PACKAGES that are installed
    units: dict[str, str | None]  # unit file path -> sha256 of its content (None: absent)
    enabled: str  # systemctl is-enabled of the timer ("" when unknown)
    active: str  # systemctl is-active of the timer


class BackupHost(FactBase):
    """The backup's tools, unit files and timer on the host, in one command."""

    def command(self, units: list[str], timer: str) -> str:
        tools = " ".join(f"command -v {t} >/dev/null 2>&1 && echo C\\|{t};" for t in BACKUP_PACKAGES)
        files = " ".join(
            f"if [ -f {_q(u)} ]; then echo \"U|{u}|$(sha256sum < {_q(u)} | cut -d' ' -f1)\"; fi;" for u in units
        )
        t = _q(timer)
        return (
            f"{tools} {files} "
            f'echo "T|$(systemctl is-enabled {t} 2>/dev/null)|$(systemctl is-active {t} 2>/dev/null)"; true'
        )

    def process(self, output: list[str]) -> BackupState:
        tools: set[str] = set()
        units: dict[str, str | None] = {}
        enabled = active = ""
        for line in output:
            kind, _, rest = line.strip().partition("|")
            if kind == "C":
                tools.add(rest)
            elif kind == "U":
                path, _, digest = rest.rpartition("|")
                units[path] = digest
            elif kind == "T":
                enabled, _, active = rest.partition("|")
        return BackupState(frozenset(tools), units, enabled, active)

    def default(self) -> BackupState:
        return BackupState(frozenset(), {}, "", "")
