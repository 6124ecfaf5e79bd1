"""The stack's network layout, on real containers: no backend can go around the gateway, and a
backend with egress reaches the internet only.

Every container is created with the deploy's own ``docker create`` arguments and networks
(``ContainerSpec.run_args``, ``stack_networks``, ``NetworkSpec.create_args``), only its image swapped
for the harness' Python image running a listener on the service's real ports; the egress firewall
is the deploy's own script (``mcpgate.egress``), run on this machine. Then every container tries
every other one, by name and by each of its addresses; the egress backend tries the host, a private
address of a network namespace the test makes, and the one destination its inventory allows; the
host tries the backend as an unprivileged user. Needs only the Docker engine, iptables and the
harness' Python image, so it runs in CI. Everything it makes (containers, networks, the namespace
and its veth pair, the stack's firewall chains) is named after its own stack and removed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import runpy
import secrets as pysecrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mcpgate.container_specs import LABEL_STACK, ContainerSpec, stack_containers
from mcpgate.egress import EgressFirewall, egress_firewall, removal_commands
from mcpgate.hostops.firewall import EgressFirewallState, as_wanted
from mcpgate.layout import AUTHELIA, INGRESS, REDIS, agentgateway_port
from mcpgate.model import Stack, load_stack
from mcpgate.model.network_plan import assign_subnets, stack_networks
from mcpgate.render import render_stack
from mcpgate.secrets import SecretStore, StackSecrets
from tests.e2e.harness import PYTHON_BASE, docker, image_exists, random_network_pool

pytestmark = pytest.mark.skipif(
    os.environ.get("MCPGATE_E2E") != "1", reason="the test harness is not up (run the suite with bin/test as root)"
)

# Each listener says who it is: only that answer counts as reaching it (on these machines any
# connection that leaves through the host's default route is accepted by the outer network).
LISTENER = r"""
import socket, sys, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    while True:
        c, _ = s.accept(); c.sendall(sys.argv[1].encode() + b"\n"); c.close()
for p in sys.argv[2:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
threading.Event().wait()
"""

# Tries every target at once; prints what answered at each (null: nothing did).
PROBE = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def hello(target):
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1) as c:
            c.settimeout(1)
            return c.recv(64).decode().strip() or None
    except OSError:
        return None
targets = json.loads(sys.argv[1])
with ThreadPoolExecutor(32) as pool:
    print(json.dumps(dict(zip(targets, pool.map(hello, targets)))))
"""

# Who may open a connection to whom, written out by hand (not derived from the code under test).
# Sharing a network is symmetric, so each pair reaches both ways; every other pair must fail.
ALLOWED = {
    frozenset({"redis", "authelia"}),  # sessions
    frozenset({"authelia", "ingress"}),  # sign-in pages, discovery
    frozenset({"ingress", "agentgateway"}),  # /mcp
    frozenset({"agentgateway", "backend-notes"}),
    frozenset({"agentgateway", "backend-sandbox"}),
}


@dataclass(frozen=True)
class PrivateNet:
    """A network namespace of the test's, behind a veth pair: a private address the host routes to,
    as a LAN host would be, with one listener that the inventory allows and one it does not."""

    host_address: str  # the host's end of the veth pair: one of the host's own addresses
    address: str  # the namespace's end
    allowed_port: int
    refused_port: int


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def private_net() -> Iterator[PrivateNet]:
    if os.geteuid() != 0:
        pytest.skip("making a network namespace and the firewall's rules needs root (run the suite as root)")
    tag = pysecrets.token_hex(3)
    ns, outside, inside = f"mcpgate-it-{tag}", f"mgit{tag}h", f"mgit{tag}n"
    # Outside the harness' stack pools (10.64.0.0/10) and the default one; never a real network of the machine.
    base = f"10.{200 + pysecrets.randbelow(50)}.{pysecrets.randbelow(256)}.{4 * pysecrets.randbelow(64)}"
    octets = base.rsplit(".", 1)
    host_address, address = f"{octets[0]}.{int(octets[1]) + 1}", f"{octets[0]}.{int(octets[1]) + 2}"
    routes = subprocess.run(["ip", "-4", "route", "show", "to", "match", address], capture_output=True, text=True)
    if any(not line.startswith("default") for line in routes.stdout.splitlines() if line.strip()):
        pytest.skip(f"{address} is routed on this machine already: {routes.stdout.strip()}")
    ports = [_free_port(), _free_port()]
    listener = None
    try:
        _ip("netns", "add", ns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", ns)
        _ip("addr", "add", f"{host_address}/30", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("-n", ns, "addr", "add", f"{address}/30", "dev", inside)
        _ip("-n", ns, "link", "set", inside, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "route", "add", "default", "via", host_address)
        listener = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER, "netns", *(str(p) for p in ports)]
        )
        yield PrivateNet(host_address, address, *ports)
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        subprocess.run(["ip", "link", "del", outside], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def stack(private_net: PrivateNet) -> Stack:
    data = runpy.run_path("inventory/local.py")["local"][0][1]["mcpgate"]
    data = json.loads(json.dumps(data))
    data["name"] = f"mcpgate-test-{pysecrets.token_hex(4)}"
    data["network_pool"] = random_network_pool()
    data["backends"][0]["base_image"] = PYTHON_BASE
    data["scopes"]["sandbox:run"] = "Run code in the sandbox"
    data["groups"]["admins"].append("sandbox:run")
    # A second container backend, the one that goes out to the internet, and to one LAN listener.
    data["backends"].append(
        {
            "name": "sandbox",
            "image": PYTHON_BASE,
            "port": 8080,
            "scope": "sandbox:run",
            "egress": True,
            "egress_allow": [f"{private_net.address}:{private_net.allowed_port}"],
        }
    )
    return load_stack("isolation-test", data)


def _ports(stack: Stack, spec: ContainerSpec) -> list[int]:
    if spec.service == "redis":
        return [REDIS.port]
    if spec.service == "authelia":
        return [AUTHELIA.port]
    if spec.service == "ingress":
        return [INGRESS.port]
    if spec.service == "agentgateway":
        return [stack.gateway_port, agentgateway_port("readiness")]
    return [8080]


@dataclass
class Firewall:
    rules: EgressFirewall
    # What an unprivileged user on the host reached of the egress backend before the rules were in
    # place: proof that the probe sees the hole the rules close.
    reached_before: str | None


def _run_on_host(command: str) -> str:
    return subprocess.run(["sh", "-c", command], check=True, capture_output=True, text=True).stdout


def _as_nobody(targets: list[str]) -> dict[str, str | None]:
    """The probe, run on the host as an unprivileged user (uid 65534)."""
    out = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            PROBE,
            json.dumps(targets),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def running(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ContainerSpec]]:
    if not image_exists(PYTHON_BASE):
        pytest.skip(f"local image {PYTHON_BASE} is missing (tests/harness/build-images.sh)")
    store = SecretStore.for_host(tmp_path_factory.mktemp("isolation") / "secrets", "isolation-test")
    rendered = render_stack(stack, StackSecrets(store, stack))
    networks = stack_networks(stack)
    specs = {s.service: s for s in stack_containers(stack, rendered)}
    try:
        for net, subnet in assign_subnets(stack.network_pool, networks, {}).items():
            spec = next(n for n in networks if n.name == net)
            docker("network", "create", *spec.create_args(subnet, stack.name))
        for spec in specs.values():
            standin = dataclasses.replace(
                spec,
                image=PYTHON_BASE,
                entrypoint=["python3", "-c", LISTENER],
                command=[spec.service, *(str(p) for p in _ports(stack, spec))],
                mounts=[],
                ports=[],
                healthcheck=None,
                user="65534:65534",
            )
            docker("create", *standin.run_args())
            for network in spec.networks[1:]:
                docker("network", "connect", network, spec.name)
            docker("start", spec.name)
        yield specs
    finally:
        label = f"label={LABEL_STACK}={stack.name}"
        ids = docker("ps", "-aq", "--filter", label).stdout.split()
        if ids:
            docker("rm", "-fv", *ids, check=False)
        for net in docker("network", "ls", "-q", "--filter", label).stdout.split():
            docker("network", "rm", net, check=False)


@pytest.fixture(scope="module")
def firewall(stack: Stack, running: dict[str, ContainerSpec]) -> Iterator[Firewall]:
    """The deploy's egress firewall on this machine, after a look at the hole it closes."""
    rules = egress_firewall(stack)
    assert rules is not None
    sandbox = _egress_address(running["backend-sandbox"].name)
    target = f"{sandbox}:8080"
    before = _as_nobody([target])[target]
    try:
        _run_on_host(rules.script())
        yield Firewall(rules, before)
    finally:
        for command in removal_commands(stack.name):
            subprocess.run(["sh", "-c", command], capture_output=True)


def _addresses(name: str) -> list[str]:
    info = json.loads(docker("inspect", name).stdout)[0]
    return sorted(n["IPAddress"] for n in info["NetworkSettings"]["Networks"].values() if n["IPAddress"])


def _probe(source: str, targets: list[str]) -> dict[str, str | None]:
    return json.loads(docker("exec", source, "python3", "-c", PROBE, json.dumps(targets)).stdout)


def test_each_container_reaches_exactly_its_neighbours(stack: Stack, running: dict[str, ContainerSpec]) -> None:
    """From every container to every other, by container name, service alias and every address:
    a pair that shares no network reaches nothing; a pair that does reaches by container name."""
    aliases = {"redis": "redis", "authelia": "authelia", "agentgateway": "agentgateway"}
    aliases |= {f"backend-{b.name}": b.name for b in stack.enabled_backends}
    wrong = []
    for source in running:
        targets: dict[str, str] = {}
        for target in running:
            if target == source:
                continue
            port = _ports(stack, running[target])[0]
            for name in [running[target].name, *_addresses(running[target].name), aliases.get(target)]:
                if name:
                    targets[f"{name}:{port}"] = target
        seen = _probe(running[source].name, list(targets))
        for address, target in targets.items():
            allowed = frozenset({source, target}) in ALLOWED
            reached = seen[address] == target
            if reached and not allowed:
                wrong.append(f"{source} reaches {target} at {address}")
            if allowed and address.startswith(running[target].name + ":") and not reached:
                wrong.append(f"{source} does not reach {target} at {address}")
    assert not wrong, "\n".join(wrong)


def _egress_network(name: str) -> dict[str, str]:
    info = json.loads(docker("inspect", name).stdout)[0]["NetworkSettings"]["Networks"]
    return next(n for net, n in info.items() if "-egress-" in net)


def _egress_address(name: str) -> str:
    return _egress_network(name)["IPAddress"]


class HostListener:
    """A listener on every address of the host that says "host"."""

    def __init__(self) -> None:
        self.server = socket.create_server(("0.0.0.0", 0))
        self.port = self.server.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._greet, daemon=True)

    def _greet(self) -> None:
        self.server.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"host\n")

    def __enter__(self) -> HostListener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.server.close()


def _host_addresses() -> list[str]:
    out = _run_on_host("ip -4 -o addr show")
    return sorted({line.split()[3].split("/")[0] for line in out.splitlines()} - {"127.0.0.1"})


def test_the_host_cannot_open_the_egress_backends_port(running: dict[str, ContainerSpec], firewall: Firewall) -> None:
    """Before the rules, any local user reached the backend on its egress bridge (no token, no
    scope); with them, no one does, while the gateway still reaches it on its own network."""
    sandbox = running["backend-sandbox"].name
    target = f"{_egress_address(sandbox)}:8080"
    assert firewall.reached_before == "backend-sandbox", "the probe did not see the hole the rules close"
    assert _as_nobody([target])[target] is None
    seen = _probe(running["agentgateway"].name, [f"{running['backend-sandbox'].name}:8080"])
    assert list(seen.values()) == ["backend-sandbox"]


def test_the_egress_backend_reaches_no_listener_on_the_host(
    running: dict[str, ContainerSpec], firewall: Firewall
) -> None:
    """At its bridge's host address or any other of the host's addresses (another bridge's, the
    namespace's veth end): the listener answers the host itself, never the backend."""
    sandbox = running["backend-sandbox"].name
    gateway = _egress_network(sandbox)["Gateway"]
    with HostListener() as listener:
        assert _probe_from_host(f"127.0.0.1:{listener.port}") == "host"
        targets = [f"{a}:{listener.port}" for a in sorted({gateway, *_host_addresses()})]
        seen = _probe(sandbox, targets)
    assert {t: v for t, v in seen.items() if v is not None} == {}
    assert len(targets) >= 2


def _probe_from_host(target: str) -> str | None:
    return _as_nobody([target])[target]


def test_the_egress_backend_reaches_only_the_private_destination_it_is_allowed(
    running: dict[str, ContainerSpec], firewall: Firewall, private_net: PrivateNet
) -> None:
    """A private address (a network namespace of the test's, routed by the host like a LAN host):
    the port egress_allow names answers, the other port of the same address does not."""
    allowed = f"{private_net.address}:{private_net.allowed_port}"
    refused = f"{private_net.address}:{private_net.refused_port}"
    # Both listeners are up: the host (the router here) reaches each.
    assert _as_nobody([allowed, refused]) == {allowed: "netns", refused: "netns"}
    assert _probe(running["backend-sandbox"].name, [allowed, refused]) == {allowed: "netns", refused: None}
    # The backend without egress reaches neither.
    assert _probe(running["backend-notes"].name, [allowed, refused]) == {allowed: None, refused: None}


def test_the_egress_backend_has_no_ipv6(running: dict[str, ContainerSpec], firewall: Firewall) -> None:
    """No address, not even link-local, towards the host's own on its bridge: no way around the IPv4 rules."""
    out = docker("exec", running["backend-sandbox"].name, "cat", "/proc/net/if_inet6", check=False)
    assert out.stdout.strip() == ""


def test_the_firewall_is_idempotent_and_read_back_as_applied(stack: Stack, firewall: Firewall) -> None:
    """The deploy's fact reads the real chains as wanted; running the script again changes nothing."""
    fact = EgressFirewallState()
    command = fact.command(stack=stack.name)
    state = fact.process(_run_on_host(command).splitlines())
    assert as_wanted(state, firewall.rules)
    listing = {c: _run_on_host(f"iptables -w -S {c}") for c in firewall.rules.rules}
    _run_on_host(firewall.rules.script())
    assert {c: _run_on_host(f"iptables -w -S {c}") for c in firewall.rules.rules} == listing
    again = fact.process(_run_on_host(command).splitlines())
    assert again == state
    ours = set(firewall.rules.chains.values())
    for parent in ("DOCKER-USER", "INPUT", "OUTPUT"):
        jumps = [r for r in _run_on_host(f"iptables -w -S {parent}").splitlines() if r.split()[-1] in ours]
        assert len(jumps) == 1, jumps


def test_without_the_rules_nothing_of_the_stack_is_left(stack: Stack, firewall: Firewall) -> None:
    """What the deploy runs when the last egress backend goes takes every chain and jump of the
    stack's off the host (other rules are not named; Docker's own return rule stays)."""
    ours = set(firewall.rules.chains.values())
    try:
        for command in removal_commands(stack.name):
            _run_on_host(command)
        after = _run_on_host("iptables -w -S").splitlines()
        assert [r for r in after if ours & set(r.split())] == []
        assert "-A DOCKER-USER -j RETURN" in after
    finally:
        _run_on_host(firewall.rules.script())
