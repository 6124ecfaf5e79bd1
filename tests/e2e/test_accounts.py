"""Accounts over time, against the real Authelia (and agentgateway where a step goes through it): a
person's own password, a lost authenticator, a leaked client secret, a signing-key rollover and a
person taken out of the inventory. Each is an operator command or an inventory change plus a deploy.

The steps run in file order on the session's stack and each leaves it as inventory/local.py says
(the store keeps what was rotated), so the other e2e files can follow. Bob is the person whose
account changes: alice's is what the other files sign in with.
"""

from __future__ import annotations

import secrets as pysecrets
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.harness import (
    INGRESS_PORT,
    STACK_NAME,
    Deployer,
    RunResult,
    docker,
    name_of,
    skip_module_without,
    started_at,
)
from tests.e2e.mcp_client import McpClient
from tests.e2e.oauth import Flow, FlowError, Session, jwt_parts, login, token_request

# Every step signs a person in at Authelia or reads its data volume.
skip_module_without("authelia")

HOSTNAME = "mcp-gateway.home.test"
RESOURCE = f"https://{HOSTNAME}/mcp"
SCOPE = "openid offline_access notes:read notes:write"
INVENTORY = "inventory/local.py"


def session() -> Session:
    """A browser at an address of its own: Authelia bans an address after failed sign-ins, and the
    refusals here must not add up to a ban."""
    xff = f"198.51.100.{pysecrets.randbelow(250) + 1}"
    return Session(f"http://127.0.0.1:{INGRESS_PORT}", HOSTNAME, extra_headers={"X-Forwarded-For": xff})


def sign_in(deployer: Deployer, user: str, password: str | None = None, seed: str | None = None) -> Flow:
    """A full sign-in as ``user`` up to the callback; the flow (its session is signed in, with TOTP)."""
    flow = Flow(session(), "claude-ai", SCOPE, resource=RESOURCE)
    password = password if password is not None else deployer.store_file(f"users/{user}.password")
    seed = seed if seed is not None else deployer.store_file(f"users/{user}.totp")
    flow.callback["code"] = login(flow, user, password, seed)
    return flow


def tokens(deployer: Deployer, user: str, **kwargs: str) -> dict[str, Any]:
    flow = sign_in(deployer, user, **kwargs)
    r = flow.token(flow.callback["code"], deployer.store_file("clients/claude-ai.secret"))
    assert r.status_code == 200, r.text
    return r.json()


def first_factor(user: str, password: str) -> dict[str, Any]:
    flow = Flow(session(), "claude-ai", SCOPE, resource=RESOURCE)
    r = flow.authorize()
    assert r.status_code in (302, 303), r.text
    return flow.first_factor(user, password).json()


def refresh(refresh_token: str, secret: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "resource": RESOURCE}
    return token_request(session(), form, "claude-ai", secret, how="post")


def volume_file(name: str) -> str:
    """A file at the root of Authelia's data volume."""
    mountpoint = docker("volume", "inspect", "--format", "{{.Mountpoint}}", f"{STACK_NAME}-authelia-data").stdout
    return (Path(mountpoint.strip()) / name).read_text()


def users_file() -> dict[str, Any]:
    """Authelia's users database as it is in its data volume."""
    return yaml.safe_load(volume_file("users.yml"))["users"]


def mcp_tools(token: str) -> set[str] | int:
    """The tools the gateway lists for a token (plain names), or the HTTP status it refused with."""
    client = McpClient(f"http://127.0.0.1:{INGRESS_PORT}", HOSTNAME, token)
    r = client.post(
        "initialize",
        {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}},
    )
    if r.status_code != 200:
        return r.status_code
    if r.headers.get("mcp-session-id"):
        client.headers["mcp-session-id"] = r.headers["mcp-session-id"]
    client.post("notifications/initialized", notify=True)
    r = client.post("tools/list")
    if r.status_code != 200:
        return r.status_code
    return {t["name"].removeprefix("notes_") for t in client.message(r)["result"]["tools"]}


def deploy_unchanged(deployer: Deployer) -> None:
    again = deployer.deploy()
    assert again.returncode == 0, again.output[-4000:]
    authelia = name_of("authelia")
    state = docker("inspect", "--format", "{{json .State}}", authelia, check=False).stdout
    logs = docker("logs", "--tail", "30", authelia, check=False)
    assert again.changed_ops == [], f"{again.changed_ops}\n{state}\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}"


def mcpgate_ok(deployer: Deployer, *args: str) -> str:
    r = deployer.mcpgate(*args)
    assert r.returncode == 0, r.stderr
    return r.stdout


# --- a person's own password ------------------------------------------------------------------------


def test_a_person_changes_their_password_and_a_deploy_keeps_it(deployer: Deployer, first_run: RunResult) -> None:
    initial = deployer.store_file("users/bob.password")
    new = "correct horse battery staple " + pysecrets.token_hex(4)
    flow = sign_in(deployer, "bob")  # password and TOTP: the session is elevated (skip_second_factor)
    body = {"username": "bob", "old_password": "not-his-password", "new_password": new}
    wrong = flow.session.request("POST", "/auth/api/change-password", json=body)
    assert wrong.status_code == 401 and wrong.json()["message"] == "Incorrect Password", wrong.text
    weak = flow.session.request("POST", "/auth/api/change-password", json={**body, "old_password": initial,
                                                                               "new_password": "short"})  # fmt: skip
    assert weak.status_code == 400 and "password policy" in weak.json()["message"], weak.text
    changed = flow.session.request("POST", "/auth/api/change-password", json={**body, "old_password": initial})
    # 4.39.20 answers a change it could tell the person about (the notifier) with an empty 200.
    assert changed.status_code == 200, changed.text
    assert "Password changed successfully" in volume_file("notification.txt")

    assert first_factor("bob", initial)["status"] == "KO"
    assert "access_token" in tokens(deployer, "bob", password=new)
    digest = users_file()["bob"]["password"]
    assert digest.startswith("$argon2id$") and digest != deployer.store_file("users/bob.argon2id")

    # A deploy with no change in the inventory: nothing changes, the person's password stays.
    before = started_at()
    deploy_unchanged(deployer)
    assert started_at() == before
    assert users_file()["bob"]["password"] == digest
    assert first_factor("bob", initial)["status"] == "KO"
    assert "access_token" in tokens(deployer, "bob", password=new)

    # An inventory change to bob's attributes is merged: his e-mail changes, his password does not,
    # and Authelia picks the file up without a restart.
    moved = deployer.inventory("_stack['users'][1]['email'] = 'bob@example.net'")
    result = deployer.deploy(moved)
    assert result.returncode == 0, result.output[-4000:]
    assert result.changed_ops == ["Authelia | Authelia's users"], result.changed_ops
    assert "Authelia's users database: updates bob" in result.output
    entry = users_file()["bob"]
    assert (entry["email"], entry["password"], entry["displayname"]) == ("bob@example.net", digest, "Bob")
    assert started_at() == before
    assert "access_token" in tokens(deployer, "bob", password=new)

    # Back to the inventory: bob's e-mail again, his password still his.
    assert deployer.deploy().returncode == 0
    assert users_file()["bob"]["password"] == digest
    deploy_unchanged(deployer)


def test_the_operator_resets_a_forgotten_password(deployer: Deployer, first_run: RunResult) -> None:
    """After the step above bob's password is one he chose (and forgot): the operator gives him a new
    initial one, the deploy sets it once, and a password he chooses after that is kept again."""
    chosen = users_file()["bob"]["password"]
    assert chosen != deployer.store_file("users/bob.argon2id")
    old_initial = deployer.store_file("users/bob.password")
    out = mcpgate_ok(deployer, "secrets", "rotate", INVENTORY, "password/bob")
    assert "rotated password/bob" in out and old_initial not in out
    reset = deployer.store_file("users/bob.password")
    assert reset != old_initial and f"initial password:  {reset}" in mcpgate_ok(deployer, "secrets", "show", INVENTORY)

    before = started_at()
    result = deployer.deploy()
    assert result.returncode == 0, result.output[-4000:]
    assert result.changed_ops == ["Authelia | Authelia's users"], result.changed_ops
    assert "Authelia's users database: resets the password of bob" in result.output
    assert started_at() == before
    assert "access_token" in tokens(deployer, "bob")  # the new initial password (from the store)
    assert first_factor("bob", old_initial)["status"] == "KO"
    deploy_unchanged(deployer)

    # He chooses one again: kept by the next deploys, the reset is not applied twice.
    mine = "a password bob chose after the reset " + pysecrets.token_hex(4)
    flow = sign_in(deployer, "bob")
    body = {"username": "bob", "old_password": reset, "new_password": mine}
    assert flow.session.request("POST", "/auth/api/change-password", json=body).status_code == 200
    deploy_unchanged(deployer)
    assert "access_token" in tokens(deployer, "bob", password=mine)

    # Back to the store's password, for the steps after this one.
    flow = sign_in(deployer, "bob", password=mine)
    body = {"username": "bob", "old_password": mine, "new_password": reset}
    assert flow.session.request("POST", "/auth/api/change-password", json=body).status_code == 200


# --- a lost authenticator ---------------------------------------------------------------------------


def test_a_lost_authenticator_is_reissued(deployer: Deployer, first_run: RunResult) -> None:
    old_seed = deployer.store_file("users/bob.totp")
    out = mcpgate_ok(deployer, "secrets", "rotate", INVENTORY, "totp/bob")
    assert "rotated totp/bob" in out and old_seed not in out
    new_seed = deployer.store_file("users/bob.totp")
    assert new_seed != old_seed
    shown = mcpgate_ok(deployer, "secrets", "show", INVENTORY)
    assert f"secret={new_seed}" in shown and f"secret={old_seed}" not in shown

    before = started_at()
    result = deployer.deploy()
    assert result.returncode == 0, result.output[-4000:]
    assert started_at() == before  # the seed is imported into Authelia's database: no restart
    with pytest.raises(FlowError, match="second factor"):
        sign_in(deployer, "bob", seed=old_seed)
    assert "access_token" in tokens(deployer, "bob", seed=new_seed)
    deploy_unchanged(deployer)


# --- a client's secret ------------------------------------------------------------------------------


def test_a_client_secret_is_rotated(deployer: Deployer, first_run: RunResult) -> None:
    old = deployer.store_file("clients/claude-ai.secret")
    before_rotation = tokens(deployer, "alice")
    out = mcpgate_ok(deployer, "secrets", "rotate", INVENTORY, "client/claude-ai")
    assert "restarts authelia" in out and old not in out
    new = deployer.store_file("clients/claude-ai.secret")
    assert new != old
    assert f"OAuth Client Secret:  {new}" in mcpgate_ok(deployer, "secrets", "show", INVENTORY)

    started = started_at()
    result = deployer.deploy()
    assert result.returncode == 0, result.output[-4000:]
    restarted = {n for n, t in started_at().items() if started.get(n) != t}
    assert restarted == {name_of("authelia")}, restarted

    refused = refresh(before_rotation["refresh_token"], old)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client", refused.text
    renewed = refresh(before_rotation["refresh_token"], new)
    assert renewed.status_code == 200, renewed.text  # the connector keeps its grant with the new secret
    assert "access_token" in tokens(deployer, "alice")
    deploy_unchanged(deployer)


# --- a signing-key rollover -------------------------------------------------------------------------


def jwks_kids() -> list[str]:
    r = session().request("GET", "/auth/jwks.json")
    assert r.status_code == 200, r.text
    return [k["kid"] for k in r.json()["keys"]]


def test_a_signing_key_rollover_keeps_live_tokens_until_it_is_finished(
    deployer: Deployer, first_run: RunResult
) -> None:
    old_token = tokens(deployer, "alice")["access_token"]
    (old_kid,) = jwks_kids()
    assert jwt_parts(old_token)[0]["kid"] == old_kid
    if deployer.gateway:
        assert mcp_tools(old_token) == {"search", "read", "write", "delete"}

    out = mcpgate_ok(deployer, "secrets", "rollover", INVENTORY, "start")
    assert f"key {old_kid} is retiring" in out
    new_kid = out.split("new signing key ", 1)[1].split(";", 1)[0]
    assert new_kid != old_kid
    result = deployer.deploy()
    assert result.returncode == 0, result.output[-4000:]
    assert sorted(jwks_kids()) == sorted([old_kid, new_kid])  # both published (Authelia orders them its way)
    new_token = tokens(deployer, "alice")["access_token"]
    assert jwt_parts(new_token)[0]["kid"] == new_kid  # Authelia signs with the new key
    gateway_jwks = Path(f"/opt/{STACK_NAME}/agentgateway/config/jwks.json").read_text()
    assert old_kid in gateway_jwks and new_kid in gateway_jwks
    if deployer.gateway:
        assert mcp_tools(old_token) == {"search", "read", "write", "delete"}  # a live token still passes
        assert mcp_tools(new_token) == {"search", "read", "write", "delete"}
    deploy_unchanged(deployer)

    out = mcpgate_ok(deployer, "secrets", "rollover", INVENTORY, "finish")
    assert f"key {old_kid} retired" in out
    result = deployer.deploy()
    assert result.returncode == 0, result.output[-4000:]
    assert jwks_kids() == [new_kid]
    assert old_kid not in Path(f"/opt/{STACK_NAME}/agentgateway/config/jwks.json").read_text()
    assert not Path(f"/opt/{STACK_NAME}/authelia/secrets/oidc_jwks_rs256.retiring.pem").exists()
    if deployer.gateway:
        assert mcp_tools(old_token) == 401
        assert mcp_tools(new_token) == {"search", "read", "write", "delete"}
    deploy_unchanged(deployer)


def test_the_gateway_took_part_in_the_rollover(deployer: Deployer, gateway: None) -> None:
    """The gateway's checks above ran (they run only with agentgateway; this says so when they did not)."""
    assert deployer.gateway


# --- a person taken out of the inventory ------------------------------------------------------------

NO_GROUPS = "_stack.pop('groups')\nfor _u in _stack['users']:\n    _u['groups'] = []\n"
WITHOUT_BOB = "_stack['users'] = [u for u in _stack['users'] if u['name'] != 'bob']\n"


def test_a_person_removed_from_an_inventory_without_groups_loses_access_at_once(
    deployer: Deployer, first_run: RunResult
) -> None:
    """Without groups every listed person may use every tool; the rules still name them (their
    ``sub``), so the deploy that takes bob out cuts his live token off at the gateway, and Authelia
    refuses his refresh token and his password."""
    result = deployer.deploy(deployer.inventory(NO_GROUPS))
    assert result.returncode == 0, result.output[-4000:]
    bob = tokens(deployer, "bob")
    alice = tokens(deployer, "alice")
    if deployer.gateway:
        assert mcp_tools(bob["access_token"]) == {"search", "read", "write", "delete"}  # no groups: everything

    result = deployer.deploy(deployer.inventory(NO_GROUPS + WITHOUT_BOB))
    assert result.returncode == 0, result.output[-4000:]
    assert "Authelia's users database: removes bob" in result.output
    assert "bob" not in users_file()
    config = Path(f"/opt/{STACK_NAME}/agentgateway/config/config.yaml").read_text()
    assert deployer.store_file("users/bob.sub") not in config
    assert deployer.store_file("users/alice.sub") in config
    if deployer.gateway:
        assert mcp_tools(bob["access_token"]) == set()  # his token is still unexpired: no tool opens
        assert mcp_tools(alice["access_token"]) == {"search", "read", "write", "delete"}
    secret = deployer.store_file("clients/claude-ai.secret")
    refused = refresh(bob["refresh_token"], secret)
    assert refused.status_code != 200, refused.text
    assert "access_token" not in refused.text
    assert first_factor("bob", deployer.store_file("users/bob.password"))["status"] == "KO"
    assert refresh(alice["refresh_token"], secret).status_code == 200

    # Back as the inventory says: bob returns with his initial password.
    result = deployer.deploy()
    assert result.returncode == 0, result.output[-4000:]
    assert "Authelia's users database: adds bob" in result.output
    assert "access_token" in tokens(deployer, "bob")
    # What the README says of Authelia 4.39: it refused bob's refresh token only while he was gone (it
    # has no command that revokes stored ones), so his name back revives it.
    assert refresh(bob["refresh_token"], secret).status_code == 200
    deploy_unchanged(deployer)
