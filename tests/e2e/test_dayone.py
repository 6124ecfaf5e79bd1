"""Day one, and a rebuild from scratch: inventory/home.py deployed with the README's commands onto a
bare Debian 12 host with systemd (tests/e2e/dayone.py), Docker installed by the deploy itself.

The steps run in order on one host and depend on each other:
  1. the first deploy onto the bare host converges and the host checks pass;
  2. a second run changes nothing and restarts nothing;
  3. a reboot, without a deploy, brings every container back healthy, and a full OAuth login works;
     the containers' logs (in the host's journal) outlive the reboot and a recreated container:
     ``mcpgate audit`` still shows a failed sign-in from before both;
  4. the host is thrown away and a new bare one made; its first deploy is killed half-way (during the
     backends' image build), and the next run converges;
  5. the rebuilt host, deployed from the same secrets store, keeps the credentials: same JWKS kid, the
     client secret and the TOTP seed still work, the same ``sub``.
Where the Authelia or agentgateway image is missing, the deploy leaves that service out and the
assertions that need it skip with the reason; every other step still runs.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mcpgate.layout import container_name
from mcpgate.model import Stack, load_stack
from tests.e2e.conftest import TIMINGS
from tests.e2e.dayone import (
    DayOneHost,
    Deploy,
    dayone_unavailable,
    dockerfile_base_image,
    new_host_name,
    run_deploy,
    write_home_inventory,
)
from tests.e2e.harness import LOCAL_IMAGES, PROJECT_ROOT, PYTHON_BASE, parse_results, unavailable
from tests.e2e.mcp_client import McpClient
from tests.e2e.oauth import Flow, Session, jwt_parts, login

SCOPE = "openid offline_access notes:read"
NOTE = "# Day one\n\nThe gateway answers from a host built by its own deploy.\n"


@dataclass
class DayOne:
    """The test's state across its steps: one host at a time, one secrets store for all of them."""

    workdir: Path
    hosts: list[DayOneHost] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # service -> why it is left out
    first: dict[str, Any] = field(default_factory=dict)  # what the first host's login showed

    @property
    def host(self) -> DayOneHost:
        return self.hosts[-1]

    @property
    def secrets_dir(self) -> Path:
        return self.workdir / "secrets"

    @property
    def inventory(self) -> Path:
        return self.workdir / "inventory_home.py"

    @property
    def env(self) -> dict[str, str]:
        # A user's environment: none of the harness's image overrides, the test's own store.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCPGATE_")}
        return {**env, "MCPGATE_SECRETS_DIR": str(self.secrets_dir)}

    @property
    def components(self) -> list[str]:
        if not self.skipped:
            return []
        wanted = ("docker", "redis", "authelia", "backends", "ingress", "agentgateway")
        return ["--data", "mcpgate_components=" + ",".join(s for s in wanted if s not in self.skipped)]

    def stack(self) -> Stack:
        ((name, data),) = _run_path(self.inventory)["home"]
        return load_stack(name, data["mcpgate"])

    def images(self) -> dict[str, str]:
        """Local stand-in -> the name the inventory pins, for every image the host will pull."""
        stack = self.stack()
        images = {
            LOCAL_IMAGES["redis"]: stack.images.redis,
            LOCAL_IMAGES["ingress"]: stack.images.ingress,
            PYTHON_BASE: dockerfile_base_image("notes-vault"),
        }
        if "authelia" not in self.skipped:
            images[LOCAL_IMAGES["authelia"]] = stack.images.authelia
        if "agentgateway" not in self.skipped:
            images[os.environ["MCPGATE_AGENTGATEWAY_IMAGE"]] = stack.images.agentgateway
        return images

    def new_host(self) -> DayOneHost:
        host = DayOneHost(new_host_name(), self.workdir / f"host{len(self.hosts) + 1}")
        self.hosts.append(host)
        # The inventory is written first with no address: the images it pins are known before the host.
        if not self.inventory.exists():
            write_home_inventory(self.inventory, host)
        host.create(self.images())
        write_home_inventory(self.inventory, host)
        return host

    def deploy(self, **kill: Any) -> Deploy:
        return run_deploy(self.inventory, self.env, self.components, **kill)

    def host_checks(self) -> str:
        """tests/host against the host, as the README says, as admin with sudo; what it printed."""
        proc = subprocess.run(
            [
                sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/host",
                f"--hosts=ssh://{self.host.alias}", f"--ssh-config={self.host.ssh_config}", "--sudo",
                f"--inventory={self.inventory}",
                *([f"--components={self.components[1].split('=', 1)[1]}"] if self.components else []),
            ],
            capture_output=True, text=True, cwd=PROJECT_ROOT, env=self.env, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        return proc.stdout

    def store(self, name: str) -> str:
        return (self.secrets_dir / self.host.alias / name).read_text()

    def need(self, service: str) -> None:
        if service in self.skipped:
            pytest.skip(f"{service} left out of this deploy: {self.skipped[service]}")


def _run_path(path: Path) -> dict[str, Any]:
    return runpy.run_path(str(path))


def _changed(d: Deploy) -> list[str]:
    return parse_results(d.output)[0]


def _started(host: DayOneHost) -> dict[str, str]:
    return {name: c["State"]["StartedAt"] for name, c in host.containers().items()}


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DayOne]:
    reason = dayone_unavailable()
    if reason:
        pytest.skip(f"no day-one host here: {reason}")
    state = DayOne(tmp_path_factory.mktemp("dayone"))
    state.skipped.update(unavailable())
    try:
        yield state
    finally:
        for host in state.hosts:
            host.destroy()


def _login(day: DayOne, port: int) -> dict[str, Any]:
    """A full OAuth login as Claude.ai does it, through the tunnel; what it showed."""
    stack = day.stack()
    session = Session(f"http://127.0.0.1:{port}", stack.hostname)
    jwks = session.request("GET", "/auth/jwks.json")
    assert jwks.status_code == 200, jwks.text
    flow = Flow(session, "claude-ai", SCOPE, resource=stack.resource)
    code = login(flow, "alice", day.store("users/alice.password"), day.store("users/alice.totp"))
    r = flow.token(code, day.store("clients/claude-ai.secret"), how="post")
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    header, claims = jwt_parts(token)
    return {
        "kids": sorted(k["kid"] for k in jwks.json()["keys"]),
        "kid": header["kid"],
        "sub": claims["sub"],
        "aud": claims["aud"],
        "token": token,
    }


def _search_notes(day: DayOne, port: int, token: str) -> str:
    """tools/call search on the notes backend, through ingress and agentgateway."""
    client = McpClient(f"http://127.0.0.1:{port}", day.stack().hostname, token)
    client.initialize()
    tools = {t["name"] for t in client.call("tools/list")["result"]["tools"]}
    name = next(n for n in tools if n.endswith("search"))
    result = client.call("tools/call", {"name": name, "arguments": {"query": "built by its own deploy"}})["result"]
    assert not result.get("isError"), result
    return json.dumps(result)


def _docker_ce_plan(day: DayOne) -> list[str]:
    """``bin/deploy --dry`` of inventory/home.py's own docker.install (docker-ce): the Docker
    operations pyinfra plans for the bare host, from its real facts (no engine, its release and
    architecture). The source line they write is unit-tested (tests/unit/test_apt.py)."""
    inventory = day.workdir / "inventory_home_docker_ce.py"
    inventory.write_text(
        "import runpy as _runpy\n"
        f"home = _runpy.run_path({str(day.inventory)!r})['home']\n"
        "del home[0][1]['mcpgate']['docker']  # back to inventory/home.py's default\n"
    )
    dry = run_deploy(inventory, day.env, [*day.components, "--dry", "--json"])
    assert dry.returncode == 0, dry.output[-4000:]
    plan = json.loads(next(line for line in dry.output.splitlines() if line.startswith('{"plan"')))["plan"]
    return [op["name"].removeprefix("Docker engine | ") for op in plan if op["name"].startswith("Docker engine | ")]


# --- 1. first deploy ------------------------------------------------------------------------------


def test_1_first_deploy_onto_a_bare_host_installs_docker_and_converges(day: DayOne) -> None:
    host = day.new_host()
    bare = host.ssh("for c in docker dockerd python3 curl; do command -v $c || true; done").stdout.split()
    assert bare == [], f"the host is not bare: {bare}"
    assert host.ssh("ps -p 1 -o comm=").stdout.strip() == "systemd"

    # Docker's own repository cannot be reached here: its path is checked as a dry run on the bare host.
    assert _docker_ce_plan(day) == [
        "Install apt prerequisites",
        "apt keyrings folder",
        "Docker's apt signing key",
        "Docker's apt repository",
        "Install Docker CE",
        "Docker enabled at boot and running",
    ]

    first = day.deploy()
    TIMINGS.append(
        f"day-one host: images seeded {host.seconds['seed images']:.1f} s, booted {host.seconds['boot']:.1f} s; "
        f"first deploy {first.seconds:.1f} s ({len(_changed(first))} operations changed)"
        + (f"; left out: {', '.join(day.skipped)}" if day.skipped else "")
    )
    assert first.returncode == 0, first.output[-8000:]
    assert "Docker engine | Install docker.io" in _changed(first)
    units = host.ssh("systemctl is-enabled docker.service; systemctl is-active docker.service").stdout.split()
    assert units == ["enabled", "active"]
    day.host_checks()


# --- 2. no-op -------------------------------------------------------------------------------------


def test_2_second_run_changes_nothing_and_restarts_nothing(day: DayOne) -> None:
    host = day.host
    host.ssh(f"printf %s {json.dumps(NOTE)} | sudo -u admin tee /srv/notes/day-one.md >/dev/null")
    before = _started(host)
    again = day.deploy()
    TIMINGS.append(f"day-one host: no-op run {again.seconds:.1f} s")
    assert again.returncode == 0, again.output[-6000:]
    assert _changed(again) == []
    assert _started(host) == before
    if "authelia" not in day.skipped:
        # For step 3: a failed sign-in, in Authelia's log before the reboot.
        with host.forward(day.stack().ingress_port) as port:
            stack = day.stack()
            flow = Flow(Session(f"http://127.0.0.1:{port}", stack.hostname), "claude-ai", SCOPE, stack.resource)
            assert flow.authorize().status_code in (302, 303)
            assert flow.first_factor("alice", "not-her-password").json()["status"] == "KO"


def _audit(day: DayOne, *args: str) -> list[dict[str, Any]]:
    """``mcpgate audit`` of the host, as its owner runs it (over the deploy's SSH connection)."""
    r = subprocess.run(
        [sys.executable, "-m", "mcpgate", "audit", str(day.inventory), "--json", *args],
        capture_output=True, text=True, cwd=PROJECT_ROOT, env=day.env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def _journal_containers(host: DayOneHost, name: str) -> set[str]:
    """The containers of that name whose lines the host's journal holds (by container id)."""
    out = host.ssh(f"sudo journalctl -q --no-pager -o json CONTAINER_NAME={name}").stdout
    return {json.loads(line)["CONTAINER_ID_FULL"] for line in out.splitlines() if line.strip()}


# --- 3. reboot ------------------------------------------------------------------------------------


def test_3_after_a_reboot_the_stack_comes_back_by_itself(day: DayOne) -> None:
    host = day.host
    before = _started(host)
    seconds = host.reboot()
    ready = host.wait_containers_ready()
    TIMINGS.append(f"day-one host: reboot {seconds:.1f} s, then every container healthy after {ready:.1f} s")
    after = host.containers()
    assert set(after) == set(before)
    assert all(after[n]["State"]["StartedAt"] != before[n] for n in before), "a container did not restart"
    assert host.ssh("systemctl is-enabled docker.service").stdout.strip() == "enabled"
    day.host_checks()
    day.need("authelia")
    with host.forward(day.stack().ingress_port) as port:
        day.first = _login(day, port)
        assert day.first["kid"] in day.first["kids"]
        assert day.first["sub"] == day.store("users/alice.sub")
        day.need("agentgateway")
        assert "day-one.md" in _search_notes(day, port, day.first["token"])


def test_3b_the_logs_outlive_the_reboot_and_a_recreated_container(day: DayOne) -> None:
    """audit.logs is inventory/home.py's default, the host's journal: what a container logged is
    kept past the container, so the trail does not end when a deploy recreates it."""
    host, stack = day.host, day.stack()
    assert stack.audit.logs == "journald"
    redis = container_name(stack.name, "redis")
    before = _journal_containers(host, redis)
    assert before, "redis's lines are not in the journal"
    host.ssh(f"sudo docker rm -f {redis} >/dev/null")
    again = day.deploy()
    assert again.returncode == 0, again.output[-6000:]
    after = _journal_containers(host, redis)
    assert before < after, (before, after)  # the removed container's lines and the new one's
    day.need("authelia")
    failed = [e for e in _audit(day) if e["outcome"] == "sign-in failed"]
    # Logged before the reboot (step 2), by the Authelia container that ran then.
    assert [(e["person"], e["detail"].split(" from ")[0]) for e in failed] == [("alice", "1FA failed")], failed
    authelia = container_name(stack.name, "authelia")
    host.ssh(f"sudo docker rm -f {authelia} >/dev/null")
    assert day.deploy().returncode == 0
    assert [e for e in _audit(day) if e["outcome"] == "sign-in failed"] == failed


# --- 4. rebuild, interrupted ----------------------------------------------------------------------


def test_4_rebuild_a_deploy_killed_half_way_converges_on_the_next_run(day: DayOne) -> None:
    day.host.destroy()
    host = day.new_host()
    assert host.ssh("command -v docker || true").stdout.strip() == ""
    killed = day.deploy(kill_when="Starting operation: MCP backends", kill_after=3)
    assert killed.returncode != 0, "the deploy ended before it could be killed"
    assert "[test] killed the deploy" in killed.output
    stack = day.stack()
    later = [container_name(stack.name, s) for s in ("backend-notes", "ingress")]
    missing = [n for n in later if n not in host.containers()]
    assert missing, "the kill came too late: every container was already there"

    resumed = day.deploy()
    TIMINGS.append(
        f"day-one rebuild: killed {killed.seconds:.1f} s into its first deploy (before {', '.join(missing)}); "
        f"the next run converged in {resumed.seconds:.1f} s ({len(_changed(resumed))} operations changed)"
    )
    assert resumed.returncode == 0, resumed.output[-8000:]
    day.host_checks()
    again = day.deploy()
    assert again.returncode == 0, again.output[-6000:]
    assert _changed(again) == []


# --- 5. rebuild keeps the credentials -------------------------------------------------------------


def test_5_the_rebuilt_host_keeps_every_credential(day: DayOne) -> None:
    day.need("authelia")
    if not day.first:
        pytest.fail("step 3 did not log in on the first host: nothing to compare with")
    host = day.host
    host.ssh(f"printf %s {json.dumps(NOTE)} | sudo -u admin tee /srv/notes/day-one.md >/dev/null")
    with host.forward(day.stack().ingress_port) as port:
        rebuilt = _login(day, port)  # the same password, TOTP seed and client secret from the store
        assert rebuilt["kids"] == day.first["kids"]
        assert rebuilt["kid"] == day.first["kid"]
        assert rebuilt["sub"] == day.first["sub"]
        assert rebuilt["aud"] == day.first["aud"]
        # A token the first host issued is still good on the rebuilt one (same key, same audience).
        day.need("agentgateway")
        assert "day-one.md" in _search_notes(day, port, day.first["token"])


def test_the_test_inventory_differs_from_home_only_where_a_test_host_must(tmp_path: Path) -> None:
    """The written-down difference (dayone.HOME_INVENTORY_CHANGES) is the whole difference."""
    import copy

    from tests.e2e.dayone import HOME_INVENTORY_CHANGES

    ((_, home),) = runpy.run_path(str(PROJECT_ROOT / "inventory" / "home.py"))["home"]
    keys = re.findall(r"^\s+(ssh_\w+)=", HOME_INVENTORY_CHANGES, re.M)
    assert keys == ["ssh_hostname", "ssh_port", "ssh_key", "ssh_known_hosts_file", "ssh_strict_host_key_checking"]
    expected = copy.deepcopy(home)
    expected["mcpgate"]["tailscale"] = {"enabled": False}
    expected["mcpgate"]["docker"] = {"install": "debian"}
    next(b for b in expected["mcpgate"]["backends"] if b["name"] == "home-assistant")["enabled"] = False
    host = DayOneHost("unused", tmp_path, address="192.0.2.7")
    ((name, data),) = runpy.run_path(str(write_home_inventory(tmp_path / "inv.py", host)))["home"]
    assert name == "gateway.lan"
    assert {k: v for k, v in data.items() if not k.startswith("ssh_") or k == "ssh_user"} == expected
    assert data["ssh_hostname"] == "192.0.2.7"
