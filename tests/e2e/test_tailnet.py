"""Tailscale for real: a real tailscaled joins a real control server (headscale) in the test world.

Built from the Go module proxy by tests/harness/tailscale/ (tailscale v1.102.5, headscale v0.26.1;
see tests/e2e/tailnet.py). What runs for real and what cannot:

- the stand-in ``tailscale`` package against Tailscale's own packaging at the same version;
- nodes joining headscale with a pre-auth key, their MagicDNS names, reaching each other;
- ``tailscale serve status --json`` as mcpgate's facts read it, and mcpgate's own commands run by the
  real CLI: a person's entry survives, ``funnel: false`` removes mcpgate's Funnel;
- on a day-one host (tests/e2e/dayone.py): the deploy installs ``tailscale`` from the stand-in's apt
  repository, joins with ``--auth-key=file:``, converges, survives a reboot, turns Funnel off, keeps a
  person's Serve entry, and reports a damaged key as damaged.
- Not here: Funnel itself. headscale grants no Funnel and no HTTPS certificates (headscale#3435,
  #1921), so ``tailscale funnel --https=443 ...`` is refused by the CLI on every node here; the
  configuration it would write is set with ``tailscale serve set-raw`` as the CLI's source says it
  writes it (cmd/tailscale/cli/serve_v2.go, ipn/serve.go), and the public relay is not exercised.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import runpy
import shlex
import socket
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcpgate.errors import MCPGateError
from mcpgate.model import load_stack
from mcpgate.tailscale_node import funnel_commands, funnel_matches, funnel_target, funnel_unavailable
from tests.e2e.conftest import TIMINGS
from tests.e2e.dayone import (
    HOME_INVENTORY_CHANGES,
    DayOneHost,
    Deploy,
    dayone_unavailable,
    new_host_name,
    run_deploy,
)
from tests.e2e.harness import LOCAL_IMAGES, PROJECT_ROOT, docker, parse_results
from tests.e2e.tailnet import (
    APT_REPO,
    TAILSCALE_SRC,
    TAILSCALE_VERSION,
    Headscale,
    Node,
    apt_repository,
    tailscale_unavailable,
    wait_for,
)

HOSTNAME = "mcp-gateway.example-tailnet.ts.net"  # inventory/home.py's
NODE, BASE_DOMAIN = HOSTNAME.split(".", 1)
INGRESS_PORT = 8088


@pytest.fixture(scope="module", autouse=True)
def _built() -> None:
    reason = tailscale_unavailable()
    if reason:
        pytest.skip(f"no tailscale here: {reason}")


# --- the stand-in package ------------------------------------------------------------------------


def _deb() -> Path:
    debs = sorted(APT_REPO.glob(f"tailscale_{TAILSCALE_VERSION}_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


def _deb_files(deb: Path) -> dict[str, tuple[bytes, int]]:
    """path -> (content, mode) of the package's regular files."""
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        for m in t.getmembers():
            if m.isfile():
                f = t.extractfile(m)
                assert f is not None
                out["/" + m.name.removeprefix("./")] = (f.read(), m.mode)
    return out


def test_standin_package_mirrors_tailscales_own_package() -> None:
    """Each point package.sh says it mirrors, against Tailscale's release/dist/unixpkgs/pkgs.go and
    the files it packs, at the same version."""
    deb = _deb()
    pkgs_go = (TAILSCALE_SRC / "release/dist/unixpkgs/pkgs.go").read_text()
    deb_target = pkgs_go[pkgs_go.index("func (t *debTarget) Build") :]
    deb_target = deb_target[: deb_target.index("\nfunc ")]
    control = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", control, re.M))

    # The control fields Tailscale's nfpm.Info gives, as written in pkgs.go.
    assert fields["Package"] == "tailscale" and 'Name:        "tailscale"' in deb_target
    assert fields["Version"] == TAILSCALE_VERSION
    assert fields["Section"] == "net" and 'Section:     "net"' in deb_target
    assert fields["Priority"] == "extra" and 'Priority:    "extra"' in deb_target
    assert fields["Depends"] == "iptables" and re.search(r'Depends: \[\]string\{[^}]*"iptables",', deb_target, re.S)
    assert fields["Recommends"] == "iproute2" and '"iproute2",' in deb_target
    assert fields["Replaces"] == fields["Conflicts"] == "tailscale-relay"
    assert 'Replaces:  []string{"tailscale-relay"}' in deb_target
    assert 'Conflicts: []string{"tailscale-relay"}' in deb_target
    assert "stand-in" in fields["Maintainer"]  # what differs, said where apt shows it

    # Every file Tailscale's package has, at the same path, the units and defaults byte for byte.
    destinations = re.findall(r'Destination: "([^"]+)"', deb_target)
    files = _deb_files(deb)
    assert sorted(files) == sorted(destinations)
    tailscaled_dir = TAILSCALE_SRC / "cmd/tailscaled"
    for dest, src in {
        "/lib/systemd/system/tailscaled.service": "tailscaled.service",
        "/lib/systemd/system/tailscale-online.target": "tailscale-online.target",
        "/lib/systemd/system/tailscale-wait-online.service": "tailscale-wait-online.service",
        "/etc/default/tailscaled": "tailscaled.defaults",
    }.items():
        assert files[dest][0] == (tailscaled_dir / src).read_bytes(), dest
        assert f'Source:      filepath.Join(tailscaledDir, "{src}"),\n\t\t\tDestination: "{dest}"' in deb_target
    assert files["/usr/sbin/tailscaled"][1] == files["/usr/bin/tailscale"][1] == 0o755
    # The unit the deploy enables, and the defaults file it reads.
    unit = files["/lib/systemd/system/tailscaled.service"][0].decode()
    assert "EnvironmentFile=/etc/default/tailscaled" in unit and "ExecStart=/usr/sbin/tailscaled " in unit
    assert 'FLAGS=""' in files["/etc/default/tailscaled"][0].decode()  # unchanged: the day-one host has a TUN

    # /etc/default/tailscaled is a conffile (files.TypeConfigNoReplace), the maintainer scripts are Tailscale's.
    assert "TypeConfigNoReplace" in deb_target
    with_control = subprocess.run(["dpkg-deb", "-e", str(deb), str(APT_REPO.parent / ".ctl-check")], check=False)
    ctl = APT_REPO.parent / ".ctl-check"
    try:
        assert with_control.returncode == 0
        assert (ctl / "conffiles").read_text().split() == ["/etc/default/tailscaled"]
        for script in ("postinst", "prerm", "postrm"):
            assert (ctl / script).read_bytes() == (TAILSCALE_SRC / f"release/deb/debian.{script}.sh").read_bytes()
            assert f'"release/deb/debian.{script}.sh"' in deb_target
    finally:
        subprocess.run(["rm", "-rf", str(ctl)], check=False)

    # The flat repository indexes it.
    index = (APT_REPO / "Packages").read_text()
    assert f"Filename: ./{deb.name}\n" in index and "Package: tailscale\n" in index


# --- nodes on the test machine --------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_tailnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Headscale, Node, Node]]:
    work = tmp_path_factory.mktemp("tailnet")
    hs = Headscale(work / "headscale", "127.0.0.1", BASE_DOMAIN)
    nodes = [Node(work / "a", "probe-a"), Node(work / "b", "probe-b")]
    try:
        hs.start()
        key = hs.preauth_key()
        for n in nodes:
            n.start()
            n.up(hs.url, key)
        yield hs, nodes[0], nodes[1]
    finally:
        for n in nodes:
            n.stop()
        hs.stop()


def _ip4(node: Node) -> str:
    return next(ip for ip in node.status()["Self"]["TailscaleIPs"] if "." in ip)


def test_nodes_join_headscale_under_their_names_and_reach_each_other(local_tailnet) -> None:
    hs, a, b = local_tailnet
    status = a.status()
    assert status["BackendState"] == "Running"
    assert status["Self"]["DNSName"] == f"probe-a.{BASE_DOMAIN}."
    assert set(hs.nodes()) >= {"probe-a", "probe-b"}
    assert a.cli("version").stdout.splitlines()[0] == TAILSCALE_VERSION

    # In userspace mode tailscaled hands a connection to its own Tailscale IP to the machine's
    # loopback (wgengine/netstack/netstack.go: dialIP = ipv4Loopback): a 127.0.0.1-only service
    # is reachable from the tailnet. The day-one host therefore runs tailscaled with a TUN, as
    # users' hosts do (see test_tailnet_reaches_the_host_but_not_the_ingress).
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def answer() -> None:
            # Every connection: a dial that timed out before the path was up may still arrive.
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(b"hello over the tailnet\n")

        threading.Thread(target=answer, daemon=True).start()
        _rc, out = wait_for(
            "probe-a reaches probe-b",
            lambda: (r := a.connect(_ip4(b), port, 30, hold=10))[0] == 0 and "hello" in r[1] and r,
            240,
        )
    assert "hello over the tailnet" in out


def test_serve_config_as_the_real_cli_writes_it(local_tailnet) -> None:
    _hs, a, _ = local_tailnet
    host = a.status()["Self"]["DNSName"].rstrip(".")
    on = funnel_commands(None, host, INGRESS_PORT, True)

    # Nothing served: the CLI prints {}; mcpgate would set Funnel.
    assert a.serve_status() == {}
    assert funnel_commands({}, host, INGRESS_PORT, True) == on
    assert on == [["tailscale", "funnel", "--bg", "--yes", "--https=443", funnel_target(INGRESS_PORT)]]

    # headscale grants no Funnel: mcpgate's check says so before the CLI, and the CLI agrees.
    problem = funnel_unavailable(a.status())
    assert problem and "'https' and 'funnel' not granted" in problem and "headscale" in problem
    refused = a.cli(*on[0][1:], check=False, timeout=30)
    assert refused.returncode != 0 and "Funnel not available" in refused.stderr + refused.stdout
    assert a.serve_status() == {}

    # A person's own entry (TCP 5432; no HTTPS certificate needed): neither a reason to change nor changed.
    a.cli("serve", "--bg", "--tcp=5432", "tcp://127.0.0.1:5432")
    theirs = a.serve_status()
    assert list(theirs) == ["TCP"] and theirs["TCP"]["5432"]["TCPForward"].endswith(":5432"), theirs
    assert funnel_commands(theirs, host, INGRESS_PORT, False) == []
    assert funnel_commands(theirs, host, INGRESS_PORT, True) == on  # only mcpgate's mount, no reset

    # What `tailscale funnel --bg --yes --https=443 <ingress>` writes (serve_v2.go setServe ->
    # applyWebServe + applyFunnel), set as the CLI would, beside the person's entry.
    funnelled = copy.deepcopy(theirs)
    funnelled["TCP"]["443"] = {"HTTPS": True}
    funnelled["Web"] = {f"{host}:443": {"Handlers": {"/": {"Proxy": funnel_target(INGRESS_PORT)}}}}
    funnelled["AllowFunnel"] = {f"{host}:443": True}
    a.cli("serve", "set-raw", stdin=json.dumps(funnelled))
    read = a.serve_status()
    assert read == funnelled and funnel_matches(read, host, INGRESS_PORT)
    assert funnel_commands(read, host, INGRESS_PORT, True) == []

    # funnel: false: mcpgate's one command, run by the real CLI, removes its mount and Funnel with it;
    # the person's entry stays.
    off = funnel_commands(read, host, INGRESS_PORT, False)
    assert off == [["tailscale", "serve", "--https=443", "--set-path=/", "off"]]
    a.cli(*off[0][1:])
    after = a.serve_status()
    assert after == theirs, after
    assert funnel_commands(after, host, INGRESS_PORT, False) == []

    # A person's mount beside mcpgate's on :443: refused, not erased (Funnel would publish it).
    shared = copy.deepcopy(funnelled)
    shared["Web"][f"{host}:443"]["Handlers"]["/admin"] = {"Proxy": "http://127.0.0.1:9000"}
    a.cli("serve", "set-raw", stdin=json.dumps(shared))
    with pytest.raises(MCPGateError, match="also serves /admin"):
        funnel_commands(a.serve_status(), host, INGRESS_PORT, False)
    a.cli("serve", "reset")  # the test's own node: clean for the next test


# --- the day-one host -----------------------------------------------------------------------------

TAILNET_INVENTORY = """
_data["mcpgate"]["tailscale"] = {{
    "enabled": True,
    "funnel": {funnel!r},
    "login_server": {login_server!r},
    "apt_source": {apt_source!r},
}}
"""


class Tailnet:
    """The test's state across its steps: one day-one host, headscale, the apt repository."""

    def __init__(self, workdir: Path, host: DayOneHost, hs: Headscale, repo_url: str) -> None:
        self.workdir, self.host, self.hs, self.repo_url = workdir, host, hs, repo_url
        self.secrets_dir = workdir / "secrets"
        self.inventory = workdir / "inventory_home.py"
        self.key = ""
        self.deploys = 0

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCPGATE_")}
        return {**env, "MCPGATE_SECRETS_DIR": str(self.secrets_dir)}

    def write_inventory(self, funnel: bool) -> None:
        # Written again with the host's new address should a reboot change it (DayOneHost.reboot).
        self.host.address_files[self.inventory] = lambda: self.write_inventory(funnel)
        body = HOME_INVENTORY_CHANGES.format(
            home=str(PROJECT_ROOT / "inventory" / "home.py"),
            address=self.host.address,
            key=str(self.host.key),
            known_hosts=str(self.host.known_hosts),
        )
        body = body.replace("home = [(_name, _data)]\n", "")
        body += TAILNET_INVENTORY.format(
            funnel=funnel, login_server=self.hs.url, apt_source=f"deb [trusted=yes] {self.repo_url} ./"
        )
        self.inventory.write_text(
            '"""inventory/home.py on a day-one host, joining headscale."""\n' + body + "home = [(_name, _data)]\n"
        )

    def set_key(self, value: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(PROJECT_ROOT / ".venv/bin/mcpgate"), "secrets", "set", str(self.inventory), "--host", "gateway.lan",
             "tailscale-auth-key"],
            input=value, capture_output=True, env=self.env, cwd=PROJECT_ROOT, timeout=60,
        )  # fmt: skip

    def deploy(self) -> Deploy:
        # Only what the tailnet needs: the engine (the stack's networks), the ingress (what must stay
        # unreachable from the tailnet) and Tailscale.
        done = run_deploy(self.inventory, self.env, ["--data", "mcpgate_components=docker,ingress,tailscale"])
        self.deploys += 1
        (self.workdir / f"deploy-{self.deploys}.log").write_text(done.output)  # for a failure's reader
        return done

    def status(self) -> dict[str, Any]:
        return json.loads(self.host.ssh("sudo tailscale status --json").stdout)

    def serve_status(self) -> Any:
        return json.loads(self.host.ssh("sudo tailscale serve status --json").stdout)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tailnet]:
    reason = dayone_unavailable()
    if reason:
        pytest.skip(f"no day-one host here: {reason}")
    # Short: ssh's ControlMaster socket (<workdir>/cm-<40 hex>.<16 random>) must fit in 108 bytes.
    work = tmp_path_factory.mktemp("tnd")
    # A TUN device as on a user's host: tailscaled runs as Tailscale's package starts it (no
    # --tun=userspace-networking, which would hand the tailnet the host's loopback services).
    host = DayOneHost(new_host_name(), work / "h", options=["--device", "/dev/net/tun"])
    hs: Headscale | None = None
    try:
        ((name, data),) = runpy.run_path(str(PROJECT_ROOT / "inventory" / "home.py"))["home"]
        host.create({LOCAL_IMAGES["ingress"]: load_stack(name, data["mcpgate"]).images.ingress})
        gateway = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}", host.name)
        address = gateway.stdout.strip()
        hs = Headscale(work / "headscale", address, BASE_DOMAIN)
        hs.start()
        with apt_repository(address) as repo_url:
            state = Tailnet(work, host, hs, repo_url)
            state.write_inventory(funnel=True)
            state.key = hs.preauth_key()
            stored = state.set_key(state.key.encode())
            assert stored.returncode == 0, stored.stderr
            yield state
    finally:
        host.destroy()
        if hs is not None:
            hs.stop()


def _changed(d: Deploy) -> list[str]:
    return parse_results(d.output)[0]


def test_1_first_deploy_installs_tailscale_from_the_apt_source_and_joins(day: Tailnet) -> None:
    host = day.host
    assert host.ssh("command -v tailscale || true").stdout.strip() == ""
    first = day.deploy()
    TIMINGS.append(f"tailnet day-one host: first deploy {first.seconds:.1f} s ({len(_changed(first))} changed)")
    out = first.output
    # headscale has no Funnel: the last step fails with what is missing, not a traceback, and the
    # key is nowhere in the output.
    assert first.returncode != 0, out[-6000:]
    assert "the tailnet's control server does not let this node use Funnel" in out, out[-6000:]
    assert "Traceback" not in out and day.key not in out
    # Everything before it converged. (With every host failed pyinfra prints no results table, only
    # each operation's outcome.)
    for op in ("tailscale's apt source (tailscale.apt_source)", "Install tailscale", "tailscale up (once)"):
        assert re.search(rf"operation: Tailscale and Funnel \| {re.escape(op)} *\n +\[gateway\.lan\] Success", out), op
    assert re.search(r"\| Funnel 443 -> ingress *\n +\[gateway\.lan\] the tailnet's control server does not", out)
    policy = host.ssh("apt-cache policy tailscale").stdout
    assert f"Installed: {TAILSCALE_VERSION}" in policy and f"{day.repo_url.rstrip('/')} ./ Packages" in policy, policy
    units = host.ssh("systemctl is-enabled tailscaled; systemctl is-active tailscaled").stdout.split()
    assert units == ["enabled", "active"]
    assert host.ssh("sudo test -e /run/mcpgate-tailscale-authkey && echo left || true").stdout.strip() == ""
    assert day.key not in host.ssh("sudo journalctl --no-pager -o cat", timeout=300).stdout
    status = day.status()
    assert status["BackendState"] == "Running"
    assert status["Self"]["DNSName"] == f"{HOSTNAME}."
    # A TUN, as on a user's host (not userspace networking).
    assert (
        status["Self"]["TailscaleIPs"] and host.ssh("test -d /sys/class/net/tailscale0 && echo tun").stdout == "tun\n"
    )
    assert NODE in day.hs.nodes()
    assert day.serve_status() == {}  # the refused Funnel step set nothing


def test_2_with_funnel_off_a_second_run_changes_nothing(day: Tailnet) -> None:
    day.write_inventory(funnel=False)
    again = day.deploy()
    TIMINGS.append(f"tailnet day-one host: second deploy {again.seconds:.1f} s ({len(_changed(again))} changed)")
    assert again.returncode == 0, again.output[-6000:]
    assert _changed(again) == []


def test_3_a_reboot_keeps_the_node_logged_in(day: Tailnet) -> None:
    seconds = day.host.reboot()
    TIMINGS.append(f"tailnet day-one host: reboot {seconds:.1f} s")
    status = wait_for(
        "tailscaled running after the reboot", lambda: (s := day.status())["BackendState"] == "Running" and s
    )
    assert status["Self"]["DNSName"] == f"{HOSTNAME}."
    assert len([n for n in day.hs.nodes() if n == NODE]) == 1


def test_4_tailnet_reaches_the_host_but_not_the_ingress(day: Tailnet, tmp_path: Path) -> None:
    probe = Node(tmp_path / "probe", "probe-dayone")
    try:
        probe.start()
        probe.up(day.hs.url, day.key)
        ip = next(ip for ip in day.status()["Self"]["TailscaleIPs"] if "." in ip)
        try:
            rc, out = wait_for(
                "the probe reaches the host's sshd over the tailnet",
                lambda: (r := probe.connect(ip, 22, 30))[0] == 0 and "SSH-2.0" in r[1] and r,
                240,
            )
        except AssertionError as err:
            raise AssertionError(f"{err}\n{_diagnosis(day, probe, ip)}") from None
        # The ingress answers on the host's loopback (published on 127.0.0.1 only)...
        (ingress,) = [c for n, c in day.host.containers().items() if n.endswith("ingress")]
        bindings = [b for bs in ingress["HostConfig"]["PortBindings"].values() for b in bs]
        assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}, bindings
        with day.host.forward(INGRESS_PORT) as local:
            socket.create_connection(("127.0.0.1", local), timeout=5).close()
        # ...and not on the tailnet.
        rc, out = probe.connect(ip, INGRESS_PORT)
        assert rc != 0 and "SSH" not in out, out
    finally:
        probe.stop()


def _peers(status: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("HostName", "TailscaleIPs", "Online", "CurAddr", "Addrs", "Relay", "LastHandshake")
    return [{k: peer.get(k) for k in keys} for peer in (status.get("Peer") or {}).values()]


def _diagnosis(day: Tailnet, probe: Node, ip: str) -> str:
    """What the two nodes and headscale say when the probe cannot reach the host: for a failure's reader."""
    parts: list[str] = []

    def add(title: str, what: Any) -> None:
        try:
            parts.append(f"--- {title}:\n{what()}")
        except Exception as err:  # a diagnosis never hides the failure it explains
            parts.append(f"--- {title}: could not be read: {err!r}")

    add("the probe's peers", lambda: json.dumps(_peers(probe.status()), indent=1))
    add("the host's peers", lambda: json.dumps(_peers(day.status()), indent=1))
    add("tailscale ping from the probe", lambda: (r := probe.cli("ping", "--c=3", "--timeout=5s", ip, check=False,
                                                                 timeout=30)).stdout + r.stderr)  # fmt: skip
    add("the host's addresses", lambda: day.host.ssh("hostname -I", check=False).stdout)
    add("the host's tailscaled", lambda: day.host.ssh("sudo journalctl -u tailscaled --no-pager -o cat -n 120",
                                                     check=False, timeout=60).stdout)  # fmt: skip
    add("headscale", lambda: day.hs.log_tail())
    add("the probe's tailscaled", lambda: probe.log_tail())
    text = "\n".join(parts)
    (day.workdir / "tailnet-diagnosis.txt").write_text(text)
    return text


def test_5_funnel_off_and_a_persons_entry_survives(day: Tailnet) -> None:
    host = day.host
    # Funnel as `tailscale funnel --bg --yes --https=443 http://127.0.0.1:8088` writes it (refused
    # by headscale, so set raw), and a person's own entry beside it.
    host.ssh("sudo tailscale serve --bg --tcp=5432 tcp://127.0.0.1:5432")
    theirs = day.serve_status()
    funnelled = copy.deepcopy(theirs)
    funnelled["TCP"]["443"] = {"HTTPS": True}
    funnelled["Web"] = {f"{HOSTNAME}:443": {"Handlers": {"/": {"Proxy": funnel_target(INGRESS_PORT)}}}}
    funnelled["AllowFunnel"] = {f"{HOSTNAME}:443": True}
    host.ssh(f"printf %s {shlex.quote(json.dumps(funnelled))} | sudo tailscale serve set-raw")
    assert funnel_matches(day.serve_status(), HOSTNAME, INGRESS_PORT)

    off = day.deploy()  # the inventory says funnel: false (step 2)
    assert off.returncode == 0, off.output[-6000:]
    assert "Tailscale and Funnel | mcpgate's Funnel off" in _changed(off)
    assert day.serve_status() == theirs
    again = day.deploy()
    assert again.returncode == 0 and _changed(again) == [], again.output[-4000:]
    assert day.serve_status() == theirs


def test_6_a_damaged_key_is_reported_as_damaged(day: Tailnet) -> None:
    day.host.ssh("sudo tailscale logout")
    path = day.secrets_dir / "gateway.lan" / "tokens" / "tailscale-auth-key"
    path.write_bytes(b"damaged key with spaces")
    failed = day.deploy()
    assert failed.returncode != 0
    assert "tailscale is not logged in and the store's auth key cannot be used: damaged secret" in failed.output
    assert "store has no auth key" not in failed.output and "Traceback" not in failed.output
    # Set again, the next deploy joins again.
    assert day.set_key(day.key.encode()).returncode == 0
    fixed = day.deploy()
    assert fixed.returncode == 0, fixed.output[-6000:]
    assert day.status()["BackendState"] == "Running"
