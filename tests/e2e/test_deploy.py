"""The deploy on a real host (this machine over SSH): from nothing, idempotent, only what changed restarts.

The steps build on each other and run in file order. Where Authelia or agentgateway cannot run here,
the stack is deployed without it (tests/e2e/harness.py) and each test checks everything else, then
skips with the reason for the part that needs the missing service.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import stat
from pathlib import Path

from tests.e2e.conftest import TIMINGS
from tests.e2e.harness import (
    BASE_DIR,
    INGRESS_PORT,
    PYTHON_BASE,
    STACK_NAME,
    Deployer,
    RunResult,
    containers,
    docker,
    name_of,
    started_at,
    teardown_stack,
)
from tests.e2e.oauth import Flow, Session, jwt_parts, login_alice

GATEWAY = name_of("agentgateway")
STACK = [name_of(s) for s in ("redis", "authelia", "backend-notes", "agentgateway", "ingress")]


def _session() -> Session:
    return Session(f"http://127.0.0.1:{INGRESS_PORT}", "mcp-gateway.home.test")


def _token_for(deployer: Deployer, scope: str = "openid offline_access notes:read") -> dict:
    """A full login as alice with the stored password and TOTP seed; the token response."""
    flow = Flow(_session(), "claude-ai", scope, resource="https://mcp-gateway.home.test/mcp")
    code = login_alice(flow, deployer.store_file)
    r = flow.token(code, deployer.store_file("clients/claude-ai.secret"))
    assert r.status_code == 200, r.text
    return r.json()


def _jwks_kids() -> list[str]:
    r = _session().request("GET", "/auth/jwks.json")
    assert r.status_code == 200, r.text
    return [k["kid"] for k in r.json()["keys"]]


def _restarted(before: dict[str, str]) -> set[str]:
    after = started_at()
    return {name for name in STACK if after.get(name) != before.get(name)}


def test_first_deploy_from_nothing_passes_the_host_checks(deployer: Deployer, first_run: RunResult) -> None:
    assert first_run.changes > 10
    checks = deployer.host_checks()
    assert checks.returncode == 0, checks.stdout[-8000:] + checks.stderr[-2000:]
    assert " passed" in checks.stdout and " failed" not in checks.stdout


def test_second_run_changes_nothing_and_restarts_nothing(deployer: Deployer, first_run: RunResult) -> None:
    before = started_at()
    result = deployer.deploy()
    TIMINGS.append(f"no-op deploy: {result.seconds:.1f} s ({result.changes} operations changed)")
    assert result.returncode == 0, result.output[-4000:]
    assert result.changed_ops == [], result.changed_ops
    assert result.errors == 0
    assert started_at() == before


def test_one_scope_change_restarts_only_agentgateway(deployer: Deployer, first_run: RunResult) -> None:
    # Without agentgateway in the stack its files still change, and nothing else may restart.
    gateway = {GATEWAY} if deployer.has("agentgateway") else set()
    variant = deployer.inventory(
        "_stack['backends'][0]['tools'] = {'notes:read': ['search'], 'notes:write': ['read', 'write', 'delete']}"
    )
    before = started_at()
    result = deployer.deploy(variant)
    TIMINGS.append(f"one-scope-change deploy: {result.seconds:.1f} s ({result.changes} operations changed)")
    assert result.returncode == 0, result.output[-4000:]
    assert _restarted(before) == gateway
    assert any("agentgateway files" in op for op in result.changed_ops), result.changed_ops
    assert all("agentgateway" in op for op in result.changed_ops), result.changed_ops
    rules = Path(f"{BASE_DIR}/agentgateway/config/config.yaml").read_text()
    assert "mcp.tool.name in ['read', 'write', 'delete']" in rules
    # Back to the inventory as it is: again only agentgateway moves.
    before = started_at()
    assert deployer.deploy().returncode == 0
    assert _restarted(before) == gateway
    deployer.need("agentgateway", "that the gateway itself restarts")


def test_redis_password_rotation_restarts_redis_and_authelia_only(deployer: Deployer, first_run: RunResult) -> None:
    old = deployer.store_file("redis/password")
    rotated = deployer.mcpgate("secrets", "rotate", "inventory/local.py", "redis-password")
    assert rotated.returncode == 0, rotated.stderr
    assert deployer.store_file("redis/password") != old
    before = started_at()
    result = deployer.deploy()
    assert result.returncode == 0, result.output[-4000:]
    assert _restarted(before) == {name_of(s) for s in ("redis", "authelia") if deployer.has(s)}
    conf = Path(f"{BASE_DIR}/redis/config/redis.conf").read_text()
    assert f"requirepass {deployer.store_file('redis/password')}\n" in conf
    # Authelia's own copy of the password (it reads it from a secret file).
    assert Path(f"{BASE_DIR}/authelia/secrets/redis_password").read_text() == deployer.store_file("redis/password")
    # Authelia keeps its sessions in Redis: a login works only if it has the new password.
    deployer.need("authelia", "that Authelia restarts and signs in with the new password")
    assert "access_token" in _token_for(deployer)


def test_a_deploy_failing_half_way_fails_loudly_then_converges(deployer: Deployer, first_run: RunResult) -> None:
    broken = deployer.inventory(
        "_stack['scopes']['calendar:read'] = 'Read the calendar'\n"
        "_stack['backends'].append({'name': 'calendar', 'image': 'mcpgate-local/calendar-missing:0.0.1', "
        "'port': 9000, 'tools': {'calendar:read': ['events']}})"
    )
    result = deployer.deploy(broken)
    assert result.returncode != 0
    assert "mcpgate-local/calendar-missing:0.0.1" in result.output
    assert result.errors >= 1 or "No hosts remaining" in result.output
    good = deployer.deploy()
    assert good.returncode == 0, good.output[-4000:]
    again = deployer.deploy()
    assert again.returncode == 0 and again.changed_ops == [], again.changed_ops
    assert name_of("backend-calendar") not in containers()


def test_a_backend_taken_out_of_the_inventory_goes_with_its_network_and_files(
    deployer: Deployer, first_run: RunResult
) -> None:
    """Removing a backend removes its container, its network and its rendered files; its data volume
    is kept (and the output says so); the other containers stay (agentgateway alone changes: one
    target and one network fewer); the next run changes nothing. Added again, it finds its data;
    removed with ``--data mcpgate_purge=scratch``, its volume goes too."""
    scratch = name_of("backend-scratch")
    volume = f"{STACK_NAME}-scratch-data"
    with_scratch = deployer.inventory(
        "_stack['backends'].append({'name': 'scratch', 'image': " + repr(PYTHON_BASE) + ", "
        "'command': ['python3', '-m', 'http.server', '8080'], 'port': 8080, 'scope': 'notes:read', "
        "'user': '10003:10003', 'secrets': [{'name': 'scratch-key', 'file': '/run/secrets/key'}], "
        "'volumes': [{'source': " + repr(volume) + ", 'target': '/data'}]})"
    )
    try:
        _scratch_comes_and_goes(deployer, with_scratch, scratch, volume)
    finally:
        docker("rm", "-fv", scratch, check=False)
        docker("network", "rm", f"{STACK_NAME}-to-scratch", check=False)
        docker("volume", "rm", volume, check=False)  # not the stack's (docker made it): not labelled


def _scratch_comes_and_goes(deployer: Deployer, with_scratch: Path, scratch: str, volume: str) -> None:
    stored = deployer.mcpgate("secrets", "set", str(with_scratch), "scratch-key", stdin="scratch-key-value")
    assert stored.returncode == 0, stored.stderr
    result = deployer.deploy(with_scratch)
    assert result.returncode == 0, result.output[-4000:]
    assert scratch in containers()
    network = f"{STACK_NAME}-to-scratch"
    assert docker("network", "inspect", network, check=False).returncode == 0
    key_file = Path(f"{BASE_DIR}/backends/scratch/files/scratch-key")
    assert key_file.read_text() == "scratch-key-value"

    before = started_at()
    result = deployer.deploy()
    assert result.returncode == 0, result.output[-4000:]
    assert scratch not in containers()
    assert docker("network", "inspect", network, check=False).returncode != 0
    assert not key_file.exists()
    assert docker("volume", "inspect", volume, check=False).returncode == 0, "the data volume must be kept"
    assert f"its data is kept: {volume}" in result.output
    stayed = {n for n in before if n != scratch and n != GATEWAY}
    moved = {n for n, t in started_at().items() if n in stayed and t != before[n]}
    # Whether the deploy restarted it or it restarted by itself (RestartCount), and what changed.
    restarts = {n: containers()[n]["RestartCount"] for n in moved}
    assert not moved, f"restarted: {restarts}; the deploy changed: {result.changed_ops}"

    again = deployer.deploy()
    assert again.returncode == 0 and again.changed_ops == [], again.changed_ops

    # Back, on the volume it had; then taken out with its data.
    result = deployer.deploy(with_scratch)
    assert result.returncode == 0 and scratch in containers(), result.output[-4000:]
    refused = deployer.deploy(with_scratch, data={"mcpgate_purge": "scratch"})
    assert refused.returncode != 0 and "scratch is still an enabled backend" in refused.output
    assert refused.changed_ops == [] and scratch in containers()
    purged = deployer.deploy(data={"mcpgate_purge": "scratch"})
    assert purged.returncode == 0, purged.output[-4000:]
    assert scratch not in containers()
    assert docker("volume", "inspect", volume, check=False).returncode != 0, "purged: the volume must be gone"
    assert f"goes with its data volumes (mcpgate_purge): {volume}" in purged.output
    again = deployer.deploy()
    assert again.returncode == 0 and again.changed_ops == [], again.changed_ops


def _host_files() -> dict[str, str]:
    """Every file of the running stack under its folder on the host, by path, with its owner, mode
    and digest. A removed container's start record (.state/<container>.config) stays behind after
    it (see test_a_backend_taken_out...): it belongs to no running container and is left out."""
    running = set(containers())
    files = {}
    for path in sorted(Path(BASE_DIR).rglob("*")):
        if path.parent.name == ".state" and path.name.removesuffix(".config") not in running:
            continue
        if path.is_file():
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            files[str(path.relative_to(BASE_DIR))] = f"{st.st_uid}:{st.st_gid} {stat.S_IMODE(st.st_mode):o} {digest}"
    return files


def test_logs_to_a_journal_the_host_lacks_are_refused_before_anything_changes(
    deployer: Deployer, first_run: RunResult
) -> None:
    """audit.logs "journald" (inventory/home.py's default) on this machine, which has no systemd journal."""
    before = started_at()
    refused = deployer.deploy(deployer.inventory("_stack['audit'] = {'logs': 'journald'}"))
    assert refused.returncode != 0
    assert "audit.logs is 'journald' (the default) but this host has no systemd journal" in refused.output
    assert 'set audit.logs to "docker"' in refused.output and "Traceback" not in refused.output
    assert refused.changed_ops == [] and started_at() == before


def test_rebuild_from_scratch_keeps_every_credential(deployer: Deployer, first_run: RunResult) -> None:
    authelia = deployer.has("authelia")
    before = _token_for(deployer) if authelia else None
    kids = _jwks_kids() if authelia else None
    files = _host_files()
    assert "agentgateway/config/jwks.json" in files and "redis/config/redis.conf" in files, sorted(files)
    teardown_stack()  # every container, volume, network and the stack's folder
    assert not Path(BASE_DIR).exists()
    result = deployer.deploy()
    TIMINGS.append(f"rebuild from scratch: {result.seconds:.1f} s")
    assert result.returncode == 0, result.output[-4000:]
    # The same store gives the same files, byte for byte: keys, secrets, digests, users, configs.
    assert _host_files() == files
    deployer.need("authelia", "the same JWKS, client secret, password, TOTP seed and sub at Authelia")
    assert before is not None
    assert _jwks_kids() == kids
    after = _token_for(deployer)  # same client secret, same password, same TOTP seed
    _, claims_before = jwt_parts(before["access_token"])
    _, claims_after = jwt_parts(after["access_token"])
    assert claims_after["sub"] == claims_before["sub"] == deployer.store_file("users/alice.sub")


def test_a_non_root_ssh_user_with_sudo_deploys_the_same_stack(deployer: Deployer, first_run: RunResult) -> None:
    """inventory/home.py logs in as an ordinary user and uses sudo: uploads then pass through a staging
    folder private to that user, never through a world-readable /tmp."""
    user = os.environ.get("MCPGATE_SSHD_DEPLOY_USER", "mcpgate-deploy")
    as_user = f"local[0][1].update({{'ssh_user': {user!r}, '_sudo': True}})\n"
    changed = deployer.inventory(as_user + "_stack['backends'][0]['tools'] = {'notes:read': ['search', 'read', 'write']"
                                 ", 'notes:write': ['delete']}")  # fmt: skip
    result = deployer.deploy(changed)
    assert result.returncode == 0, result.output[-4000:]
    assert any("agentgateway files" in op for op in result.changed_ops), result.changed_ops
    staging = Path(BASE_DIR) / ".upload"
    st = staging.stat()
    assert pwd.getpwuid(st.st_uid).pw_name == user and stat.S_IMODE(st.st_mode) == 0o700
    assert list(staging.iterdir()) == []  # nothing left behind
    config = Path(f"{BASE_DIR}/agentgateway/config/config.yaml")
    assert "['search', 'read', 'write']" in config.read_text()
    assert (config.stat().st_uid, stat.S_IMODE(config.stat().st_mode)) == (10300, 0o600)
    back = deployer.inventory(as_user)
    assert deployer.deploy(back).returncode == 0
    again = deployer.deploy(back)
    assert again.returncode == 0 and again.changed_ops == [], again.changed_ops
