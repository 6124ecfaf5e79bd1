"""The host's firewall for egress backends (rules: :mod:`mcpgate.egress`): applied when the host's
chains differ from the rule set, restored at boot by a systemd unit, removed with the last egress
backend. Only the stack's own chains, jumps and unit are read or touched."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from shlex import quote as _q
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, operation

from ..egress import DIGEST_MARK, EgressFirewall, removal_commands
from ..layout import FIREWALL_ROLES, firewall_chain, firewall_unit
from .messages import noop_when_unchanged, say

UNIT_DIR = "/etc/systemd/system"


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
        unit = _q(f"{UNIT_DIR}/{firewall_unit(stack)}")
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


def as_wanted(state: FirewallState, wanted: EgressFirewall) -> bool:
    for role, parent in FIREWALL_ROLES.items():
        chain = wanted.chains[role]
        rules = state.chains.get(chain)
        if rules is None or len(rules) != wanted.rule_counts[chain]:
            return False
        if f"{DIGEST_MARK}{wanted.digest}" not in rules[0]:
            return False
        if (parent, chain) not in state.jumps:
            return False
    return True


def _describe(args: dict[str, Any]) -> str:
    if args["wanted"] is None:
        return f"stack {args['stack']} has no egress backend, and no egress firewall on the host"
    return f"the egress firewall of stack {args['stack']} is in place ({args['wanted'].digest})"


@operation()
@noop_when_unchanged(_describe)
def egress_firewall(stack: str, wanted: EgressFirewall | None):
    """
    Keep the stack's egress backends to the internet (:mod:`mcpgate.egress`): run the rendered
    script when the host's chains or jumps differ from the rule set, and on a systemd host keep
    the unit that runs it at boot, before Docker starts. With no egress backend, remove the
    stack's chains and unit if an earlier deploy left them.

    **Example:**

    .. code:: python

        egress_firewall(stack="mcpgate", wanted=egress_firewall_rules(stack))
    """
    state: FirewallState = host.get_fact(EgressFirewallState, stack=stack)
    unit = firewall_unit(stack)
    unit_path = f"{UNIT_DIR}/{unit}"
    if wanted is None:
        ours = {firewall_chain(stack, role) for role in FIREWALL_ROLES}
        if set(state.chains) & ours or any(chain in ours for _, chain in state.jumps):
            yield from removal_commands(stack)
        if state.unit_sha256 is not None:
            yield f"systemctl disable {_q(unit)} 2>/dev/null; rm -f {_q(unit_path)} && systemctl daemon-reload"
        return
    if not as_wanted(state, wanted):
        yield f"sh {_q(wanted.script_path)}"
    if not state.systemd:
        say(
            f"no systemd on this host: the egress firewall is in place now, but nothing restores it at boot; "
            f"run {wanted.script_path} at boot before Docker starts"
        )
        return
    text = wanted.unit_text()
    if state.unit_sha256 != hashlib.sha256(text.encode()).hexdigest():
        yield f"umask 022 && printf %s {_q(text)} > {_q(unit_path)} && systemctl daemon-reload"
    if not state.unit_enabled:
        yield f"systemctl enable {_q(unit)}"
