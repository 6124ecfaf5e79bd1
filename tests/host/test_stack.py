"""The live host matches the inventory: containers, network exposure, files, secrets, endpoints."""

from __future__ import annotations

import json
import posixpath
import shlex
import time

import pytest

from mcpgate.container_specs import LABEL_STACK, stack_containers
from mcpgate.layout import container_name
from mcpgate.model import Stack
from mcpgate.model.network_plan import stack_networks
from mcpgate.render import Rendered
from mcpgate.render_services import DISCOVERY_ALIASES
from mcpgate.secrets import StackSecrets
from mcpgate.tailscale_node import backend_running, funnel_matches, node_name
from tests.host.probes import http_script, listening, parse_http, route_devices


def _inspect(host, name: str) -> dict:
    out = host.check_output(f"docker inspect {shlex.quote(name)}")
    return json.loads(out)[0]


def _http(host, stack: Stack, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, str]:
    """GET through the ingress on the host's loopback, with the public Host; (status, headers, body)."""
    return parse_http(
        host.check_output(http_script(stack.ingress_port, path, {"Host": stack.hostname, **(headers or {})}))
    )


def _deployed(stack: Stack, rendered: Rendered, components: tuple[str, ...]) -> list:
    """The stack's containers that this deploy ran (all of them unless it was limited)."""

    def component(service: str) -> str:
        return "backends" if service.startswith("backend-") else service

    return [c for c in stack_containers(stack, rendered) if component(c.service) in components]


def _health_settled(host, name: str, seconds: float = 30) -> dict:
    """The container's state once Docker's health status is past ``starting``: the deploy waits for a
    (re)started container's own healthcheck to pass, Docker runs its first one an interval (10 s) later."""
    deadline = time.monotonic() + seconds
    while True:
        info = _inspect(host, name)
        if (info["State"].get("Health") or {}).get("Status") != "starting" or time.monotonic() > deadline:
            return info
        time.sleep(0.5)


def test_every_container_runs_healthy_with_the_expected_image(
    host, stack: Stack, rendered: Rendered, components: tuple[str, ...]
) -> None:
    for spec in _deployed(stack, rendered, components):
        info = _health_settled(host, spec.name)
        assert info["State"]["Running"], spec.name
        health = (info["State"].get("Health") or {}).get("Status")
        assert health in (None, "healthy"), f"{spec.name} is {health}"
        assert info["Config"]["Image"] == spec.image, spec.name
        assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        assert info["HostConfig"]["Init"] is True
        assert "no-new-privileges:true" in info["HostConfig"]["SecurityOpt"]
        assert info["HostConfig"]["ReadonlyRootfs"] is spec.read_only


def test_the_containers_log_where_the_inventory_says(
    host, stack: Stack, rendered: Rendered, components: tuple[str, ...]
) -> None:
    """audit.logs: the journal (kept past a container, as long as the drop-in says) or Docker's files."""
    for spec in _deployed(stack, rendered, components):
        log = _inspect(host, spec.name)["HostConfig"]["LogConfig"]
        if stack.audit.logs == "journald":
            assert log["Type"] == "journald", spec.name
        else:
            assert (log["Type"], log["Config"]) == ("json-file", {"max-size": "10m", "max-file": "3"}), spec.name
    conf = host.file(f"/etc/systemd/journald.conf.d/{stack.name}.conf")
    if rendered.journal is None:
        assert not conf.exists
        return
    assert conf.exists and conf.content == rendered.journal.content
    assert (conf.user, conf.mode) == ("root", 0o644)
    # journald runs with it: the journal is on disk, and the container's lines are in it.
    assert host.file("/var/log/journal").is_directory
    name = container_name(stack.name, "authelia" if "authelia" in components else "redis")
    assert host.run(f"journalctl -q --no-pager -n 1 CONTAINER_NAME={shlex.quote(name)}").stdout.strip(), name


def test_only_the_ingress_is_published_and_only_on_loopback(host, stack: Stack) -> None:
    label = shlex.quote(f"{LABEL_STACK}={stack.name}")
    names = host.check_output(f"docker ps -a --filter label={label} --format '{{{{.Names}}}}'").split()
    published = {}
    for name in names:
        bindings = _inspect(host, name)["HostConfig"]["PortBindings"] or {}
        if bindings:
            published[name] = bindings
    ingress = container_name(stack.name, "ingress")
    assert list(published) == [ingress], published
    (binding,) = [b for bs in published[ingress].values() for b in bs]
    assert binding == {"HostIp": "127.0.0.1", "HostPort": str(stack.ingress_port)}
    sockets = listening(host.check_output("cat /proc/net/tcp /proc/net/tcp6"))
    assert {a for a, port in sockets if port == stack.ingress_port} == {"127.0.0.1"}


def test_redis_and_backends_are_unreachable_from_the_host(
    host, stack: Stack, rendered: Rendered, components: tuple[str, ...]
) -> None:
    """Every network but the edge (and a backend's egress) is internal and its bridge has no address
    on the host, so the host has no route into it. Checked from the routing table: no route (not even
    the one an address on the bridge would bring) goes over such a bridge."""
    internal = {n.name: n for n in stack_networks(stack) if n.internal}
    bridges = {}
    for name in internal:
        net = json.loads(host.check_output(f"docker network inspect {shlex.quote(name)}"))[0]
        assert net["Internal"] is True, name
        assert net["Options"].get("com.docker.network.bridge.inhibit_ipv4") == "true", name
        bridges[name] = f"br-{net['Id'][:12]}"
    routed = route_devices(host.check_output("cat /proc/net/route"))
    assert not routed & set(bridges.values()), f"the host routes into {sorted(routed & set(bridges.values()))}"
    private = [c for c in _deployed(stack, rendered, components) if c.service != "ingress"]
    assert private
    for spec in private:
        info = _inspect(host, spec.name)
        assert not info["HostConfig"]["PortBindings"], spec.name


def test_each_network_holds_only_its_containers(
    host, stack: Stack, rendered: Rendered, components: tuple[str, ...]
) -> None:
    """A backend shares its network with agentgateway only; Redis with Authelia only."""
    wanted: dict[str, set[str]] = {n.name: set() for n in stack_networks(stack)}
    for spec in _deployed(stack, rendered, components):
        for network in spec.networks:
            wanted[network].add(spec.name)
    for name, containers in wanted.items():
        net = json.loads(host.check_output(f"docker network inspect {shlex.quote(name)}"))[0]
        attached = {c["Name"] for c in net["Containers"].values()}
        assert attached == containers, f"{name}: {sorted(attached)}"


def test_config_and_secret_files_have_their_owner_and_mode(host, stack: Stack, rendered: Rendered) -> None:
    for d in rendered.dirs:
        f = host.file(posixpath.join(stack.base_dir, d.path))
        assert f.is_directory, d.path
        assert (f.uid, f.gid) == tuple(map(int, d.owner.split(":"))), d.path
        assert f.mode == d.mode, f"{d.path}: {oct(f.mode)}"
    for r in rendered.files:
        f = host.file(posixpath.join(stack.base_dir, r.path))
        assert f.is_file, r.path
        assert (f.uid, f.gid) == tuple(map(int, r.owner.split(":"))), r.path
        assert f.mode == r.mode, f"{r.path}: {oct(f.mode)}"
        assert f.sha256sum == r.sha256, f"{r.path} differs from the render"
        if r.secret:
            assert not f.mode & 0o077, f"{r.path} is readable by others"


def test_no_secret_in_any_container_environment_or_command_line(
    host, stack: Stack, rendered: Rendered, stack_secrets: StackSecrets, components: tuple[str, ...]
) -> None:
    values = stack_secrets.values_that_must_not_leak()
    for spec in _deployed(stack, rendered, components):
        info = _inspect(host, spec.name)
        # A backend's env secrets are in its own environment by design (docker reads them from its
        # env file); nowhere else, and no other secret anywhere.
        backend = next((b for b in stack.enabled_backends if spec.service == f"backend-{b.name}"), None)
        own = {(stack_secrets.token(s.name) or "").strip() for s in (backend.secrets if backend else []) if s.env}
        env = [e for e in info["Config"].get("Env") or [] if e.partition("=")[2] not in own]
        exposed = json.dumps([env, info["Config"].get("Cmd"), info["Config"].get("Entrypoint"), info["Args"]])
        for v in values:
            assert v not in exposed, f"a secret is in {spec.name}'s environment or command line"
    processes = host.check_output("ps -eo args")
    for v in values:
        assert v not in processes, "a secret is on a process command line on the host"


@pytest.mark.parametrize("path", ["/auth/.well-known/openid-configuration", *[a for a, _ in DISCOVERY_ALIASES]])
def test_discovery_documents_carry_the_public_issuer(host, stack: Stack, path: str, authelia_deployed: None) -> None:
    status, _, body = _http(host, stack, path)
    assert status == 200, body
    doc = json.loads(body)
    assert doc["issuer"] == stack.issuer
    assert doc["jwks_uri"] == f"{stack.issuer}/jwks.json"
    assert "S256" in doc["code_challenge_methods_supported"]


def test_jwks_holds_an_rs256_key(host, stack: Stack, authelia_deployed: None) -> None:
    status, _, body = _http(host, stack, "/auth/jwks.json")
    assert status == 200
    keys = json.loads(body)["keys"]
    assert any(k["kty"] == "RSA" and k["alg"] == "RS256" and k.get("kid") for k in keys)


def test_mcp_without_a_token_is_401_with_resource_metadata(host, stack: Stack, gateway_deployed: None) -> None:
    status, headers, _ = _http(host, stack, "/mcp", {"Accept": "application/json, text/event-stream"})
    assert status == 401
    challenge = headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer")
    assert f'resource_metadata="{stack.public_url}/.well-known/oauth-protected-resource/mcp"' in challenge


def test_protected_resource_document_names_resource_and_issuer(host, stack: Stack, gateway_deployed: None) -> None:
    status, _, body = _http(host, stack, "/.well-known/oauth-protected-resource/mcp")
    assert status == 200, body
    doc = json.loads(body)
    assert doc["resource"] == stack.resource
    assert stack.issuer in doc["authorization_servers"]


def test_tailscale_runs_and_funnel_serves_the_ingress(host, stack: Stack) -> None:
    if not stack.tailscale.enabled:
        pytest.skip("tailscale.enabled is False for this host")
    status = json.loads(host.check_output("tailscale status --json"))
    assert backend_running(status)
    assert node_name(status) == stack.hostname
    if stack.tailscale.funnel:
        funnel = json.loads(host.check_output("tailscale funnel status --json"))
        assert funnel_matches(funnel, stack.hostname, stack.ingress_port)


def test_egress_backends_are_kept_to_the_internet(host, stack: Stack) -> None:
    """With an egress backend, the host's firewall holds the stack's rule set (mcpgate.egress), each
    chain jumped to from its built-in one, and the network's bridge is the one the rules name; on a
    systemd host the unit that restores them at boot is enabled. Without one, none of it is there."""
    from mcpgate.egress import egress_firewall
    from mcpgate.hostops.firewall import EgressFirewallState, as_wanted

    fact = EgressFirewallState()
    state = fact.process(host.check_output(fact.command(stack=stack.name)).splitlines())
    wanted = egress_firewall(stack)
    if wanted is None:
        assert not set(state.chains), f"egress chains left on the host: {sorted(state.chains)}"
        return
    assert as_wanted(state, wanted), f"the host's egress chains differ from the rule set {wanted.digest}"
    for net in (n for n in stack_networks(stack) if n.bridge):
        options = json.loads(host.check_output(f"docker network inspect {shlex.quote(net.name)}"))[0]["Options"]
        assert options.get("com.docker.network.bridge.name") == net.bridge, net.name
    if state.systemd:
        assert state.unit_enabled, f"{wanted.unit} is not enabled: the rules would not be back after a reboot"


def test_authelias_users_database_lists_the_inventorys_people(host, stack: Stack, authelia_deployed: None) -> None:
    """Authelia's own file (passwords are its state): the deploy merged exactly the inventory's people
    and their names, e-mails and groups into it. Only the names are read back here."""
    import yaml

    from mcpgate.layout import AUTHELIA_USERS, volume_name

    volume = shlex.quote(volume_name(stack.name, "authelia"))
    text = host.check_output(
        f"dd if=\"$(docker volume inspect --format '{{{{.Mountpoint}}}}' {volume})\"/{AUTHELIA_USERS} "
        "iflag=nofollow status=none"
    )
    users = yaml.safe_load(text)["users"]
    assert sorted(users) == sorted(u.name for u in stack.users)
    for u in stack.users:
        entry = users[u.name]
        assert (entry["displayname"], entry["email"], list(entry.get("groups") or [])) == (
            u.display_name, u.email, list(u.groups),
        )  # fmt: skip
        assert str(entry["password"]).startswith("$argon2id$"), u.name
