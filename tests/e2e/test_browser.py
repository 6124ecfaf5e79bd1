"""A person signs in through Authelia's real portal in a browser: sign-in, one-time code, consent
(what it lists for scopes named with and without a colon), arrival at the client's callback with a
code that buys a token, Authelia's refusals, and a person changing their own password in the portal.

Headless Debian Chromium over WebDriver, through the real ingress behind a TLS front on loopback
standing in for Funnel (tests/e2e/browser.py). Each step's screenshot is saved under
$MCPGATE_ARTIFACTS/browser/ (else the system's temp folder, mcpgate-browser/); the run's folder is
printed at the end of the session, and the consent page's texts are written there as consent-*.json.
"""

from __future__ import annotations

import json
import os
import re
import secrets as pysecrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
import pytest

from mcpgate.consent import listed_as
from tests.e2e.browser import Browser, browser_at, browser_unavailable
from tests.e2e.harness import INGRESS_PORT, LOCAL_IMAGES, STACK_NAME, Deployer, RunResult, docker, name_of
from tests.e2e.mcp_client import McpClient
from tests.e2e.oauth import CLAUDE_CALLBACK, Flow, Session, fresh_totp, jwt_parts, login

HOSTNAME = "mcp-gateway.home.test"
ISSUER = f"https://{HOSTNAME}/auth"
RESOURCE = f"https://{HOSTNAME}/mcp"
SCOPE = "openid offline_access notes:read notes:write"
INSPECTOR_CALLBACK = "http://localhost:6274/oauth/callback"

_ARTIFACTS = os.environ.get("MCPGATE_ARTIFACTS")
SHOTS = (Path(_ARTIFACTS) / "browser" if _ARTIFACTS else Path(tempfile.gettempdir()) / "mcpgate-browser") / STACK_NAME


def _portal_missing() -> str | None:
    image = LOCAL_IMAGES["authelia"]
    r = docker(
        "image", "inspect", "--format", '{{ index .Config.Labels "io.mcpgate.authelia.portal" }}', image, check=False
    )
    if r.returncode != 0:
        from tests.e2e.harness import authelia_unavailable  # why it could not be built, as bin/test recorded

        return authelia_unavailable() or f"no local Authelia image {image}"
    if not r.stdout.strip() or r.stdout.strip() == "<no value>":
        return f"the Authelia image {image} has no web portal (built before tests/harness/authelia/build.sh built it)"
    return None


@pytest.fixture(scope="module")
def stack(deployer: Deployer, first_run: RunResult) -> Deployer:
    reason = browser_unavailable() or _portal_missing()
    if reason:
        pytest.skip(reason)
    from tests.e2e import conftest

    conftest.NOTES.append(f"browser screenshots: {SHOTS}")
    return deployer


def _address() -> str:
    """An address of this test's own (TEST-NET-2), so Authelia's failure counts stay per test."""
    return f"198.51.100.{pysecrets.randbelow(250) + 1}"


@pytest.fixture
def browser(stack: Deployer, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Browser]:
    loopback = (urlsplit(INSPECTOR_CALLBACK).port or 80,)
    with browser_at(HOSTNAME, INGRESS_PORT, _address(), SHOTS / request.node.name, tmp_path / "front", loopback) as b:
        yield b


def _authorize_url(flow: Flow) -> str:
    params = {
        "client_id": flow.client_id,
        "response_type": "code",
        "redirect_uri": flow.redirect_uri,
        "scope": flow.scope,
        "state": flow.state,
        "code_challenge": flow.challenge,
        "code_challenge_method": "S256",
        "resource": RESOURCE,
    }
    return f"{ISSUER}/api/oidc/authorization?{urlencode(params)}"


def _flow(client_id: str, redirect_uri: str, scope: str = SCOPE) -> Flow:
    # The token request goes to the ingress directly, as the client's server would send it.
    session = Session(f"http://127.0.0.1:{INGRESS_PORT}", HOSTNAME, extra_headers={"X-Forwarded-For": _address()})
    return Flow(session, client_id, scope, RESOURCE, redirect_uri=redirect_uri)


def _sign_in_page(b: Browser, url: str) -> None:
    b.driver.get(url)
    b.by_id("username-textfield")
    # The portal itself, under /auth on the public name, over TLS.
    page = urlsplit(b.driver.current_url)
    assert (page.scheme, page.netloc, page.path.rstrip("/")) == ("https", HOSTNAME, "/auth"), b.driver.current_url
    assert "flow_id" in parse_qs(page.query)


def _type_password(b: Browser, username: str, password: str) -> None:
    from selenium.webdriver.common.keys import Keys

    user = b.by_id("username-textfield")
    user.send_keys(Keys.CONTROL, "a")
    user.send_keys(Keys.DELETE)
    user.send_keys(username)
    pw = b.by_id("password-textfield")
    pw.send_keys(Keys.CONTROL, "a")
    pw.send_keys(Keys.DELETE)
    pw.send_keys(password)


def _type_code(b: Browser, code: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    first = b.by_id("otp-input").find_elements(By.TAG_NAME, "input")[0]
    first.click()
    ActionChains(b.driver).send_keys(code).perform()


def _consent_texts(b: Browser, scopes: list[str]) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    stage = b.by_id("openid-consent-decision-stage")
    b.wait().until(lambda d: all(d.find_elements(By.ID, f"scope-{s}") for s in scopes))
    return {
        "page": stage.text,
        "scopes": {s: b.driver.find_element(By.ID, f"scope-{s}").text for s in scopes},
    }


def _through_consent(
    b: Browser,
    stack: Deployer,
    client_id: str,
    callback: str,
    name: str,
    inventory_scopes: dict[str, str] | None = None,
) -> tuple[Flow, str]:
    """Password, one-time code, consent (checked against the inventory's scopes, inventory/local.py's
    unless given): the code at the callback."""
    inventory_scopes = _inventory_scopes() if inventory_scopes is None else inventory_scopes
    flow = _flow(client_id, callback, " ".join(["openid", "offline_access", *inventory_scopes]))
    _sign_in_page(b, _authorize_url(flow))
    b.shot("sign-in")
    _type_password(b, "alice", stack.store_file("users/alice.password"))
    b.shot("password")
    b.by_id("sign-in-button").click()
    b.by_id("otp-input")
    b.shot("one-time-code")
    _type_code(b, fresh_totp(stack.store_file("users/alice.totp")))
    scopes = flow.scope.split()
    texts = _consent_texts(b, scopes)
    b.shot("consent")
    (b.shots / f"consent-{client_id}.json").write_text(json.dumps(texts, indent=2, ensure_ascii=False) + "\n")
    page = texts["page"]
    assert name in page
    for scope, description in inventory_scopes.items():
        if ":" in scope:
            # The list shows what follows the colon (mcpgate/consent.py says why); the sentence
            # above it gives the scope's description, by that label.
            assert texts["scopes"][scope] == listed_as(scope)
            assert f"“{listed_as(scope)}” ({scope}): {description}." in page, (scope, page)
        else:
            # The list shows the scope by its description.
            assert texts["scopes"][scope] == description
            assert f"({scope})" not in page, page
    if all(":" not in scope for scope in inventory_scopes):
        assert "The above application is requesting the following permissions:" in page, page
    b.by_id("openid-consent-accept").click()
    b.wait(60).until(lambda d: d.current_url.startswith(callback))
    b.shot("callback")
    qs = parse_qs(urlsplit(b.driver.current_url).query)
    assert "error" not in qs, qs
    assert qs["state"] == [flow.state]
    assert qs["iss"] == [ISSUER]
    return flow, qs["code"][0]


def _inventory_scopes() -> dict[str, str]:
    import runpy

    from tests.e2e.harness import PROJECT_ROOT

    return runpy.run_path(str(PROJECT_ROOT / "inventory" / "local.py"))["local"][0][1]["mcpgate"]["scopes"]


def _no_console_errors(b: Browser, allowed: str | None = None) -> None:
    logged = b.console_errors()
    (b.shots / "console-errors.json").write_text(json.dumps(logged, indent=2) + "\n")
    errors = [e["message"] for e in logged if not (allowed and re.search(allowed, e.get("message", "")))]
    assert not errors, "\n".join(errors)


def test_claude_ai_signs_in_in_a_browser(stack: Deployer, browser: Browser) -> None:
    flow, code = _through_consent(browser, stack, "claude-ai", CLAUDE_CALLBACK, "Claude.ai")
    r = flow.token(code, stack.store_file("clients/claude-ai.secret"), how="post")
    assert r.status_code == 200, r.text
    token = r.json()
    _, claims = jwt_parts(token["access_token"])
    assert claims["iss"] == ISSUER
    assert claims["aud"] == [RESOURCE]
    assert set(claims["scp"]) >= {"notes:read", "notes:write"}
    assert token.get("refresh_token")
    _no_console_errors(browser)


def test_a_restricted_public_client_signs_in_in_a_browser(stack: Deployer, browser: Browser) -> None:
    flow, code = _through_consent(
        browser, stack, "mcp-inspector", INSPECTOR_CALLBACK, "MCP Inspector (tools limited to: notes:read)"
    )
    r = flow.token(code, None, how="none")
    assert r.status_code == 200, r.text
    _, claims = jwt_parts(r.json()["access_token"])
    assert claims["client_id"] == "mcp-inspector"
    _no_console_errors(browser)


# inventory/local.py with its scopes named as the README recommends for a new inventory: without a
# colon, so the consent page's list can show each one's description.
_PLAIN_NAMES = """
_new = {"notes:read": "notes.read", "notes:write": "notes.write"}
_stack["scopes"] = {_new[k]: v for k, v in _stack["scopes"].items()}
_stack["groups"] = {g: [_new[s] for s in granted] for g, granted in _stack["groups"].items()}
for _b in _stack["backends"]:
    _b["tools"] = {_new[k]: v for k, v in _b["tools"].items()}
for _c in _stack["clients"]:
    if "scopes" in _c:
        _c["scopes"] = [_new[s] for s in _c["scopes"]]
"""


def _gateway_tools(token: str) -> set[str] | int:
    """The tools the gateway lists for a token (plain names), or the HTTP status it refused with."""
    client = McpClient(f"http://127.0.0.1:{INGRESS_PORT}", HOSTNAME, token)
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}
    r = client.post("initialize", hello)
    if r.status_code != 200:
        return r.status_code
    if r.headers.get("mcp-session-id"):
        client.headers["mcp-session-id"] = r.headers["mcp-session-id"]
    client.post("notifications/initialized", notify=True)
    r = client.post("tools/list")
    if r.status_code != 200:
        return r.status_code
    return {t["name"].removeprefix("notes_") for t in client.message(r)["result"]["tools"]}


def test_scopes_named_without_a_colon_are_listed_by_their_description(stack: Deployer, browser: Browser) -> None:
    """The consent page lists notes.read and notes.write by their descriptions (upstream's sentence
    above them), the token carries them and the gateway opens their tools; then back to local.py."""
    import runpy

    variant = stack.inventory(_PLAIN_NAMES)
    scopes = runpy.run_path(str(variant))["local"][0][1]["mcpgate"]["scopes"]
    assert set(scopes) == {"notes.read", "notes.write"}
    try:
        result = stack.deploy(variant)
        assert result.returncode == 0, result.output[-6000:]
        flow, code = _through_consent(browser, stack, "claude-ai", CLAUDE_CALLBACK, "Claude.ai", scopes)
        r = flow.token(code, stack.store_file("clients/claude-ai.secret"), how="post")
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        assert set(jwt_parts(token)[1]["scp"]) >= {"notes.read", "notes.write"}
        _no_console_errors(browser)
        stack.need("agentgateway", "the gateway's rules for these names")
        assert _gateway_tools(token) == {"search", "read", "write", "delete"}
    finally:
        back = stack.deploy()
        assert back.returncode == 0, back.output[-6000:]


def _wrong_code(seed: str) -> str:
    """A six-digit code that no period near now accepts."""
    totp = pyotp.TOTP(seed)
    near = {totp.at(time.time() + 30 * k) for k in range(-3, 4)}
    while True:
        code = f"{pysecrets.randbelow(10**6):06d}"
        if code not in near:
            return code


def test_wrong_password_and_wrong_code_show_authelias_messages(stack: Deployer, browser: Browser) -> None:
    b = browser
    _sign_in_page(b, _authorize_url(_flow("claude-ai", CLAUDE_CALLBACK)))
    _type_password(b, "alice", "not-" + stack.store_file("users/alice.password"))
    b.by_id("sign-in-button").click()
    b.text_appears("Incorrect username or password")
    b.shot("wrong-password")
    _type_password(b, "alice", stack.store_file("users/alice.password"))
    b.by_id("sign-in-button").click()
    b.by_id("otp-input")
    _type_code(b, _wrong_code(stack.store_file("users/alice.totp")))
    b.text_appears("The One-Time Password might be wrong")
    b.shot("wrong-code")
    # Each refused request (401 for the password, 403 for the code) is reported twice: a failed
    # resource load, and the portal logging the AxiosError it caught. Nothing else.
    _no_console_errors(b, allowed=r"status (?:of|code) 40[13]\b")


def test_the_ban_after_repeated_failures_shows(stack: Deployer, browser: Browser) -> None:
    """After sign_in_failures wrong passwords from one address, the right one is refused too, with the
    same message (Authelia does not tell a client it is banned); its log says it banned the address."""
    from selenium.webdriver.common.by import By

    b = browser
    failures = 5  # inventory/local.py keeps the default rate_limits.sign_in_failures
    _sign_in_page(b, _authorize_url(_flow("claude-ai", CLAUDE_CALLBACK)))
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2))
    for _ in range(failures):
        _type_password(b, "alice", "wrong-" + pysecrets.token_hex(4))
        b.by_id("sign-in-button").click()
        b.text_appears("Incorrect username or password")
        b.wait().until(lambda d: d.find_element(By.ID, "sign-in-button").is_enabled())
        time.sleep(0.5)
    _type_password(b, "alice", stack.store_file("users/alice.password"))
    b.by_id("sign-in-button").click()
    time.sleep(3)
    assert not b.driver.find_elements(By.ID, "otp-input"), "the right password got through during the ban"
    b.text_appears("Incorrect username or password")
    b.shot("banned")
    logs = (
        docker("logs", "--since", since, name_of("authelia")).stdout
        + docker("logs", "--since", since, name_of("authelia")).stderr
    )
    assert "banned until" in logs, logs[-3000:]
    _no_console_errors(b, allowed=r"status (?:of|code) 401")


def _portal_sign_in(b: Browser, username: str, password: str, seed: str) -> None:
    """Sign in on the portal itself (no client asking): password, one-time code, "Authenticated"."""
    from selenium.webdriver.common.by import By

    b.driver.get(f"{ISSUER}/")
    b.by_id("username-textfield")
    _type_password(b, username, password)
    b.by_id("sign-in-button").click()
    b.by_id("otp-input")
    _type_code(b, fresh_totp(seed))
    b.wait().until(lambda d: not d.find_elements(By.ID, "otp-input"))
    b.text_appears("Authenticated")


def _sign_out(b: Browser) -> None:
    b.driver.get(f"{ISSUER}/logout")
    b.by_id("username-textfield")


def _password_dialog(b: Browser, old: str, new: str) -> None:
    """The portal's Change Password dialog, filled in and submitted."""
    from selenium.webdriver.common.keys import Keys

    for field, value in (("old-password", old), ("new-password", new), ("repeat-new-password", new)):
        box = b.by_id(field)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.DELETE)
        box.send_keys(value)
    b.by_id("password-change-dialog-submit").click()


def test_a_person_changes_their_password_in_the_portal(stack: Deployer, browser: Browser) -> None:
    """Bob signs in (password and one-time code: the session counts as elevated, as the config says),
    changes his password in the portal's settings after Authelia refused a wrong current password and
    a too short new one, signs out and in with the new one; the old one is refused, and a deploy
    (nothing changed in the inventory) keeps his."""
    from selenium.webdriver.common.by import By

    b = browser
    initial = stack.store_file("users/bob.password")
    seed = stack.store_file("users/bob.totp")
    new = "a passphrase bob chose " + pysecrets.token_hex(4)
    _portal_sign_in(b, "bob", initial, seed)
    b.shot("signed-in")
    b.driver.get(f"{ISSUER}/settings/security")
    b.by_id("change-password-button").click()
    b.by_id("old-password")
    b.shot("change-password-dialog")

    _password_dialog(b, "not-" + initial, new)
    b.text_appears("Incorrect password")
    b.shot("wrong-current-password")
    _password_dialog(b, initial, "short")
    b.text_appears("Your supplied password does not meet the password policy requirements")
    b.shot("too-short")
    _password_dialog(b, initial, new)
    b.text_appears("Password changed successfully")
    b.wait().until(lambda d: not d.find_elements(By.ID, "old-password"))
    b.shot("password-changed")

    _sign_out(b)
    _type_password(b, "bob", initial)
    b.by_id("sign-in-button").click()
    b.text_appears("Incorrect username or password")
    b.shot("old-password-refused")
    _type_password(b, "bob", new)
    b.by_id("sign-in-button").click()
    b.by_id("otp-input")
    b.shot("new-password-accepted")

    # A later deploy with the inventory unchanged changes nothing, and bob's password stays his.
    result = stack.deploy()
    assert result.returncode == 0, result.output[-4000:]
    assert result.changes == 0, result.changed_ops
    _sign_out(b)
    _portal_sign_in(b, "bob", new, seed)
    b.shot("signed-in-after-deploy")
    _sign_out(b)
    _type_password(b, "bob", initial)
    b.by_id("sign-in-button").click()
    b.text_appears("Incorrect username or password")
    # Refused requests are logged by the browser (a failed load, the portal's caught AxiosError).
    _no_console_errors(b, allowed=r"status (?:of|code) 40[01]\b")

    # Back to the store's password, for whatever runs after this on the session's stack.
    flow = _flow("claude-ai", CLAUDE_CALLBACK)
    login(flow, "bob", new, seed)
    body = {"username": "bob", "old_password": new, "new_password": initial}
    assert flow.session.request("POST", "/auth/api/change-password", json=body).status_code == 200
