"""A bounded, re-runnable fuzz of the rendered ingress (Caddy), over raw sockets.

The real Caddyfile runs in the harness' Caddy image on a network of its own; the names it proxies
to (``authelia``, ``agentgateway``) resolve to that network's gateway address on this machine, where
two recording upstreams listen on the stack's real ports. Each case is sent byte for byte as
written (so a path reaches Caddy exactly as an attacker would spell it); whatever an upstream
receives is recorded raw (request line, headers, the body as framed, and whether it arrived whole)
and checked against what the ingress promises:

- an upstream only ever sees a path in canonical form, the very path Caddy routed on, and the route
  it got is the route of that path and of every way an upstream could read the path as sent
  (decoded, with ``\\`` as ``/``, without ``;`` parameters, dot segments resolved, slashes merged,
  lower-cased); Authelia's forward-auth endpoints are never reached;
- no client-set forwarding header reaches an upstream (the ingress sets the public scheme and host
  itself), no ``Upgrade``, and no ``Cookie`` reaches the gateway;
- a malformed or oversized body reaches nobody, and every body that arrives arrives whole;
- legitimate requests (sign-in, OAuth with encoded query strings, discovery, MCP) pass unchanged.

``python -m tests.e2e.ingress_fuzz <Caddyfile> [--image I] [--binary caddy]`` runs it against any
Caddyfile, and with ``--binary`` against another Caddy version in the same image.
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import re
import secrets as pysecrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_to_bytes

from mcpgate import layout
from mcpgate.layout import INGRESS, INGRESS_HEALTH_PORT
from mcpgate.render_services import DISCOVERY_ALIASES

AUTHELIA = "authelia"
GATEWAY = "agentgateway"
AUTHELIA_PORT = layout.AUTHELIA.port
MAX_BODY = 1024 * 1024  # the ingress' request_body max_size (1MB)

CASE_TIMEOUT = 6.0  # seconds for one case's answer
TOTAL_TIMEOUT = 240.0  # seconds for the whole run

# Headers no client may set for an upstream: Authelia reads most of them (X-Original-Method,
# X-Authelia-URL, X-Forwarded-URI/-Method, X-Original-URL, X-Real-IP), the others are spoofable
# variants that other software trusts. X-Forwarded-For is Caddy's own (left to its default here).
# Headers naming a person or a client address (tailscale serve, auth proxies, CDNs), with a value a
# client could forge.
IDENTITY = {
    "Tailscale-User-Login": "admin@example.org",
    "Tailscale-User-Name": "Admin",
    "Tailscale-User-Profile-Pic": "https://evil.example/p.png",
    "Tailscale-Funnel-Request": "?0",
    "Remote-User": "admin",
    "Remote-Groups": "admins",
    "X-Remote-User": "admin",
    "X-Auth-Request-User": "admin",
    "X-Webauth-User": "admin",
    "X-Forwarded-User": "admin",
    "X-Forwarded-Email": "admin@example.org",
    "X-Forwarded-Groups": "admins",
    "X-Forwarded-Preferred-Username": "admin",
    "X-Client-IP": "1.2.3.4",
    "X-Cluster-Client-IP": "1.2.3.4",
    "Client-IP": "1.2.3.4",
    "CF-Connecting-IP": "1.2.3.4",
    "Fastly-Client-IP": "1.2.3.4",
}
IDENTITY_HEADERS = tuple(IDENTITY)
FORBIDDEN_HEADERS = (
    "Forwarded",
    "X-Real-IP",
    "X-Original-URL",
    "X-Original-URI",
    "X-Original-Method",
    "X-Original-Host",
    "X-Authelia-URL",
    "X-Forwarded-URI",
    "X-Forwarded-Method",
    "X-Forwarded-Prefix",
    "X-Forwarded-Port",
    "X-Forwarded-Server",
    "X-Forwarded-Ssl",
    "X-Host",
    "X-Rewrite-URL",
    "True-Client-IP",
    "Upgrade",
    "HTTP2-Settings",
    # who the person or client is, to software that trusts a proxy for it
    *IDENTITY_HEADERS,
)
GATEWAY_FORBIDDEN_HEADERS = ("Cookie",)
FORWARD_AUTH = re.compile(r"^/auth/api/(authz|verify)(/|$)", re.IGNORECASE)

ALIASES = dict(DISCOVERY_ALIASES)

# RFC 3986 pchar without ";" (path parameters mean different things to different servers).
_PCHAR = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Escapes that must never appear: of an unreserved character (it has one spelling only), of "/",
# ".", ";", "\\" and "%" (they change what the path means to somebody), of control characters, and
# of bytes that never occur in UTF-8 (0xC0 0xAE is an "overlong" ".").
_FORBIDDEN_ESCAPES = (
    _UNRESERVED | frozenset(b"/.;\\%") | frozenset(range(0x20)) | {0x7F, 0xC0, 0xC1} | frozenset(range(0xF5, 0x100))
)
_HEX = frozenset(b"0123456789abcdefABCDEF")


def canonical_problem(target: str) -> str | None:
    """Why a raw request target's path is not in canonical form, or None."""
    raw = target.encode("latin-1")
    if not raw.startswith(b"/"):
        return "not origin-form"
    path = raw.split(b"?", 1)[0]
    segments = path.split(b"/")[1:]
    for i, seg in enumerate(segments):
        if seg == b"" and i != len(segments) - 1:
            return "empty segment (//)"
        if seg in (b".", b".."):
            return "dot segment"
        j = 0
        while j < len(seg):
            c = seg[j]
            if c == 0x25:  # %
                hx = seg[j + 1 : j + 3]
                if len(hx) != 2 or not set(hx) <= _HEX:
                    return "broken %-escape"
                if int(hx, 16) in _FORBIDDEN_ESCAPES:
                    return f"escape %{hx.decode()} of {chr(int(hx, 16))!r}"
                j += 3
                continue
            if c not in _PCHAR:
                return f"character {chr(c)!r}"
            j += 1
    return None


def route_of(path: str) -> str | None:
    """The upstream a path belongs to (README, "What gets built"): exact and case-sensitive."""
    if path == "/auth" or path.startswith("/auth/") or path in ALIASES:
        return AUTHELIA
    for prefix in ("/mcp", "/.well-known/oauth-protected-resource"):
        if path == prefix or path.startswith(prefix + "/"):
            return GATEWAY
    return None


def readings(target: str) -> set[str]:
    """Every path some upstream could take a raw request target for."""
    if not target.startswith("/"):
        m = re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*(/.*)?$", target)
        target = (m.group(1) or "/") if m else "/"
    path = re.split(r"[?#]", target, maxsplit=1)[0]
    out = {path}
    once = unquote_to_bytes(path).decode("latin-1")
    twice = unquote_to_bytes(once).decode("latin-1")
    for p in {path, once, twice}:
        for q in {p, p.replace("\\", "/")}:
            for r in {q, re.sub(r";[^/]*", "", q)}:
                merged = re.sub(r"/+", "/", r)
                resolved = posixpath.normpath(merged) if merged else "/"
                if merged.endswith("/") and resolved != "/":
                    resolved += "/"
                trimmed = "/".join(s.rstrip(". ") for s in resolved.split("/"))
                for s in {r, merged, resolved, trimmed}:
                    out.update({s, s.lower()})
    return {p if p.startswith("/") else "/" + p for p in out}


# --- the recording upstream ------------------------------------------------------------------------


@dataclass
class Seen:
    """One request as an upstream received it."""

    upstream: str
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    whole: bool  # the body arrived as framed (Content-Length reached, or the last chunk)
    note: str = ""

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def _read_chunked(buf: bytes, more: Callable[[], bytes]) -> tuple[bytes, bool, str]:
    body, pos = b"", 0
    while True:
        while b"\r\n" not in buf[pos:]:
            chunk = more()
            if not chunk:
                return body, False, "eof in chunk size"
            buf += chunk
        end = buf.index(b"\r\n", pos)
        size_text = buf[pos:end].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return body, False, f"bad chunk size {size_text[:20]!r}"
        pos = end + 2
        if size == 0:
            while b"\r\n\r\n" not in buf[pos - 2 :]:
                chunk = more()
                if not chunk:
                    return body, False, "eof in trailer"
                buf += chunk
            return body, True, ""
        while len(buf) < pos + size + 2:
            chunk = more()
            if not chunk:
                return body + buf[pos : pos + size], False, "eof in chunk data"
            buf += chunk
        body += buf[pos : pos + size]
        if buf[pos + size : pos + size + 2] != b"\r\n":
            return body, False, "chunk without CRLF"
        pos += size + 2


class Upstream:
    """A raw HTTP/1.1 server that records every request and answers 200 with Connection: close."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name, self.host, self.port = name, host, port
        self.seen: list[Seen] = []
        self.active = 0
        self._lock = threading.Lock()
        self._sock = socket.create_server((host, port), reuse_port=False)
        self._sock.settimeout(0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"upstream-{name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.active += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(3)
            seen = self._receive(conn)
            if seen is not None:
                with self._lock:
                    self.seen.append(seen)
                if seen.whole:
                    body = json.dumps({"upstream": self.name}).encode()
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self.active -= 1

    def _receive(self, conn: socket.socket) -> Seen | None:
        def more() -> bytes:
            try:
                return conn.recv(65536)
            except OSError:
                return b""

        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = more()
            if not chunk:
                if not buf:
                    return None
                line = buf.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
                return Seen(self.name, line[0], line[1] if len(line) > 1 else "", [], b"", False, "headers cut")
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = [*lines[0].split(" ", 2), "", ""][:3]
        headers = [(k.strip(), v.strip()) for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)]
        te = ",".join(v for k, v in headers if k.lower() == "transfer-encoding").lower()
        cl = [v for k, v in headers if k.lower() == "content-length"]
        if "chunked" in te:
            body, whole, note = _read_chunked(rest, more)
        elif cl:
            n = int(cl[0])
            while len(rest) < n:
                chunk = more()
                if not chunk:
                    break
                rest += chunk
            body, whole, note = rest[:n], len(rest) >= n, "" if len(rest) >= n else "eof in body"
        else:
            body, whole, note = b"", True, ""
        return Seen(self.name, method, target, headers, body, whole, note)

    def take(self) -> list[Seen]:
        with self._lock:
            out, self.seen = self.seen, []
        return out

    def wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.active == 0:
                    return
            time.sleep(0.02)


# --- cases -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Legit:
    """A request that must pass: reaching ``upstream`` once, at ``target``, with ``body``."""

    upstream: str
    target: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()  # must arrive with these values


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expect: frozenset[int] = frozenset()  # allowed answers (empty: any)
    legit: Legit | None = None
    bad_body: bool = False  # a malformed or oversized body: nothing may reach an upstream
    half_close: bool = False  # shut our sending side after the request (a body cut short)
    then: tuple[frozenset[int], ...] = ()  # allowed answers to the pipelined requests that follow

    @property
    def targets(self) -> list[str]:
        """The request target of each request line in the data (the first is the case's own)."""
        return [m.group(1).decode("latin-1") for m in _REQUEST_LINE.finditer(self.data)]


_REQUEST_LINE = re.compile(rb"(?:^|\n)[A-Za-z]+ (\S+) HTTP/\d\.\d\r?\n")


def request(
    method: str,
    target: str,
    host: str,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    *,
    version: str = "HTTP/1.1",
    length: bool = True,
    connection: str | None = "close",
) -> bytes:
    lines = [f"{method} {target} {version}", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body and length:
        lines.append(f"Content-Length: {len(body)}")
    if connection:
        lines.append(f"Connection: {connection}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*parts: bytes) -> bytes:
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"


OK = frozenset({200})
REFUSED = frozenset({400})
NOT_FOUND = frozenset({404})
BODY_REFUSED = frozenset({400, 411, 413})  # malformed, length required, too large
# Go's own HTTP parser answers some malformations before Caddy sees them (400, 501 for a
# transfer coding it does not know, 505 for a version).
PARSER_REFUSED = frozenset({400, 411, 413, 501, 505})

# --- a realistic session's requests ---------------------------------------------------------------

_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def legit_cases(host: str) -> list[Case]:
    enc_host = f"https%3A%2F%2F{host}"
    authorize = (
        "/auth/api/oidc/authorization?response_type=code&client_id=claude-ai"
        "&redirect_uri=https%3A%2F%2Fclaude.ai%2Fapi%2Fmcp%2Fauth_callback"
        "&scope=openid%20profile%20notes%3Aread+notes%3Awrite%20offline_access"
        f"&state=..%2F..%2Fauth%2F%2e%2e&code_challenge={_CHALLENGE}&code_challenge_method=S256"
        f"&resource={enc_host}%2Fmcp"
    )
    inspector = (
        "/auth/api/oidc/authorization?response_type=code&client_id=mcp-inspector"
        "&redirect_uri=http%3A%2F%2F127.0.0.1%3A6274%2Foauth%2Fcallback%2Fdebug&scope=notes%3Aread"
        f"&code_challenge={_CHALLENGE}&code_challenge_method=S256&state=a/../b;c\\d//e"
    )
    token_form = (
        "grant_type=authorization_code&code=authelia_ac_abc.def&client_id=claude-ai&client_secret=s3cr%2Ft"
        "&redirect_uri=https%3A%2F%2Fclaude.ai%2Fapi%2Fmcp%2Fauth_callback"
        f"&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk&resource={enc_host}%2Fmcp"
    ).encode()
    form = (("Content-Type", "application/x-www-form-urlencoded"),)
    js = (("Content-Type", "application/json"),)
    session = (("Cookie", "authelia_session=Zq1x; other=1"),)
    bearer = (("Authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig"),)
    mcp_headers = (
        *bearer,
        ("Accept", "application/json, text/event-stream"),
        ("Mcp-Session-Id", "3f9c0a6e-1"),
        ("Mcp-Protocol-Version", "2025-11-25"),
        *js,
    )
    rpc = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read","arguments":{"path":"../x%2F..;/y"}}}'
    big = (
        b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"write","arguments":{"text":"'
        + (b"a" * (512 * 1024))
        + b'"}}}'
    )
    gets = [
        "/auth",
        "/auth/",
        "/auth/api/health",
        "/auth/api/state",
        "/auth/api/user/info",
        "/auth/jwks.json",
        "/auth/.well-known/openid-configuration",
        "/auth/.well-known/oauth-authorization-server",
        "/auth/static/js/index.Bx9f-3aQ.js",
        "/auth/static/media/logo.9c1e.png?v=2",
        "/auth/locales/zh-CN/portal.json",
        "/auth/locales/en/consent.json",
        "/auth/favicon.ico",
        "/auth/consent/openid/decision?flow_id=7d2f0f8e-2c1a-4a3b-9f1e-3c5d7e9a1b2c",
        f"/auth/?rd={enc_host}%2Fmcp&rm=GET",
        authorize,
        inspector,
        "/auth/api/oidc/authorization?client_id=claude-ai&scope=openid+offline_access&x=%25%2e%2E%2f%5c",
    ]
    cases = [Case(f"legit GET {t[:60]}", request("GET", t, host, session), OK, Legit(AUTHELIA, t)) for t in gets]
    posts = [
        ("/auth/api/oidc/token", form, token_form),
        ("/auth/api/oidc/revocation", form, b"token=abc&token_type_hint=refresh_token"),
        ("/auth/api/oidc/introspection", form, b"token=abc"),
        ("/auth/api/firstfactor", (*js, *session), b'{"username":"alice","password":"p","flowID":"x"}'),
        ("/auth/api/secondfactor/totp", (*js, *session), b'{"token":"123456","flow":"openid_connect"}'),
        ("/auth/api/oidc/consent", (*js, *session), b'{"flow_id":"x","consent":true}'),
    ]
    for t, hs, body in posts:
        cases.append(Case(f"legit POST {t}", request("POST", t, host, hs, body), OK, Legit(AUTHELIA, t, body, hs)))
    cases.append(
        Case(
            "legit POST /auth/api/oidc/token with basic auth",
            request("POST", "/auth/api/oidc/token", host, (*form, ("Authorization", "Basic Y2w6cw==")), token_form),
            OK,
            Legit(AUTHELIA, "/auth/api/oidc/token", token_form, (("Authorization", "Basic Y2w6cw=="),)),
        )
    )
    for alias, target in DISCOVERY_ALIASES:
        cases.append(Case(f"legit alias {alias}", request("GET", alias, host), OK, Legit(AUTHELIA, target)))
    cases += [
        Case(
            "legit POST /mcp", request("POST", "/mcp", host, mcp_headers, rpc), OK, Legit(GATEWAY, "/mcp", rpc, bearer)
        ),
        Case(
            "legit POST /mcp 512KiB",
            request("POST", "/mcp", host, mcp_headers, big),
            OK,
            Legit(GATEWAY, "/mcp", big, bearer),
        ),
        Case(
            "legit POST /mcp Expect: 100-continue",
            request("POST", "/mcp", host, (*mcp_headers, ("Expect", "100-continue")), rpc),
            OK,
            Legit(GATEWAY, "/mcp", rpc),
        ),
        Case(
            "legit GET /mcp (event stream)",
            request("GET", "/mcp", host, (*bearer, ("Accept", "text/event-stream"))),
            OK,
            Legit(GATEWAY, "/mcp", b"", bearer),
        ),
        Case("legit DELETE /mcp", request("DELETE", "/mcp", host, mcp_headers), OK, Legit(GATEWAY, "/mcp")),
        Case(
            "legit OPTIONS /mcp (CORS preflight)",
            request(
                "OPTIONS",
                "/mcp",
                host,
                (("Origin", "https://claude.ai"), ("Access-Control-Request-Method", "POST")),
            ),
            OK,
            Legit(GATEWAY, "/mcp"),
        ),
        Case("legit GET /mcp/", request("GET", "/mcp/", host, bearer), OK, Legit(GATEWAY, "/mcp/")),
        Case(
            "legit GET /mcp?query with dots",
            request("GET", "/mcp?x=..%2F..%2Fauth&y=/../auth;z", host),
            OK,
            Legit(GATEWAY, "/mcp?x=..%2F..%2Fauth&y=/../auth;z"),
        ),
        Case(
            "legit GET /.well-known/oauth-protected-resource",
            request("GET", "/.well-known/oauth-protected-resource", host),
            OK,
            Legit(GATEWAY, "/.well-known/oauth-protected-resource"),
        ),
        Case(
            "legit GET /.well-known/oauth-protected-resource/mcp",
            request("GET", "/.well-known/oauth-protected-resource/mcp", host),
            OK,
            Legit(GATEWAY, "/.well-known/oauth-protected-resource/mcp"),
        ),
        Case(
            "legit HTTP/1.0 GET /auth/api/health",
            request("GET", "/auth/api/health", host, version="HTTP/1.0", connection=None),
            OK,
            Legit(AUTHELIA, "/auth/api/health"),
        ),
        Case(
            "legit HEAD /auth/api/health",
            request("HEAD", "/auth/api/health", host),
            OK,
            Legit(AUTHELIA, "/auth/api/health"),
        ),
    ]
    return cases


# --- paths that are not in canonical form ----------------------------------------------------------


def _escape_first(path: str, ch: str, upper: bool = True) -> str:
    i = path.index(ch, 1)
    esc = f"%{ord(ch):02X}" if upper else f"%{ord(ch):02x}"
    return path[:i] + esc + path[i + 1 :]


def path_cases(host: str) -> list[Case]:
    bases = [
        "/auth/api/health",
        "/auth/api/oidc/token",
        "/mcp",
        "/.well-known/openid-configuration/auth",
        "/.well-known/oauth-protected-resource/mcp",
    ]
    targets: list[str] = []
    for base in bases:
        first = base.split("/")[1]  # "auth", "mcp", ".well-known"
        rest = base[len(first) + 1 :]
        letter = first.lstrip(".")[0]
        targets += [
            "/" + f"%{ord(letter):02x}" + first[1:] + rest if not first.startswith(".") else "/%2e" + base[2:],
            _escape_first(base, letter, upper=True),
            _escape_first(base, base[-1] if base[-1].isalpha() else letter, upper=False),
            f"/{first}%2F{rest[1:]}" if rest else f"/{first}%2F",
            f"/{first}%2f{rest[1:]}" if rest else f"/{first}%2f",
            f"/{first}/.{rest}",
            f"/{first}//{rest[1:]}" if rest else f"//{first}",
            f"//{base[1:]}",
            f"{base}/.",
            f"{base}/..",
            f"/x/..{base}",
            f"/{first};x{rest}",
            f"{base};",
            f"/{first}\\{rest[1:]}" if rest else f"/{first}\\",
            f"/{first}%5C{rest[1:]}" if rest else f"/{first}%5c",
            f"{base}%00",
            f"/{first}/%2e%2e/{first}{rest}",
            f"/{first}/%252e%252e{rest}",
            f"/{first}/.%2e{rest}",
            f"{base}#x",
        ]
    targets += [
        # Issue 11, finding 4, as reported.
        "/mcp/..%2f..%2fauth/api/oidc/token",
        "/x/../auth/api/health",
        "/%61uth/api/health",
        "/mcp;/../auth",
        "/auth/%2e%2e/mcp",
        # Crossing from one route into another.
        "/auth/../mcp",
        "/auth/..;/mcp",
        "/mcp/../auth/api/oidc/token",
        "/mcp/%2e%2e/auth/api/oidc/token",
        "/mcp/%2E%2E%2Fauth%2Fapi%2Foidc%2Ftoken",
        "/mcp/..%5cauth/api/oidc/token",
        "/mcp\\..\\auth\\api\\oidc\\token",
        "/mcp/..;/auth/api/verify",
        "/.well-known/oauth-protected-resource/../../auth/api/verify",
        "/.well-known/oauth-protected-resource/%2e%2e/%2e%2e/auth/api/oidc/token",
        "/.well-known/openid-configuration/../../mcp",
        "/auth/api/oidc/../verify",
        "/auth/api/health/..%2fverify",
        "/auth/api/%2e%2e/api/verify",
        "/auth/api/authz%2fforward-auth",
        "/auth/api/verify%3bx",
        "/auth/%61pi/verify",
        "/%2561uth/api/health",
        "/auth/%2f%2e%2e%2fmcp",
        "/mcp%2f..%2f..%2fauth",
        "/auth/api/health%09",
        "/auth/api/health%0d%0aX-Injected:%201",
        "/auth/%7e/x",
        "/auth/%2D",
        "/auth/%5F",
        "/auth/%25",
        "/auth/%",
        "/auth/%zz",
        "/auth/\u00e9",
        "/mcp\u00ff",
        "/auth/%c0%ae%c0%ae/mcp",
        "/auth/..%c0%af../mcp",
        "/./auth/api/health",
        "/.//auth",
        "///mcp",
        "/auth/api/health/./",
        "/auth/api/health/../health",
        "/auth/api/health;jsessionid=1",
        "/mcp;x=1",
        "/mcp/.",
        "/auth/.well-known/../api/verify",
        '/auth/"x"',
        "/auth/<x>",
        "/auth/{x}",
        "/auth/x|y",
        "/auth/x^y",
        "/auth/`x`",
        "/auth/[x]",
    ]
    cases = []
    for t in dict.fromkeys(targets):
        cases.append(Case(f"path {t}", request("GET", t, host), REFUSED))
    for t in ("/mcp/..%2f..%2fauth/api/oidc/token", "/x/../mcp", "/auth/%2e%2e/mcp", "/mcp;/../auth"):
        body = b'{"jsonrpc":"2.0","id":1,"method":"initialize"}'
        cases.append(Case(f"path POST {t}", request("POST", t, host, (), body), REFUSED))
    # Not origin-form: absolute-form, asterisk-form, authority-form.
    for t, method in [
        (f"http://{host}/auth/api/health", "GET"),
        ("http://evil.example/mcp", "GET"),
        (f"https://{host}/auth/../mcp", "GET"),
        ("http://evil.example/mcp/../auth/api/verify", "POST"),
        ("*", "OPTIONS"),
        (f"{host}:443", "CONNECT"),
    ]:
        # Go's server answers "OPTIONS *" itself (200, no body), before Caddy's routes.
        allowed = REFUSED | (OK if t == "*" else frozenset())
        cases.append(Case(f"{method} {t}", request(method, t, host), allowed))
    return cases


# Canonical paths whose route differs only by case or by trailing dots and spaces: they have no
# route (404); an upstream would take them for another path.
def case_cases(host: str) -> list[Case]:
    targets = [
        "/AUTH/api/health",
        "/Auth/api/oidc/token",
        "/aUTH",
        "/MCP",
        "/Mcp",
        "/mcP/",
        "/.WELL-KNOWN/openid-configuration/auth",
        "/.well-known/OPENID-configuration",
        "/.Well-Known/oauth-authorization-server",
        "/.well-known/OAuth-Protected-Resource/mcp",
        "/mcp.",
        "/mcp..",
        "/mcp%20",
        "/auth.",
        "/auth%20/api/health",
        "/.well-known/openid-configuration.",
        "/.well-known/openid-configuration%20",
        "/mcpx",
        "/authx",
        "/",
    ]
    return [Case(f"case {t}", request("GET", t, host), NOT_FOUND | REFUSED) for t in targets]


# --- forwarding headers ----------------------------------------------------------------------------


def header_cases(host: str) -> list[Case]:
    spoof = {
        "Forwarded": "for=1.2.3.4;host=evil.example;proto=http",
        "X-Real-IP": "1.2.3.4",
        "X-Original-URL": "/auth/api/verify",
        "X-Original-URI": "/admin",
        "X-Original-Method": "GET",
        "X-Original-Host": "evil.example",
        "X-Authelia-URL": "https://evil.example/auth",
        "X-Forwarded-URI": "/auth/api/verify",
        "X-Forwarded-Method": "DELETE",
        "X-Forwarded-Prefix": "/evil",
        "X-Forwarded-Port": "80",
        "X-Forwarded-Server": "evil.example",
        "X-Forwarded-Ssl": "off",
        "X-Host": "evil.example",
        "X-Rewrite-URL": "/auth/api/verify",
        "True-Client-IP": "1.2.3.4",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "evil.example",
        **IDENTITY,
    }
    routes = [
        ("GET", "/auth/api/health", b""),
        ("POST", "/auth/api/oidc/token", b"grant_type=refresh_token&refresh_token=x"),
        ("GET", "/.well-known/openid-configuration/auth", b""),
        ("POST", "/mcp", b'{"jsonrpc":"2.0","id":1,"method":"ping"}'),
    ]
    cases = []
    for name, value in spoof.items():
        for method, target, body in routes:
            cases.append(
                Case(f"header {name} → {method} {target}", request(method, target, host, ((name, value),), body), OK)
            )
    lower = tuple((k.lower(), v) for k, v in spoof.items())
    for method, target, body in routes:
        cases.append(Case(f"header all lower-case → {method} {target}", request(method, target, host, lower, body), OK))
        h2c = (("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"))
        ws = (
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        )
        for what, hs, conn in (("h2c", h2c, "Upgrade, HTTP2-Settings"), ("websocket", ws, "Upgrade")):
            data = request(method, target, host, hs, body, connection=conn)
            cases.append(Case(f"header {what} upgrade → {method} {target}", data, OK))
        cases.append(
            Case(
                f"header another Host → {method} {target}",
                request(method, target, "evil.example", (("X-Forwarded-Host", f"{host}, evil.example"),), body),
                OK,
            )
        )
    for target in ("/mcp", "/.well-known/oauth-protected-resource/mcp"):
        cases.append(
            Case(
                f"header Cookie → GET {target}",
                request("GET", target, host, (("Cookie", "authelia_session=Zq1x"), ("cookie", "b=2"))),
                OK,
            )
        )
    return cases


# --- Authelia's forward-auth endpoints -------------------------------------------------------------


def forward_auth_cases(host: str) -> list[Case]:
    targets = [
        "/auth/api/authz/forward-auth",
        "/auth/api/authz/auth-request",
        "/auth/api/authz/ext-authz",
        "/auth/api/authz/ext-authz/some/path",
        "/auth/api/authz/",
        "/auth/api/authz",
        "/auth/api/authz/forward-auth?authelia_url=https%3A%2F%2Fevil.example",
        "/auth/api/verify",
        "/auth/api/verify/",
        "/auth/api/verify?rd=https%3A%2F%2Fevil.example",
        "/auth/api/Verify",
        "/auth/API/authz/forward-auth",
        "/auth/api/AUTHZ/ext-authz",
    ]
    headers = (("X-Original-URL", "https://evil.example/"), ("X-Original-Method", "GET"))
    cases = [Case(f"forward-auth GET {t}", request("GET", t, host, headers), NOT_FOUND) for t in targets]
    for method in ("POST", "HEAD", "PUT", "OPTIONS"):
        cases.append(
            Case(f"forward-auth {method} /auth/api/verify", request(method, "/auth/api/verify", host), NOT_FOUND)
        )
    return cases


# --- bodies ----------------------------------------------------------------------------------------


def body_cases(host: str) -> list[Case]:
    cases = []
    for target, ctype in (("/mcp", "application/json"), ("/auth/api/oidc/token", "application/x-www-form-urlencoded")):
        base = (("Content-Type", ctype), ("Transfer-Encoding", "chunked"))

        def te(body: bytes, *, headers: tuple[tuple[str, str], ...] = base, tgt: str = target) -> bytes:
            return request("POST", tgt, host, headers, length=False) + body

        broken: list[tuple[str, bytes, bool]] = [
            ("bad chunk size", te(b"zz\r\nhello\r\n0\r\n\r\n"), False),
            ("bad size after a good chunk", te(b"5\r\nhello\r\nqq\r\nworld\r\n0\r\n\r\n"), False),
            ("chunk shorter than its size", te(b"a\r\nhello"), True),
            ("good chunk then cut", te(b"5\r\nhello\r\n"), True),
            ("chunk data without CRLF", te(b"5\r\nhelloXX0\r\n\r\n"), False),
            ("huge chunk size", te(b"fffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), False),
            ("negative chunk size", te(b"-5\r\nhello\r\n0\r\n\r\n"), False),
            ("0x chunk size", te(b"0x5\r\nhello\r\n0\r\n\r\n"), False),
            ("bad trailer", te(b"5\r\nhello\r\n0\r\nbad trailer line\r\n\r\n"), False),
            ("cut in trailer", te(b"5\r\nhello\r\n0\r\nX-T: 1\r\n"), True),
            ("overlong chunk extension", te(b"5;" + b"e" * 20000 + b"\r\nhello\r\n0\r\n\r\n"), False),
            (
                "Content-Length short",
                request("POST", target, host, (("Content-Type", ctype), ("Content-Length", "40")), length=False)
                + b"grant_type=x",
                True,
            ),
            (
                "Content-Length mismatch twice",
                request("POST", target, host, (("Content-Length", "5"), ("Content-Length", "6")), length=False)
                + b"hello!",
                False,
            ),
            (
                "Content-Length negative",
                request("POST", target, host, (("Content-Length", "-1"),), length=False) + b"x",
                False,
            ),
            (
                "Content-Length with plus",
                request("POST", target, host, (("Content-Length", "+5"),), length=False) + b"hello",
                False,
            ),
            (
                "Content-Length not a number",
                request("POST", target, host, (("Content-Length", "5x"),), length=False) + b"hello",
                False,
            ),
            ("unknown transfer coding", te(b"hello", headers=(("Transfer-Encoding", "gzip, chunked"),)), False),
            ("identity transfer coding", te(b"hello", headers=(("Transfer-Encoding", "identity"),)), False),
            ("chunked twice", te(chunked(b"hello"), headers=(("Transfer-Encoding", "chunked, chunked"),)), False),
            (
                "too large (Content-Length)",
                request("POST", target, host, (("Content-Type", ctype),), b"a" * (MAX_BODY + 1)),
                False,
            ),
            (
                "too large (2 MiB)",
                request("POST", target, host, (("Content-Type", ctype),), b"a" * (2 * MAX_BODY)),
                False,
            ),
            ("too large (chunked)", te(chunked(*[b"a" * 65536] * 20)), False),
            (
                "too large (declared only)",
                request("POST", target, host, (("Content-Length", str(50 * MAX_BODY)),), length=False) + b"a" * 1000,
                True,
            ),
        ]
        for what, data, half in broken:
            cases.append(Case(f"body {what} → POST {target}", data, PARSER_REFUSED, bad_body=True, half_close=half))
        # A whole body in chunks: it arrives whole, or the request is refused (length required).
        cases.append(Case(f"body chunked whole → POST {target}", te(chunked(b'{"a":', b"1}")), BODY_REFUSED | OK))
        cases.append(
            Case(
                f"body chunked with Content-Length too → POST {target}",
                request("POST", target, host, (("Content-Length", "3"), ("Transfer-Encoding", "chunked")), length=False)
                + chunked(b"hello"),
                BODY_REFUSED | OK,
            )
        )
    # Bodiless methods with a broken body: nothing of it may reach an upstream. A chunked body that
    # breaks before its first byte cannot be told from an empty one in Caddy's config (Go's server
    # hides both the Transfer-Encoding header and the read error from it): such a request goes on
    # with an empty, well-formed body, and is answered as if it had none.
    for method in ("GET", "DELETE", "OPTIONS"):
        cases.append(
            Case(
                f"body {method} /mcp with a bad chunk",
                request(method, "/mcp", host, (("Transfer-Encoding", "chunked"),), length=False) + b"zz\r\n\r\n",
                PARSER_REFUSED | OK,
                bad_body=True,
            )
        )
        cases.append(
            Case(
                f"body {method} /mcp with a good chunk, then a bad one",
                request(method, "/mcp", host, (("Transfer-Encoding", "chunked"),), length=False)
                + b"5\r\nhello\r\nzz\r\n\r\n",
                PARSER_REFUSED,
                bad_body=True,
            )
        )
        cases.append(
            Case(
                f"body {method} /mcp with a short body",
                request(method, "/mcp", host, (("Content-Length", "10"),), length=False) + b"abc",
                PARSER_REFUSED,
                bad_body=True,
                half_close=True,
            )
        )
    return cases


# --- several requests on one connection ------------------------------------------------------------


def pipeline_cases(host: str) -> list[Case]:
    keep = lambda m, t, b=b"": request(m, t, host, (), b, connection=None)  # noqa: E731
    last = lambda m, t, b=b"": request(m, t, host, (), b)  # noqa: E731
    return [
        Case(
            "pipeline health then verify",
            keep("GET", "/auth/api/health") + last("GET", "/auth/api/verify"),
            OK,
            then=(NOT_FOUND,),
        ),
        Case(
            "pipeline health then traversal",
            keep("GET", "/auth/api/health") + last("GET", "/mcp/../auth/api/verify"),
            OK,
            then=(REFUSED,),
        ),
        Case(
            "pipeline smuggled in a chunked body",
            request("POST", "/mcp", host, (("Transfer-Encoding", "chunked"),), length=False, connection=None)
            + b"0\r\n\r\n"
            + last("GET", "/auth/api/authz/forward-auth"),
            BODY_REFUSED | OK,
            then=(NOT_FOUND,),
        ),
        Case(
            "pipeline smuggled past Content-Length",
            request("POST", "/mcp", host, (), b"{}", connection=None) + last("GET", "/x/../auth/api/verify"),
            OK,
            then=(REFUSED,),
        ),
        Case(
            "pipeline request inside a body",
            last("POST", "/mcp", b"GET /auth/api/verify HTTP/1.1\r\nHost: x\r\n\r\n"),
            OK,
            Legit(GATEWAY, "/mcp", b"GET /auth/api/verify HTTP/1.1\r\nHost: x\r\n\r\n"),
        ),
        Case(
            "pipeline h2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            PARSER_REFUSED | NOT_FOUND,
        ),
        Case(
            "pipeline bare LF request",
            f"GET /auth/api/verify HTTP/1.1\nHost: {host}\nConnection: close\n\n".encode(),
            NOT_FOUND | REFUSED,
        ),
        Case(
            "pipeline HTTP/1.0 absolute",
            request("GET", "http://x/auth/api/verify", host, version="HTTP/1.0"),
            REFUSED,
        ),
        Case("pipeline lower-case method", request("get", "/mcp/../auth/api/verify", host), REFUSED | PARSER_REFUSED),
    ]


def all_cases(host: str) -> list[Case]:
    return [
        *legit_cases(host),
        *path_cases(host),
        *case_cases(host),
        *header_cases(host),
        *forward_auth_cases(host),
        *body_cases(host),
        *pipeline_cases(host),
    ]


# --- running and judging ---------------------------------------------------------------------------


@dataclass
class Result:
    case: Case
    statuses: list[int]
    seen: list[Seen]
    findings: list[str] = field(default_factory=list)

    def line(self) -> str:
        status = ",".join(map(str, self.statuses)) or "no answer"
        if self.seen:
            where = "; ".join(
                f"{s.upstream} saw {s.method} {s.target[:70]}" + ("" if s.whole else f" (body cut: {s.note})")
                for s in self.seen
            )
        else:
            where = "no upstream"
        mark = "FINDING " if self.findings else "ok      "
        text = f"{mark}{self.case.name[:90]} → {status} → {where}"
        return text + "".join(f"\n          ! {f}" for f in self.findings)


def send(addr: tuple[str, int], data: bytes, half_close: bool, timeout: float = CASE_TIMEOUT) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    with socket.create_connection(addr, timeout=timeout) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # refused half-way (a body too large): read what was answered
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except (TimeoutError, OSError):
                break
            if not chunk:
                break
            out += chunk
    return out


# A status line: after the previous answer's last byte, which need not be a line end.
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def statuses_of(raw: bytes) -> list[int]:
    return [int(m.group(1)) for m in _STATUS.finditer(raw) if m.group(1) != b"100"]


def judge(case: Case, statuses: list[int], seen: list[Seen], host: str) -> list[str]:
    findings: list[str] = []
    targets = case.targets or [""]
    for s in seen:
        where = f"{s.upstream} saw {s.method} {s.target!r}"
        # The request this is: the one sent with that target, or the alias rewritten to it.
        sent = next(
            (t for t in targets if t == s.target or ALIASES.get(t.split("?", 1)[0]) == s.target.split("?", 1)[0]),
            targets[0],
        )
        problem = canonical_problem(s.target)
        if problem:
            findings.append(f"{where}: path not canonical ({problem})")
        path = s.target.split("?", 1)[0]
        if route_of(path) != s.upstream:
            findings.append(f"{where}: that path's route is {route_of(path)}, not {s.upstream}")
        rewritten = ALIASES.get(sent.split("?", 1)[0])
        if s.target != sent and not (rewritten and s.target.split("?", 1)[0] == rewritten):
            findings.append(f"{where}: sent as {sent!r}")
        others = {r for r in (route_of(p) for p in readings(sent)) if r is not None and r != s.upstream}
        if others:
            findings.append(f"{where}: {sent!r} can also be read as a path of {sorted(others)}")
        if any(FORWARD_AUTH.match(p) for p in readings(s.target) | readings(sent)):
            findings.append(f"{where}: a forward-auth endpoint")
        forbidden = FORBIDDEN_HEADERS + (GATEWAY_FORBIDDEN_HEADERS if s.upstream == GATEWAY else ())
        for name in forbidden:
            if s.header(name):
                findings.append(f"{where}: header {name}: {s.header(name)}")
        if any("upgrade" in v.lower() for v in s.header("Connection")):
            findings.append(f"{where}: Connection: {s.header('Connection')}")
        for name, want in (("Host", host), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", host)):
            if s.header(name) != [want]:
                findings.append(f"{where}: {name} is {s.header(name)}, not [{want!r}]")
        if not s.whole:
            findings.append(f"{where}: body arrived broken ({s.note}, {len(s.body)} bytes)")
        if case.bad_body and s.body:
            findings.append(f"{where}: a malformed or oversized body was passed on ({len(s.body)} bytes)")
    if case.expect and not (statuses and statuses[0] in case.expect):
        findings.append(f"answered {statuses or 'nothing'}, expected one of {sorted(case.expect)}")
    for i, (status, allowed) in enumerate(zip(statuses[1:], case.then, strict=False), start=2):
        if status not in allowed:
            findings.append(f"answered {status} to request {i}, expected one of {sorted(allowed)}")
    if case.legit:
        want = case.legit
        hits = [s for s in seen if s.upstream == want.upstream and s.target == want.target]
        if len(seen) != 1 or len(hits) != 1:
            findings.append(f"legitimate request should reach {want.upstream} once at {want.target!r}")
        for s in hits:
            if s.body != want.body:
                findings.append(f"legitimate body changed ({len(s.body)} bytes, not {len(want.body)})")
            for name, value in want.headers:
                if name.lower() == "cookie" and want.upstream == GATEWAY:
                    continue
                if value not in s.header(name):
                    findings.append(f"legitimate header {name} lost: {s.header(name)}")
    return findings


@dataclass
class Report:
    results: list[Result]
    seconds: float
    timed_out: bool

    @property
    def findings(self) -> list[Result]:
        return [r for r in self.results if r.findings]


def run_cases(
    caddy: tuple[str, int], upstreams: list[Upstream], cases: list[Case], host: str, print_line: Callable[[str], None]
) -> Report:
    start = time.monotonic()
    results: list[Result] = []
    timed_out = False
    for case in cases:
        if time.monotonic() - start > TOTAL_TIMEOUT:
            timed_out = True
            print_line(f"STOPPED after {len(results)} of {len(cases)} cases: over {TOTAL_TIMEOUT:.0f} s")
            break
        for u in upstreams:
            u.take()
        try:
            raw = send(caddy, case.data, case.half_close)
        except OSError as e:
            raw = f"connection failed: {e}".encode()
        for u in upstreams:
            u.wait_idle(3)
        seen = [s for u in upstreams for s in u.take()]
        statuses = statuses_of(raw)
        result = Result(case, statuses, seen, judge(case, statuses, seen, host))
        results.append(result)
        print_line(result.line())
    return Report(results, time.monotonic() - start, timed_out)


# --- the Caddy container ---------------------------------------------------------------------------


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=120)


@contextmanager
def running_caddy(
    caddyfile: str, image: str, gateway_port: int, binary: Path | None = None
) -> Iterator[tuple[tuple[str, int], list[Upstream]]]:
    """Caddy with ``caddyfile`` on a network of its own, and the two recording upstreams.

    ``binary``: another caddy executable to run in the image instead of its own (another version).

    Yields Caddy's listening address and the upstreams; removes the container, the network and the
    folder whatever happens.
    """
    tag = f"mcpgate-fuzz-{pysecrets.token_hex(4)}"
    workdir = Path(tempfile.mkdtemp(prefix=f"{tag}-"))
    upstreams: list[Upstream] = []
    network_created = False
    try:
        (workdir / "Caddyfile").write_text(caddyfile)
        workdir.chmod(0o755)
        (workdir / "Caddyfile").chmod(0o644)
        # A subnet of its own, away from the ones a deploy (172.31.252.0/22) and the other tests
        # (10.64.0.0/10) use; retried when the engine already has it.
        for _ in range(8):
            subnet = ipaddress.ip_network(f"10.{200 + pysecrets.randbelow(40)}.{pysecrets.randbelow(256)}.0/24")
            made = _docker("network", "create", "--subnet", str(subnet), tag, check=False)
            if made.returncode == 0:
                network_created = True
                break
        else:
            raise RuntimeError(f"could not create a network for the fuzz: {made.stderr.strip()}")
        gateway = json.loads(_docker("network", "inspect", tag).stdout)[0]["IPAM"]["Config"][0].get("Gateway")
        gateway = gateway or str(next(subnet.hosts()))
        upstreams = [Upstream(AUTHELIA, gateway, AUTHELIA_PORT), Upstream(GATEWAY, gateway, gateway_port)]
        _docker(
            "run", "-d", "--name", tag, "--network", tag,
            "--add-host", f"{AUTHELIA}:{gateway}", "--add-host", f"{GATEWAY}:{gateway}",
            "-v", f"{workdir}:/etc/caddy:ro",
            *(["-v", f"{binary.resolve()}:/usr/bin/caddy:ro"] if binary else []),
            image,
            "caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile",
        )  # fmt: skip
        info = json.loads(_docker("inspect", tag).stdout)[0]
        ip = info["NetworkSettings"]["Networks"][tag]["IPAddress"]
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection((ip, INGRESS_HEALTH_PORT), timeout=1) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or not json.loads(_docker("inspect", tag).stdout)[0]["State"]["Running"]:
                logs = _docker("logs", tag, check=False)
                raise RuntimeError(f"Caddy did not come up:\n{logs.stdout}{logs.stderr}")
            time.sleep(0.2)
        yield (ip, INGRESS.port), upstreams
    finally:
        _docker("rm", "-f", tag, check=False)
        if network_created:
            _docker("network", "rm", tag, check=False)
        for u in upstreams:
            u.close()
        shutil.rmtree(workdir, ignore_errors=True)


def fuzz(
    caddyfile: str,
    image: str,
    host: str,
    gateway_port: int,
    print_line: Callable[[str], None] = print,
    binary: Path | None = None,
) -> Report:
    cases = all_cases(host)
    with running_caddy(caddyfile, image, gateway_port, binary) as (addr, upstreams):
        report = run_cases(addr, upstreams, cases, host, print_line)
    print_line(
        f"{len(report.results)} cases in {report.seconds:.1f} s: "
        f"{len(report.findings)} with findings ({sum(len(r.findings) for r in report.findings)} findings)"
    )
    return report


def main(argv: list[str]) -> int:
    """python -m tests.e2e.ingress_fuzz <Caddyfile> [--image I] [--binary caddy] [--host H] [--gateway-port P]"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.e2e.ingress_fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("caddyfile", type=Path, help="a rendered Caddyfile (mcpgate render … --out DIR)")
    parser.add_argument("--image", default="mcpgate-local/caddy:2.6.2")
    parser.add_argument("--binary", type=Path, help="run this caddy executable in the image instead of its own")
    parser.add_argument("--host", help="the public host name (default: read from the Caddyfile)")
    parser.add_argument("--gateway-port", type=int, help="agentgateway's port (default: read from the Caddyfile)")
    args = parser.parse_args(argv[1:])
    text = args.caddyfile.read_text()
    m = re.search(r"header_up Host (\S+)", text)
    host = args.host or (m.group(1) if m else "mcp-gateway.home.test")
    m = re.search(r"reverse_proxy agentgateway:(\d+)", text)
    port = args.gateway_port or (int(m.group(1)) if m else 3000)
    return 1 if fuzz(text, args.image, host, port, binary=args.binary).findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
