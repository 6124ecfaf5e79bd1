"""Single services run exactly as the deploy specifies them (same ``docker create`` arguments), on a
throwaway network: these need only the Docker engine and the harness' local images, so they run
wherever bin/test runs as root, also where Authelia or agentgateway cannot be had.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets as pysecrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mcpgate.container_specs import LABEL_STACK, ContainerSpec, backend_spec, ingress_spec, redis_spec
from mcpgate.layout import network_slots
from mcpgate.model import Stack, load_stack
from mcpgate.model.network_plan import NetworkSpec
from mcpgate.render import Rendered, render_stack
from mcpgate.render_services import DISCOVERY_ALIASES, GATEWAY_DENIAL, GATEWAY_PASSED_HEADER
from mcpgate.secrets import SecretStore, StackSecrets
from tests.e2e.harness import LOCAL_IMAGES, PYTHON_BASE, docker, image_exists, random_network_pool

pytestmark = pytest.mark.skipif(
    os.environ.get("MCPGATE_E2E") != "1", reason="the test harness is not up (run the suite with bin/test as root)"
)

ECHO = r"""
import json, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

def handler(port):
    class H(BaseHTTPRequestHandler):
        # Answers with the status and WWW-Authenticate the request asks for (X-Echo-*), so the
        # ingress' handling of the gateway's answers can be seen.
        def do_GET(self):
            body = json.dumps({"port": port, "path": self.path, "headers": dict(self.headers.items())}).encode()
            if self.headers.get("X-Echo-Body") is not None:
                body = self.headers["X-Echo-Body"].encode()
            self.send_response(int(self.headers.get("X-Echo-Status", "200")))
            if self.headers.get("X-Echo-WWW-Authenticate"):
                self.send_header("WWW-Authenticate", self.headers["X-Echo-WWW-Authenticate"])
            if self.headers.get("X-Echo-Passed"):
                self.send_header(self.headers["X-Echo-Passed"], "1")
            self.send_header("Content-Type", self.headers.get("X-Echo-Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        do_POST = do_DELETE = do_GET
        def log_message(self, *a):
            pass
    return H

servers = [ThreadingHTTPServer(("0.0.0.0", p), handler(p)) for p in (9091, 3000)]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
"""


PROBE_TOKEN = f"ghp_{pysecrets.token_hex(16)}"
PROBE_KEY = f"-----BEGIN PRIVATE KEY-----\n{pysecrets.token_hex(24)}\n-----END PRIVATE KEY-----"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Rendered, Path, str]]:
    for ref in (LOCAL_IMAGES["ingress"], LOCAL_IMAGES["redis"], PYTHON_BASE):
        if not image_exists(ref):
            pytest.skip(f"local image {ref} is missing (tests/harness/build-images.sh)")
    import runpy

    data = runpy.run_path("inventory/local.py")["local"][0][1]["mcpgate"]
    data = {**data, "images": {**data["images"], "ingress": LOCAL_IMAGES["ingress"], "redis": LOCAL_IMAGES["redis"]}}
    data["backends"][0] = {**data["backends"][0], "base_image": PYTHON_BASE}
    # A backend that needs secrets the way a real GitHub MCP server does (a variable) and a key file.
    data["backends"].append(
        {
            "name": "probe",
            "image": PYTHON_BASE,
            "port": 8080,
            "user": "10002:10002",
            "scope": "notes:read",
            "secrets": [
                {"name": "probe-token", "env": "PROBE_TOKEN"},
                {"name": "probe-key", "file": "/run/secrets/probe.pem"},
            ],
        }
    )
    # A name of this test's own: its containers, network and volumes are nobody else's.
    data["name"] = f"mcpgate-test-{pysecrets.token_hex(4)}"
    data["network_pool"] = random_network_pool()
    stack = load_stack("services-test", data)
    root = tmp_path_factory.mktemp("services")
    store = SecretStore.for_host(root / "secrets", "services-test")
    store.set("tokens/probe-token", PROBE_TOKEN)
    store.set("tokens/probe-key", PROBE_KEY)
    rendered = render_stack(stack, StackSecrets(store, stack))
    base = root / "base"
    for d in rendered.dirs:
        (base / d.path).mkdir(parents=True, exist_ok=True)
        os.chown(base / d.path, *map(int, d.owner.split(":")))
        (base / d.path).chmod(d.mode)
    for f in rendered.files:
        (base / f.path).write_bytes(f.content)
        os.chown(base / f.path, *map(int, f.owner.split(":")))
        (base / f.path).chmod(f.mode)
    # The stack's edge network as the deploy creates it (the pool's first slot), so connections
    # through the published port come from the address the ingress trusts.
    network = f"{stack.name}-services"
    edge = NetworkSpec(network, internal=False, pinned=True)
    docker("network", "create", *edge.create_args(network_slots(stack.network_pool)[0], stack.name))
    try:
        yield stack, rendered, base, network
    finally:
        names = docker("ps", "-aq", "--filter", f"network={network}").stdout.split()
        if names:
            docker("rm", "-fv", *names, check=False)
        docker("network", "rm", network, check=False)
        for volume in docker("volume", "ls", "-q", "--filter", f"label={LABEL_STACK}={stack.name}").stdout.split():
            docker("volume", "rm", "-f", volume, check=False)
        shutil.rmtree(base, ignore_errors=True)


def _owned_volume(stack: Stack, volume: str, owner: str) -> None:
    """The volume as the deploy makes it (docker_volume): labelled, its root owned by the service, 0700."""
    docker("volume", "create", "--label", f"{LABEL_STACK}={stack.name}", volume)
    mountpoint = Path(json.loads(docker("volume", "inspect", volume).stdout)[0]["Mountpoint"])
    os.chown(mountpoint, *map(int, owner.split(":")))
    mountpoint.chmod(0o700)


def _run(spec: ContainerSpec, base: Path, network: str, name: str, **changes: object) -> str:
    """Create and start ``spec`` as the deploy would, on the test network and under the test's base dir."""
    mounts = [dataclasses.replace(m, source=m.source.replace(spec_base(spec), str(base))) for m in spec.mounts]
    spec = dataclasses.replace(spec, name=name, networks=[network], mounts=mounts, **changes)
    docker("create", *spec.run_args())
    docker("start", name)
    return name


def spec_base(spec: ContainerSpec) -> str:
    return "/opt/mcpgate"


def _wait(name: str, healthy: bool = True, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = json.loads(docker("inspect", name).stdout)[0]
        if info["RestartCount"] >= 3:
            break  # crash-looping: no use waiting
        state = info["State"]
        status = (state.get("Health") or {}).get("Status") if healthy else ("running" if state["Running"] else "")
        if status in ("healthy", "running"):
            return
        time.sleep(1)
    logs = docker("logs", "--tail", "30", name, check=False)
    pytest.fail(f"{name} not ready: {logs.stdout}{logs.stderr}")


# --- the ingress -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ingress(workspace: tuple[Stack, Rendered, Path, str]) -> Iterator[tuple[Stack, int]]:
    stack, _, base, network = workspace
    echo_dir = base / "echo"
    echo_dir.mkdir()
    (echo_dir / "echo.py").write_text(ECHO)
    echo_dir.chmod(0o755)
    docker(
        "run", "-d", "--name", f"{network}-upstream", "--network", network,
        "--network-alias", "authelia", "--network-alias", "agentgateway",
        "-v", f"{echo_dir}:/echo:ro", PYTHON_BASE, "python3", "/echo/echo.py",
    )  # fmt: skip
    port = _free_port()
    name = _run(ingress_spec(stack), base, network, f"{network}-ingress", ports=[f"127.0.0.1:{port}:8080"], aliases=[])
    _wait(name)
    yield stack, port


def _get(port: int, path: str, stack: Stack, **headers: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", headers={"Host": stack.hostname, **headers}, timeout=10)


def test_auth_keeps_its_prefix_and_gets_the_public_scheme_and_host(ingress: tuple[Stack, int]) -> None:
    stack, port = ingress
    r = _get(port, "/auth/api/health?x=1", stack)
    seen = r.json()
    assert seen["port"] == 9091
    assert seen["path"] == "/auth/api/health?x=1"
    assert seen["headers"]["X-Forwarded-Proto"] == "https"
    assert seen["headers"]["X-Forwarded-Host"] == stack.hostname
    assert seen["headers"]["Host"] == stack.hostname


def test_client_forwarded_headers_are_overwritten_or_dropped(ingress: tuple[Stack, int]) -> None:
    stack, port = ingress
    spoof = {
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "evil.example",
        "Forwarded": "host=evil.example;proto=http",
        "X-Real-IP": "1.2.3.4",
        "X-Original-URL": "/admin",
    }
    seen = _get(port, "/auth/.well-known/openid-configuration", stack, **spoof).json()["headers"]
    assert seen["X-Forwarded-Proto"] == "https"
    assert seen["X-Forwarded-Host"] == stack.hostname
    assert "Forwarded" not in seen and "X-Real-Ip" not in seen and "X-Original-Url" not in seen
    # Another Host from the client changes nothing upstream either.
    seen = httpx.get(f"http://127.0.0.1:{port}/auth/x", headers={"Host": "evil.example"}, timeout=10).json()
    assert seen["headers"]["Host"] == stack.hostname and seen["headers"]["X-Forwarded-Host"] == stack.hostname


def test_the_funnel_clients_address_is_kept_from_the_published_port_only(
    ingress: tuple[Stack, int], workspace: tuple[Stack, Rendered, Path, str]
) -> None:
    """tailscaled connects through the published port and names the Funnel client in
    X-Forwarded-For: Authelia must see that address. Anyone else (another container on the edge
    network) cannot choose its address that way."""
    stack, port = ingress
    network = workspace[3]
    seen = _get(port, "/auth/api/health", stack, **{"X-Forwarded-For": "203.0.113.7"}).json()["headers"]
    assert seen["X-Forwarded-For"] == f"203.0.113.7, {stack.edge_gateway_address}"
    # Without one, the client is the gateway address itself.
    seen = _get(port, "/auth/api/health", stack).json()["headers"]
    assert seen["X-Forwarded-For"] == stack.edge_gateway_address
    # From inside the edge network, a forged value is replaced by the sender's own address.
    headers = {"Host": stack.hostname, "X-Forwarded-For": "203.0.113.7"}
    probe = (
        "import json, urllib.request as u; "
        f"r = u.Request('http://ingress:8080/auth/api/health', headers={headers!r}); "
        "print(u.urlopen(r).read().decode())"
    )
    out = docker(
        "run", "--rm", "--network", network, "--add-host", f"ingress:{_address(f'{network}-ingress', network)}",
        PYTHON_BASE, "python3", "-c", probe,
    ).stdout  # fmt: skip
    forwarded = json.loads(out)["headers"]["X-Forwarded-For"]
    assert "203.0.113.7" not in forwarded and forwarded != stack.edge_gateway_address


def _address(container: str, network: str) -> str:
    return json.loads(docker("inspect", container).stdout)[0]["NetworkSettings"]["Networks"][network]["IPAddress"]


@pytest.mark.parametrize(("alias", "target"), DISCOVERY_ALIASES)
def test_well_known_aliases_reach_authelias_documents(ingress: tuple[Stack, int], alias: str, target: str) -> None:
    stack, port = ingress
    seen = _get(port, alias, stack).json()
    assert (seen["port"], seen["path"]) == (9091, target)


@pytest.mark.parametrize("path", ["/mcp", "/.well-known/oauth-protected-resource/mcp"])
def test_mcp_routes_reach_the_gateway(ingress: tuple[Stack, int], path: str) -> None:
    stack, port = ingress
    seen = _get(port, path, stack).json()
    assert (seen["port"], seen["path"]) == (stack.gateway_port, path)
    assert seen["headers"]["X-Forwarded-Proto"] == "https"


def _mcp(port: int, stack: Stack, method: str = "POST", **echo: str) -> httpx.Response:
    headers = {"Host": stack.hostname, **{f"X-Echo-{k.replace('_', '-')}": v for k, v in echo.items()}}
    return httpx.request(method, f"http://127.0.0.1:{port}/mcp", headers=headers, timeout=10)


def test_the_401_challenge_names_the_scopes_to_ask_for(ingress: tuple[Stack, int]) -> None:
    stack, port = ingress
    metadata = f'resource_metadata="{stack.resource_metadata_url}"'
    r = _mcp(port, stack, Status="401", WWW_Authenticate=f"Bearer {metadata}")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == f'Bearer {metadata}, scope="{" ".join(stack.scopes_supported)}"'


def test_a_403_from_the_gateway_becomes_a_step_up_challenge(ingress: tuple[Stack, int]) -> None:
    """The gateway's own no-scope denial, as agentgateway 1.4 answers it (text/plain, GATEWAY_DENIAL)."""
    stack, port = ingress
    r = _mcp(port, stack, Status="403", Content_Type="text/plain", Body=GATEWAY_DENIAL)
    assert r.status_code == 403
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="insufficient_scope", ')
    assert f'scope="{" ".join(stack.scopes_supported)}"' in challenge
    assert f'resource_metadata="{stack.resource_metadata_url}"' in challenge
    body = r.json()
    assert body["error"] == "insufficient_scope" and "notes:read notes:write" in body["error_description"]


@pytest.mark.parametrize(
    ("content_type", "body", "passed"),
    [
        ("application/json", '{"error":"forbidden","message":"this token may not do that"}', True),
        ("text/plain", "CSRF validation failed", False),
        ("text/plain", "forbidden by this backend", True),
        ("text/plain", GATEWAY_DENIAL, True),
    ],
    ids=["a-backends-json", "another-gateway-refusal", "a-backends-text", "a-backends-text-like-the-gateways"],
)
def test_any_other_403_reaches_the_client_as_it_is(
    ingress: tuple[Stack, int], content_type: str, body: str, passed: bool
) -> None:
    """A backend's 403 (the gateway passes upstream errors on, with its mark) or a refusal for
    another reason is no reason to sign in again: no step-up challenge, the answer unchanged, even
    a backend's that has the very text of the gateway's denial. The mark goes no further."""
    stack, port = ingress
    mark = {"Passed": GATEWAY_PASSED_HEADER} if passed else {}
    r = _mcp(port, stack, Status="403", Content_Type=content_type, Body=body, **mark)
    assert r.status_code == 403
    assert "www-authenticate" not in r.headers
    assert r.text == body
    assert GATEWAY_PASSED_HEADER.lower() not in r.headers


def test_ending_a_session_answers_204_and_nothing_else_changes(ingress: tuple[Stack, int]) -> None:
    stack, port = ingress
    assert _mcp(port, stack, "DELETE", Status="202").status_code == 204
    # A notification (POST) is accepted with 202, as the gateway says.
    assert _mcp(port, stack, "POST", Status="202").status_code == 202
    assert _mcp(port, stack, "DELETE", Status="405").status_code == 405
    assert _mcp(port, stack, "GET").status_code == 200


@pytest.mark.parametrize("path", ["/", "/admin", "/authx", "/mcpx", "/.well-known/security.txt"])
def test_everything_else_is_404(ingress: tuple[Stack, int], path: str) -> None:
    stack, port = ingress
    assert _get(port, path, stack).status_code == 404


def test_the_ingress_is_published_on_loopback_only(ingress: tuple[Stack, int], workspace: tuple) -> None:
    _, port = ingress
    network = workspace[3]
    bindings = json.loads(docker("inspect", f"{network}-ingress").stdout)[0]["HostConfig"]["PortBindings"]
    assert bindings == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}


def _caddy_status(name: str) -> dict[str, str]:
    """/proc/<pid>/status of the caddy process in a container (the child of its init)."""
    init = json.loads(docker("inspect", name).stdout)[0]["State"]["Pid"]
    for child in Path(f"/proc/{init}/task/{init}/children").read_text().split():
        status = Path(f"/proc/{child}/status").read_text()
        if "caddy" in status.splitlines()[0]:
            return dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    raise AssertionError(f"no caddy process under {name}'s init")


def test_the_ingress_keeps_no_effective_capability(ingress: tuple[Stack, int], workspace: tuple) -> None:
    """NET_BIND_SERVICE stays in the bounding set only so that the kernel execs the official caddy
    binary (file capability +ep); as a non-root uid under no-new-privileges it is never effective."""
    status = _caddy_status(f"{workspace[3]}-ingress")
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0, status
    assert int(status["CapBnd"], 16) == 1 << 10, status  # CAP_NET_BIND_SERVICE alone
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Uid"].split()[1] == ingress[0].uids.ingress.split(":")[0]


def test_without_net_bind_service_the_ingress_cannot_start(workspace: tuple[Stack, Rendered, Path, str]) -> None:
    """The stand-in carries the official binary's file capability, so dropping the capability the
    deploy keeps fails here exactly as it would on a user's host."""
    stack, _, base, network = workspace
    name = _run(ingress_spec(stack), base, network, f"{network}-ingress-nocap", cap_add=[], ports=[], aliases=[])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = json.loads(docker("inspect", name).stdout)[0]
        if info["RestartCount"] >= 1 or not info["State"]["Running"]:
            break
        time.sleep(0.5)
    logs = docker("logs", name, check=False)
    assert "operation not permitted" in (logs.stdout + logs.stderr).lower(), logs.stdout + logs.stderr


# --- Redis -----------------------------------------------------------------------------------------


def test_redis_requires_its_password(workspace: tuple[Stack, Rendered, Path, str]) -> None:
    stack, rendered, base, network = workspace
    spec = redis_spec(stack)
    for volume, owner in spec.owned_volumes.items():
        _owned_volume(stack, volume, owner)
    name = _run(spec, base, network, f"{network}-redis")
    _wait(name)  # the healthcheck itself requires NOAUTH for an unauthenticated PING
    password = rendered.file("redis/config/redis.conf").content.decode().split("requirepass ")[1].split()[0]
    anon = docker("exec", name, "redis-cli", "ping")
    assert "NOAUTH" in anon.stdout + anon.stderr
    authed = subprocess.run(
        ["docker", "exec", "-i", name, "redis-cli", "--askpass", "ping"],
        input=password + "\n", capture_output=True, text=True,
    )  # fmt: skip
    assert "PONG" in authed.stdout
    info = json.loads(docker("inspect", name).stdout)[0]
    assert info["Config"]["User"] == stack.uids.redis
    assert info["HostConfig"]["PortBindings"] in ({}, None)


# --- the notes backend, built from the rendered build context --------------------------------------


def test_notes_backend_image_builds_and_serves_mcp(workspace: tuple[Stack, Rendered, Path, str]) -> None:
    stack, rendered, base, network = workspace
    (build,) = rendered.builds
    built = docker(
        "build", "--pull=false", "-t", build.image, "--build-arg", f"BASE_IMAGE={build.base_image}",
        str(base / build.dir), check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    vault = base / "vault"
    vault.mkdir()
    (vault / "hello.md").write_text("# Hello\nthe gateway works\n")
    for p in (vault, vault / "hello.md"):
        os.chown(p, 10001, 10001)
    backend = stack.enabled_backends[0]
    spec = backend_spec(stack, backend, rendered)
    spec = dataclasses.replace(spec, mounts=[dataclasses.replace(spec.mounts[0], source=str(vault))])
    name = _run(spec, base, network, f"{network}-notes")
    _wait(name)
    ip = json.loads(docker("inspect", name).stdout)[0]["NetworkSettings"]["Networks"][network]["IPAddress"]
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }  # fmt: skip
    url = f"http://{ip}:{backend.port}{backend.path}"
    r = httpx.post(url, json=init, headers=headers, timeout=20)
    assert r.status_code == 200, r.text
    session = r.headers.get("mcp-session-id")
    if session:
        headers["mcp-session-id"] = session
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "search", "arguments": {"query": "gateway"}},
    }
    r = httpx.post(url, json=call, headers=headers, timeout=20)
    assert r.status_code == 200, r.text
    assert "hello.md" in r.text
    info = json.loads(docker("inspect", name).stdout)[0]
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["HostConfig"]["Memory"] > 0 and info["HostConfig"]["PidsLimit"] == backend.limits.pids


SHOW_SECRETS = r"""
import json, os, time
st = os.stat("/run/secrets/probe.pem")
print(json.dumps({
    "uid": os.getuid(), "env": os.environ.get("PROBE_TOKEN"), "file": open("/run/secrets/probe.pem").read(),
    "mode": oct(st.st_mode & 0o777), "owner": st.st_uid,
}), flush=True)
time.sleep(600)
"""


def test_a_backend_gets_its_secrets_by_variable_and_read_only_file(
    workspace: tuple[Stack, Rendered, Path, str],
) -> None:
    stack, rendered, base, network = workspace
    backend = next(b for b in stack.enabled_backends if b.name == "probe")
    spec = backend_spec(stack, backend, rendered)
    assert spec.env_file
    env_file = spec.env_file.replace(spec_base(spec), str(base))
    name = _run(spec, base, network, f"{network}-probe", env_file=env_file, command=["python3", "-c", SHOW_SECRETS])
    deadline = time.monotonic() + 60
    while not (out := docker("logs", name).stdout.strip()) and time.monotonic() < deadline:
        time.sleep(0.5)
    seen = json.loads(out.splitlines()[0])
    assert seen == {"uid": 10002, "env": PROBE_TOKEN, "file": PROBE_KEY, "mode": "0o400", "owner": 10002}
    # Not on any command line: not the container's, not docker's own.
    info = json.loads(docker("inspect", name).stdout)[0]
    assert PROBE_TOKEN not in json.dumps([info["Args"], info["Config"]["Cmd"], info["Path"]])
    assert PROBE_TOKEN not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    # Written read-only: the backend cannot change its key.
    wrote = docker("exec", name, "sh", "-c", "echo x > /run/secrets/probe.pem", check=False)
    assert wrote.returncode != 0 and "Read-only file system" in wrote.stderr
