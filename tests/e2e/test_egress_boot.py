"""The egress firewall on a real systemd host: the deploy's own operation (over SSH, with pyinfra)
puts the rules and their boot unit in place, a second run changes nothing, and the rules survive a
restart of dockerd and a reboot — restored by the unit before Docker starts.

The host is a day-one host (tests/e2e/dayone.py): Debian 12 with systemd as PID 1, with Debian's
docker.io installed as the deploy would (``docker.install: debian``). Only the firewall operation
runs: the rest of the stack is the day-one test's (test_dayone.py).
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcpgate.egress import egress_firewall
from mcpgate.hostops.firewall import EgressFirewallState, FirewallState, as_wanted
from mcpgate.model import Stack, load_stack
from tests.conftest import BASE_STACK
from tests.e2e.dayone import DayOneHost, dayone_unavailable, new_host_name
from tests.e2e.harness import PROJECT_ROOT, parse_results

pytestmark = pytest.mark.skipif(bool(dayone_unavailable()), reason=dayone_unavailable() or "")


def _stack_data() -> dict:
    data = copy.deepcopy(BASE_STACK)
    data["name"] = "bootcheck"
    data["base_dir"] = "/opt/bootcheck"
    data["backends"][0] |= {"egress": True, "egress_allow": ["192.168.1.50:8123"]}
    return data


def _stack() -> Stack:
    return load_stack("gateway.lan", _stack_data())


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DayOneHost]:
    h = DayOneHost(new_host_name(), tmp_path_factory.mktemp("egress-boot"))
    try:
        h.create({})
        # What the deploy's docker_engine task does with docker.install: debian.
        h.ssh(
            "sudo apt-get install -y -q docker.io >/dev/null 2>&1 || "
            "(sudo apt-get update -q >/dev/null && sudo apt-get install -y -q docker.io >/dev/null)",
            timeout=600,
        )
        h.ssh("sudo systemctl enable --now docker", timeout=120)
        yield h
    finally:
        h.destroy()


def _deploy(host: DayOneHost, stack: Stack, workdir: Path) -> tuple[list[str], int, str]:
    """The firewall operation alone, run by pyinfra over SSH as the deploy runs it."""
    firewall = egress_firewall(stack)
    assert firewall is not None
    inventory = workdir / "inventory.py"
    inventory.write_text(
        f"hosts = [({host.address!r}, {{'ssh_port': 22, 'ssh_user': 'admin', 'ssh_key': {str(host.key)!r}, "
        f"'ssh_known_hosts_file': {str(host.known_hosts)!r}, 'ssh_strict_host_key_checking': 'yes', "
        "'_sudo': True})]\n"
    )
    deploy = workdir / "deploy.py"
    deploy.write_text(
        textwrap.dedent(
            f"""
            import json
            from pyinfra.operations import files
            from mcpgate.egress import egress_firewall as rules
            from mcpgate.hostops.firewall import egress_firewall
            from mcpgate.model import load_stack

            stack = load_stack("gateway.lan", json.loads({json.dumps(_stack_data())!r}))
            wanted = rules(stack)
            files.directory(name="firewall folder", path="/opt/bootcheck/firewall", mode="700")
            files.put(name="firewall script", src={str(workdir / "egress.sh")!r}, dest=wanted.script_path, mode="700")
            egress_firewall(name="egress firewall", stack=stack.name, wanted=wanted)
            """
        )
    )
    (workdir / "egress.sh").write_text(firewall.script())
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "pyinfra"), "-y", str(inventory), str(deploy)],
        capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=600,
    )  # fmt: skip
    changed, errors = parse_results(out.stdout + out.stderr)
    assert out.returncode == 0 and errors == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return changed, errors, out.stdout


def _state(host: DayOneHost, stack: Stack) -> FirewallState:
    fact = EgressFirewallState()
    out = host.ssh(f"sudo sh -c {shlex.quote(fact.command(stack=stack.name))}").stdout
    return fact.process(out.splitlines())


def test_the_rules_are_applied_kept_across_a_dockerd_restart_and_restored_at_boot(
    host: DayOneHost, tmp_path: Path
) -> None:
    stack = _stack()
    wanted = egress_firewall(stack)
    assert wanted is not None

    changed, _, _ = _deploy(host, stack, tmp_path)
    assert "egress firewall" in changed
    state = _state(host, stack)
    assert state.systemd and state.unit_enabled
    assert as_wanted(state, wanted)

    again, _, output = _deploy(host, stack, tmp_path)
    assert again == [], f"a second run changed {again}:\n{output[-2000:]}"

    # dockerd restarts: Docker recreates its own chains and keeps DOCKER-USER (and never touches
    # INPUT/OUTPUT jumps of others).
    host.ssh("sudo systemctl restart docker", timeout=180)
    assert as_wanted(_state(host, stack), wanted), "the rules did not survive a restart of dockerd"

    # A reboot empties the kernel's tables: the unit restores them, before docker.service starts.
    host.reboot()
    assert as_wanted(_state(host, stack), wanted), "the rules were not restored at boot"
    order = host.ssh(
        f"systemctl show -p ActiveEnterTimestampMonotonic --value {shlex.quote(wanted.unit)}; "
        "systemctl show -p ActiveEnterTimestampMonotonic --value docker.service"
    ).stdout.split()
    assert len(order) == 2 and 0 < int(order[0]) <= int(order[1]), f"unit and docker active at {order}"
    after_boot, _, _ = _deploy(host, stack, tmp_path)
    assert after_boot == [], f"after the reboot a run changed {after_boot}"
