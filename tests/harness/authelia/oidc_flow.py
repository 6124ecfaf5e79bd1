#!/usr/bin/env python3
"""Scripted OIDC authorization-code flow against Authelia, for smoke.sh (stdlib only).

Logs in (first factor + TOTP), authorizes with PKCE and `resource`, gives consent,
redeems the code with client_secret_post and prints the access token's JOSE header and
claims as one JSON object: {"header": {...}, "claims": {...}}.

usage: oidc_flow.py BASE_URL HOST USER PASSWORD TOTP_SECRET CLIENT_ID CLIENT_SECRET SCOPES RESOURCE
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import struct
import sys
import time
import urllib.parse


def totp(secret):
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    h = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
    o = h[-1] & 15
    return f"{(struct.unpack('>I', h[o : o + 4])[0] & 0x7FFFFFFF) % 1000000:06d}"


def b64url_json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class Client:
    def __init__(self, base, host):
        u = urllib.parse.urlsplit(base)
        self.netloc, self.prefix, self.host = u.netloc, u.path.rstrip("/"), host
        self.cookies = {}

    def request(self, method, path, body=None, ctype="application/json"):
        """path is relative to https://HOST (it may carry the /auth prefix)."""
        conn = http.client.HTTPConnection(self.netloc, timeout=10)
        headers = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": self.host,
            "Origin": f"https://{self.host}",
            "Accept": "application/json",
        }
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = ctype
            body = json.dumps(body) if ctype == "application/json" else urllib.parse.urlencode(body)
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


def main():
    if len(sys.argv) != 10:
        sys.exit(__doc__)
    base, host, user, password, totp_secret, client_id, client_secret, scopes, resource = sys.argv[1:]
    c = Client(base, host)
    p = c.prefix
    redirect_uri = "https://claude.ai/api/mcp/auth_callback"
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": scopes,
            "state": "smoke-state-123",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": resource,
        }
    )

    st, h, _ = c.request("GET", f"{p}/api/oidc/authorization?{query}")
    if st not in (302, 303):
        sys.exit(f"authorize: {st}")
    loc = urllib.parse.urlsplit(h["location"])
    flow_id = urllib.parse.parse_qs(loc.query).get("flow_id", [None])[0]
    if not flow_id:
        sys.exit(f"authorize: no flow_id in {h['location']}")

    st, _, d = c.request(
        "POST",
        f"{p}/api/firstfactor",
        {"username": user, "password": password, "keepMeLoggedIn": False, "flow": "openid_connect", "flowID": flow_id},
    )
    if json.loads(d).get("status") != "OK":
        sys.exit(f"firstfactor: {st} {d!r}")
    st, _, d = c.request(
        "POST", f"{p}/api/secondfactor/totp", {"token": totp(totp_secret), "flow": "openid_connect", "flowID": flow_id}
    )
    j = json.loads(d)
    if j.get("status") != "OK":
        sys.exit(f"secondfactor: {st} {d!r}")
    nxt = (j.get("data") or {}).get("redirect")

    code = None
    for _ in range(6):
        if not nxt:
            sys.exit("no redirect to follow")
        u = urllib.parse.urlsplit(nxt)
        if nxt.startswith(redirect_uri):
            code = urllib.parse.parse_qs(u.query)["code"][0]
            break
        qs = urllib.parse.parse_qs(u.query)
        if "/consent" in u.path:
            fid = qs.get("flow_id", [flow_id])[0]
            st, _, d = c.request(
                "POST",
                f"{p}/api/oidc/consent",
                {"flow_id": fid, "client_id": client_id, "consent": True, "pre_configure": False},
            )
            j = json.loads(d)
            if j.get("status") != "OK":
                sys.exit(f"consent: {st} {d!r}")
            nxt = j["data"]["redirect_uri"]
            continue
        st, h, d = c.request("GET", u.path + ("?" + u.query if u.query else ""))
        if st not in (302, 303):
            sys.exit(f"GET {u.path}: {st} {d[:200]!r}")
        nxt = h["location"]
    if not code:
        sys.exit("no authorization code")

    st, _, d = c.request(
        "POST",
        f"{p}/api/oidc/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "client_secret": client_secret,
            "code_verifier": verifier,
            "resource": resource,
        },
        ctype="application/x-www-form-urlencoded",
    )
    tok = json.loads(d)
    if st != 200 or "access_token" not in tok:
        sys.exit(f"token: {st} {d!r}")
    parts = tok["access_token"].split(".")
    if len(parts) != 3:
        sys.exit(f"access token is not a JWT: {tok['access_token'][:20]}...")
    print(
        json.dumps(
            {"header": b64url_json(parts[0]), "claims": b64url_json(parts[1]), "refresh_token": "refresh_token" in tok}
        )
    )


if __name__ == "__main__":
    main()
