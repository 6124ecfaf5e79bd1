"""What a backend with ``egress`` may reach: the host firewall rules the deploy owns.

An egress network is an ordinary Docker bridge: the host has an address on it and routes it to
every network the host is on. Without these rules the backend would reach every listener on the
host, the home LAN and the tailnet, and any local user could call its port with no token. The rules
keep it to the internet:

- forwarded traffic (``DOCKER-USER``, which Docker keeps across its restarts): from the bridge,
  replies, the destinations the inventory names (``egress_allow``), DNS (port 53: Docker's resolver
  forwards the backend's lookups from the backend's own namespace to the host's nameservers, often
  the home router) and the public internet go on; every private, tailnet (CGNAT), link-local,
  multicast or reserved address is refused. Into the bridge: replies only.
- to the host itself (``INPUT``), from the bridge: only the ``egress_allow`` destinations that are
  one of the host's own addresses; everything else is refused, whatever the address.
- from the host (``OUTPUT``) into the bridge: replies only, so no local user (nor root's programs)
  opens a connection to the backend's port.

IPv6 needs no rule: the stack's networks have no IPv6, and an egress backend runs with IPv6 off
(``container_specs``), so it has not even a link-local address towards the host.

The chains are the stack's own (``layout.firewall_chain``), named after it, so two stacks never
touch each other's rules; each begins with a rule that carries the digest of the whole rule set,
so the deploy tells "as wanted" from the chain's listing without parsing iptables' output. The
bridges are named by the deploy (``layout.egress_bridge``), so the rules exist before the networks
do: at boot they are restored before Docker starts any container.

Example::

    fw = egress_firewall(stack)
    fw.script()      # what the deploy runs, and the systemd unit at boot
    fw.rule_counts   # {"mcpgate-egress-fwd": 11, ...}: the chains' lengths when they are as wanted
"""

from __future__ import annotations

import hashlib
import ipaddress
import posixpath
from dataclasses import dataclass
from shlex import quote

from .layout import (
    EGRESS_FIREWALL_SCRIPT,
    FIREWALL_ROLES,
    egress_bridge,
    firewall_chain,
    firewall_unit,
)
from .model import Stack
from .model.addresses import EGRESS_BLOCKED

# The comment every chain starts with: the stack and the digest of its rule set.
DIGEST_MARK = "mcpgate-egress-digest:"


@dataclass(frozen=True)
class EgressFirewall:
    stack: str
    chains: dict[str, str]  # role (fwd, in, out) -> chain name
    rules: dict[str, list[str]]  # chain -> its rules, iptables arguments after "-A <chain>"
    script_path: str  # absolute, on the host
    unit: str

    @property
    def digest(self) -> str:
        text = "\n".join(f"{c} {r}" for c in sorted(self.rules) for r in self.rules[c])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _marked(self, chain: str) -> list[str]:
        mark = f'-m comment --comment "{DIGEST_MARK}{self.digest}"'
        return [mark, *self.rules[chain]]

    @property
    def rule_counts(self) -> dict[str, int]:
        """How many rules each chain holds when it is as wanted (the digest's rule included)."""
        return {chain: len(self._marked(chain)) for chain in self.rules}

    def restore_input(self) -> str:
        """iptables-restore input: each chain emptied and filled in one atomic commit (``--noflush``
        leaves every other chain alone)."""
        lines = ["*filter", *(f":{c} - [0:0]" for c in self.rules)]
        lines += [f"-A {c} {r}" for c in self.rules for r in self._marked(c)]
        return "\n".join([*lines, "COMMIT", ""])

    def script(self) -> str:
        """A shell script that makes the host's firewall as wanted, whatever it was: fill the chains,
        then jump to each from its built-in chain (first, so no host rule accepts before them)."""
        out = [
            "#!/bin/sh",
            f"# The egress firewall of mcpgate stack {self.stack}, written by its deploy (mcpgate/egress.py).",
            "# Run by the deploy and, at boot before Docker starts, by " + self.unit + ".",
            "set -eu",
            # Docker makes DOCKER-USER at its start and keeps one that exists.
            "iptables -w -n -L DOCKER-USER >/dev/null 2>&1 || iptables -w -N DOCKER-USER",
            "iptables-restore -w --noflush <<'RULES'",
            self.restore_input().rstrip("\n"),
            "RULES",
        ]
        for role, parent in FIREWALL_ROLES.items():
            chain = self.chains[role]
            out.append(f"iptables -w -C {parent} -j {chain} 2>/dev/null || iptables -w -I {parent} 1 -j {chain}")
        return "\n".join(out) + "\n"

    def unit_text(self) -> str:
        """The systemd unit that runs the script at boot, before Docker starts any container."""
        return (
            "[Unit]\n"
            f"Description=mcpgate stack {self.stack}: what its egress backends may reach\n"
            "DefaultDependencies=no\n"
            "After=local-fs.target\n"
            "Before=docker.service network-pre.target\n"
            "Wants=network-pre.target\n"
            "\n[Service]\n"
            "Type=oneshot\n"
            "RemainAfterExit=yes\n"
            f"ExecStart=/bin/sh {self.script_path}\n"
            "\n[Install]\n"
            "WantedBy=multi-user.target docker.service\n"
        )


def egress_firewall(stack: Stack) -> EgressFirewall | None:
    """The stack's egress rules, or None when no enabled backend has egress."""
    backends = [b for b in stack.enabled_backends if b.kind != "url" and b.egress]
    if not backends:
        return None
    chains = {role: firewall_chain(stack.name, role) for role in FIREWALL_ROLES}
    fwd: list[str] = []
    to_host: list[str] = []
    from_host: list[str] = []
    blocked = list(EGRESS_BLOCKED)
    # The stack's own pool is inside these; listed anyway should a pool ever be elsewhere.
    if not any(ipaddress.IPv4Network(stack.network_pool).subnet_of(ipaddress.IPv4Network(n)) for n in blocked):
        blocked.append(stack.network_pool)
    replies = "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
    for b in backends:
        bridge = egress_bridge(stack.name, b.name)
        fwd += [f"-o {bridge} {replies}", f"-o {bridge} -j REJECT"]
        fwd.append(f"-i {bridge} {replies}")
        for destination in b.egress_allow:
            address, port = destination.rsplit(":", 1)
            allow = f"-d {address}/32 -i {bridge} -p tcp -m tcp --dport {port} -j RETURN"
            fwd.append(allow)
            to_host.append(allow)
        fwd += [f"-i {bridge} -p {proto} -m {proto} --dport 53 -j RETURN" for proto in ("udp", "tcp")]
        fwd += [f"-d {net} -i {bridge} -j REJECT" for net in blocked]
        to_host.append(f"-i {bridge} -j REJECT")
        from_host += [f"-o {bridge} {replies}", f"-o {bridge} -j REJECT"]
    return EgressFirewall(
        stack=stack.name,
        chains=chains,
        rules={chains["fwd"]: fwd, chains["in"]: to_host, chains["out"]: from_host},
        script_path=posixpath.join(stack.base_dir, EGRESS_FIREWALL_SCRIPT),
        unit=firewall_unit(stack.name),
    )


def removal_commands(stack: str) -> list[str]:
    """Shell commands that take the stack's egress rules off the host (each succeeds when already gone)."""
    out = []
    for role, parent in FIREWALL_ROLES.items():
        chain = quote(firewall_chain(stack, role))
        out.append(
            f"while iptables -w -D {parent} -j {chain} 2>/dev/null; do :; done; "
            f"if iptables -w -n -L {chain} >/dev/null 2>&1; then iptables -w -F {chain} && iptables -w -X {chain}; fi"
        )
    return out
