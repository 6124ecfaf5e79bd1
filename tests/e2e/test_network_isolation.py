"""The stack's network layout, on real containers: no backend can go around the gateway.

Every container is created with the deploy's own ``docker create`` arguments and networks
(``ContainerSpec.run_args``, ``stack_networks``, ``NetworkSpec.create_args``), only its image swapped
for the harness' Python image running a listener on the service's real ports. Then every container
tries every other one, by name and by each of its addresses. Needs only the Docker engine and the
harness' Python image, so it runs in CI.
"""

from __future__ import annotations

import dataclasses
import json
import os
import runpy
import secrets as pysecrets
import socket
import threading
from collections.abc import Iterator

import pytest

from mcpgate.container_specs import (
    LABEL_STACK,
    ContainerSpec,
    assign_subnets,
    stack_containers,
    stack_networks,
)
from mcpgate.layout import AUTHELIA, INGRESS, REDIS, agentgateway_port
from mcpgate.model import Stack, load_stack
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


@pytest.fixture(scope="module")
def stack() -> Stack:
    data = runpy.run_path("inventory/local.py")["local"][0][1]["mcpgate"]
    data = json.loads(json.dumps(data))
    data["name"] = f"mcpgate-test-{pysecrets.token_hex(4)}"
    data["network_pool"] = random_network_pool()
    data["backends"][0]["base_image"] = PYTHON_BASE
    data["scopes"]["sandbox:run"] = "Run code in the sandbox"
    data["groups"]["admins"].append("sandbox:run")
    # A second container backend, the one that goes out to the internet.
    data["backends"].append(
        {"name": "sandbox", "image": PYTHON_BASE, "port": 8080, "scope": "sandbox:run", "egress": True}
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


def test_only_a_backend_with_egress_has_a_way_out(running: dict[str, ContainerSpec]) -> None:
    """Out means past the host: a listener on the host, at the address of the backend's own egress
    bridge. The backend without egress has no bridge with an address to go through."""
    sandbox = running["backend-sandbox"].name
    info = json.loads(docker("inspect", sandbox).stdout)[0]["NetworkSettings"]["Networks"]
    gateway = next(n["Gateway"] for name, n in info.items() if "-egress-" in name)
    with socket.create_server(("0.0.0.0", 0)) as server:
        port = server.getsockname()[1]
        stop = threading.Event()

        def greet() -> None:
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                with conn:
                    conn.sendall(b"host\n")

        thread = threading.Thread(target=greet, daemon=True)
        thread.start()
        try:
            assert _probe(sandbox, [f"{gateway}:{port}"])[f"{gateway}:{port}"] == "host"
            notes = running["backend-notes"].name
            own = json.loads(docker("inspect", notes).stdout)[0]["NetworkSettings"]["Networks"].values()
            addresses = [f"{a}:{port}" for a in [gateway, *(n["Gateway"] for n in own)] if a]
            assert not any(v == "host" for v in _probe(notes, addresses).values())
        finally:
            stop.set()
            thread.join()
