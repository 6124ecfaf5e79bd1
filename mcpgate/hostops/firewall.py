"""The host's firewall for egress backends (rules: :mod:`mcpgate.egress`): applied when the host's
chains differ from the rule set, restored at boot by a systemd unit, removed with the last egress
backend. Only the stack's own chains, jumps and unit are read or touched."""

from __future__ import annotations

import hashlib
from shlex import quote as _q
from typing import Any

from pyinfra.api import operation

from ..egress import DIGEST_MARK, EgressFirewall, removal_commands
from ..layout import FIREWALL_ROLES, SYSTEMD_UNIT_DIR, firewall_chain, firewall_unit
from . import snapshot
from .messages import noop_when_unchanged, say
from .snapshot import read_fact
from .system_facts import EgressFirewallState, FirewallState


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
@snapshot.changes_host("firewall")
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
    state: FirewallState = read_fact(EgressFirewallState, "firewall", lambda q: q.firewall == stack, stack=stack)
    unit = firewall_unit(stack)
    unit_path = f"{SYSTEMD_UNIT_DIR}/{unit}"
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
