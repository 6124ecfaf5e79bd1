"""Where things are reached: the stack's public hostname, OAuth redirect URIs, a remote backend's
URL, and the private IPv4 range the stack's Docker networks are carved from."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList
from pydantic import AfterValidator

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_psl = PublicSuffixList()


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- the public hostname -------------------------------------------------------------------------


def _check_dns_name(value: str, what: str) -> str:
    if value != value.lower():
        raise ValueError(f"{what} {value!r} must be lower case")
    if len(value) > 253 or "." not in value:
        raise ValueError(f"{what} {value!r} is not a fully qualified DNS name (e.g. node.tailnet.ts.net)")
    for label in value.split("."):
        if not _DNS_LABEL.match(label):
            raise ValueError(
                f"{what} {value!r} is not a valid DNS name: label {label!r} must be 1-63 characters "
                "of a-z, 0-9 and '-', not starting or ending with '-'"
            )
    return value


def _url_as_hostname(value: str) -> str | None:
    """What to say when a hostname is written as a URL (scheme, port or path), else None."""
    if not any(c in value for c in "/:"):
        return None
    parts = urlsplit(value if "://" in value else f"//{value}")
    drop = []
    if "://" in value:
        drop.append(f"the scheme {parts.scheme + '://'!r}")
    try:
        if parts.port is not None:
            drop.append(f"the port ':{parts.port}'")
    except ValueError:
        drop.append("the port")
    if parts.path not in ("", "/"):
        drop.append(f"the path {parts.path!r}")
    elif parts.path == "/":
        drop.append("the trailing '/'")
    host = (parts.hostname or "").lower()
    return f"hostname {value!r} is a URL, not a name: drop {' and '.join(drop) or 'everything but the name'}" + (
        f" and write {host!r}" if host else ""
    )


def _hostname(value: str) -> str:
    as_url = _url_as_hostname(value)
    if as_url:
        raise ValueError(as_url)
    _check_dns_name(value, "hostname")
    if _psl.is_public(value) or _psl.privatesuffix(value) is None:
        raise ValueError(
            f"hostname {value!r} is a public suffix; browsers and Authelia refuse cookies for it. "
            "Use the full node name, e.g. mcp-gateway.example-tailnet.ts.net"
        )
    return value


# A fully qualified, lower-case DNS name that can carry cookies (not a public suffix).
Hostname = Annotated[str, AfterValidator(_hostname)]


# --- URLs ----------------------------------------------------------------------------------------


def _redirect_uris(uris: list[str]) -> list[str]:
    if not uris:
        raise ValueError(
            "no redirect URI: list where this client receives the code, e.g. "
            '["https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback"]'
        )
    for uri in uris:
        parts = urlsplit(uri)
        if "*" in uri:
            raise ValueError(
                f"redirect URI {uri!r} has a wildcard '*': Authelia compares redirect URIs exactly, and a "
                "pattern would send codes wherever it matches; list each callback in full"
            )
        if "#" in uri:
            raise ValueError(f"redirect URI {uri!r} must not have a #fragment (RFC 6749 section 3.1.2)")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"redirect URI {uri!r} must not carry user:password@ before the host")
        if parts.scheme == "https" and parts.hostname:
            continue
        if parts.scheme == "http" and parts.hostname and is_loopback_host(parts.hostname):
            continue
        raise ValueError(
            f"redirect URI {uri!r} must be an absolute https:// URL "
            "(plain http:// is allowed only for loopback: 127.0.0.1, [::1], localhost)"
        )
    if len(set(uris)) != len(uris):
        raise ValueError("redirect URIs are listed twice")
    return uris


# Where an OAuth client receives its code: exact https URLs, or http on loopback (native clients).
RedirectUris = Annotated[list[str], AfterValidator(_redirect_uris)]


def _remote_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url {value!r} must be an absolute http(s) URL, e.g. http://homeassistant.lan:8123/api/mcp")
    return value


# A backend the stack does not run, reached at this URL.
RemoteUrl = Annotated[str, AfterValidator(_remote_url)]


# --- the stack's private networks ----------------------------------------------------------------


def _network_pool(value: str) -> str:
    try:
        pool = ipaddress.IPv4Network(value)
    except ValueError as err:
        raise ValueError(
            f"network_pool {value!r} is not an IPv4 network with its host bits zero ({err}); e.g. 172.31.252.0/22"
        ) from None
    if not pool.is_private or pool.is_loopback or pool.is_link_local:
        raise ValueError(f"network_pool {value} is not a private range; use one in 10/8, 172.16/12 or 192.168/16")
    if not 16 <= pool.prefixlen <= 26:
        raise ValueError(
            f"network_pool {value}: the prefix must be /16 to /26 (each network takes a /28), e.g. 172.31.252.0/22"
        )
    return str(pool)


# A private IPv4 range, /16 to /26, written normalised.
NetworkPool = Annotated[str, AfterValidator(_network_pool)]
