"""The OAuth 2.1 authorization-code flow as Claude.ai drives it, through the ingress, against Authelia.

Every request goes to the ingress on 127.0.0.1 with the public Host, as Tailscale Funnel would send
it; the ingress sets X-Forwarded-Proto/Host. Authelia's cookies are Secure, so they are kept here by
hand rather than by an HTTP client that would refuse to send them over plain HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pyotp

CLAUDE_CALLBACK = "https://claude.ai/api/mcp/auth_callback"


def pkce_pair() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def part(p: str) -> dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))

    header, claims, _ = token.split(".")
    return part(header), part(claims)


# Every code this test run has sent: Authelia refuses a replayed one (and counts it as a failure).
USED_CODES: set[str] = set()


def fresh_totp(seed: str) -> str:
    """A TOTP code not used before in this test run; waits for the next period if need be."""
    totp = pyotp.TOTP(seed)
    while True:
        code = totp.now()
        if code not in USED_CODES:
            USED_CODES.add(code)
            return code
        time.sleep(max(0.5, 30 - time.time() % 30 + 0.2))


class FlowError(AssertionError):
    pass


@dataclass
class Session:
    """One browser-like session against the ingress."""

    base: str  # http://127.0.0.1:<port>
    hostname: str
    cookies: dict[str, str] = field(default_factory=dict)
    extra_headers: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Host": self.hostname, "Accept": "application/json", **self.extra_headers}
        headers["Origin"] = f"https://{self.hostname}"
        headers.update(kwargs.pop("headers", {}))
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        r = httpx.request(method, self.base + path, headers=headers, timeout=20, follow_redirects=False, **kwargs)
        for raw in r.headers.get_list("set-cookie"):
            name, _, rest = raw.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return r


@dataclass
class Flow:
    """One authorization-code flow; each step can be driven on its own to test refusals."""

    session: Session
    client_id: str
    scope: str
    resource: str | None
    redirect_uri: str = CLAUDE_CALLBACK
    state: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    verifier: str = ""
    challenge: str = ""
    flow_id: str = ""
    callback: dict[str, str] = field(default_factory=dict)  # the query the client's callback got

    def __post_init__(self) -> None:
        self.verifier, self.challenge = pkce_pair()

    def authorize(self, **overrides: str) -> httpx.Response:
        params = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": self.state,
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
        }
        if self.resource is not None:
            params["resource"] = self.resource
        params.update(overrides)
        r = self.session.request("GET", "/auth/api/oidc/authorization?" + urlencode(params))
        if r.status_code in (302, 303):
            qs = parse_qs(urlsplit(r.headers["location"]).query)
            self.flow_id = qs.get("flow_id", [""])[0]
        return r

    def first_factor(self, username: str, password: str) -> httpx.Response:
        body = {
            "username": username,
            "password": password,
            "keepMeLoggedIn": False,
            "flow": "openid_connect",
            "flowID": self.flow_id,
        }
        return self.session.request("POST", "/auth/api/firstfactor", json=body)

    def second_factor(self, code: str) -> httpx.Response:
        body = {"token": code, "flow": "openid_connect", "flowID": self.flow_id}
        return self.session.request("POST", "/auth/api/secondfactor/totp", json=body)

    def code_from(self, redirect: str) -> str:
        """Follow Authelia's redirects (and consent, if asked) to the client's callback; the code."""
        for _ in range(8):
            parts = urlsplit(redirect)
            if redirect.startswith(self.redirect_uri):
                qs = parse_qs(parts.query)
                if "error" in qs:
                    raise FlowError(f"authorization refused: {qs['error'][0]}: {qs.get('error_description')}")
                if qs.get("state", [""])[0] != self.state:
                    raise FlowError("state did not round-trip")
                self.callback = {k: v[0] for k, v in qs.items()}
                return qs["code"][0]
            qs = parse_qs(parts.query)
            if "/consent" in parts.path:
                flow_id = qs.get("flow_id", [self.flow_id])[0]
                body = {"flow_id": flow_id, "client_id": self.client_id, "consent": True, "pre_configure": True}
                r = self.session.request("POST", "/auth/api/oidc/consent", json=body)
                data = r.json()
                if data.get("status") != "OK":
                    raise FlowError(f"consent refused: {data}")
                redirect = data["data"]["redirect_uri"]
                continue
            r = self.session.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
            if r.status_code not in (302, 303):
                raise FlowError(f"GET {parts.path}: {r.status_code} {r.text[:300]}")
            redirect = r.headers["location"]
        raise FlowError("too many redirects")

    def token(self, code: str, client_secret: str | None, *, how: str = "post", **overrides: str) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.verifier,
        }
        if self.resource is not None:
            form["resource"] = self.resource
        return token_request(self.session, form, self.client_id, client_secret, how=how, **overrides)


def token_request(
    session: Session, form: dict[str, str], client_id: str, client_secret: str | None, *, how: str, **overrides: str
) -> httpx.Response:
    """POST to the token endpoint, authenticating the way ``how`` says: post, basic or none."""
    form = {**form, **overrides}
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if how == "basic":
        assert client_secret is not None
        creds = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        headers["Authorization"] = f"Basic {creds}"
    else:
        form["client_id"] = client_id
        if how == "post" and client_secret is not None:
            form["client_secret"] = client_secret
    return session.request("POST", "/auth/api/oidc/token", content=urlencode(form), headers=headers)


def login(flow: Flow, username: str, password: str, seed: str, authorize_url: str | None = None) -> str:
    """Authorize, both factors, consent: the authorization code. With ``authorize_url`` the
    authorization request is that URL as a client built it, opened as a browser would."""
    if authorize_url is None:
        r = flow.authorize()
    else:
        parts = urlsplit(authorize_url)
        r = flow.session.request("GET", f"{parts.path}?{parts.query}")
        if r.status_code in (302, 303):
            flow.flow_id = parse_qs(urlsplit(r.headers["location"]).query).get("flow_id", [""])[0]
    if r.status_code not in (302, 303):
        raise FlowError(f"authorize: {r.status_code} {r.text[:300]}")
    target = r.headers["location"]
    if target.startswith(flow.redirect_uri) or "/consent" in urlsplit(target).path:
        return flow.code_from(target)  # already signed in (and maybe consented)
    if not flow.flow_id:
        raise FlowError(f"authorize did not start a flow: {target}")
    r = flow.first_factor(username, password)
    if r.json().get("status") != "OK":
        raise FlowError(f"first factor: {r.status_code} {r.text}")
    r = flow.second_factor(fresh_totp(seed))
    data = r.json()
    if data.get("status") != "OK":
        raise FlowError(f"second factor: {r.status_code} {r.text}")
    return flow.code_from(data["data"]["redirect"])


def login_alice(flow: Flow, store_file: Callable[[str], str]) -> str:
    """``login`` as the inventories' user alice, with her password and TOTP seed from the store."""
    return login(flow, "alice", store_file("users/alice.password"), store_file("users/alice.totp"))


def flow_for(session: Session, authorize_url: str) -> Flow:
    """The Flow a client's authorization URL describes (its state, redirect URI, scope, resource)."""
    qs = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query, keep_blank_values=True).items()}
    return Flow(
        session,
        qs["client_id"],
        qs.get("scope", ""),
        qs.get("resource"),
        redirect_uri=qs["redirect_uri"],
        state=qs["state"],
    )
