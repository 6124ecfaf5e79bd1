"""Where things are reached: the stack's public hostname, OAuth redirect URIs, a remote backend's
URL, and the private IPv4 range the stack's Docker networks are carved from."""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Annotated
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList
from pydantic import AfterValidator

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


@functools.cache
def _public_suffixes(with_idn: bool) -> PublicSuffixList:
    """The public suffix list, parsed on first use (every mcpgate and pyinfra process imports this
    module; the parse is ~60 ms). Its internationalised rules match a name only in their punycode
    form, which always starts a label with ``xn--``: without such a label in the name, the list is
    parsed without punycoding each of its ~10,000 rules (~20 ms) and answers the same."""
    return PublicSuffixList(accept_encoded_idn=with_idn)


def _is_public_suffix(name: str) -> bool:
    psl = _public_suffixes(any(label.startswith("xn--") for label in name.split(".")))
    return psl.is_public(name) or psl.privatesuffix(name) is None


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
    if _is_public_suffix(value):
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


def _login_server(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(
            f"login_server {value!r} must be the control server's http(s) URL, e.g. https://headscale.example.com"
        )
    return value


# A Tailscale control server other than Tailscale's (tailscale up --login-server), e.g. headscale.
LoginServer = Annotated[str, AfterValidator(_login_server)]


def _apt_source(value: str) -> str:
    line = value.strip()
    if "\n" in line or "\r" in line or not line.startswith("deb ") or len(line.split()) < 3:
        raise ValueError(
            f"apt_source {value!r} must be one apt source line (deb [options] <uri> <suite> [components]), "
            "e.g. deb [trusted=yes] http://apt.lan/tailscale/ ./"
        )
    return line


# One apt source line ("deb [options] uri suite [components]"), for a mirror or a local repository.
AptSource = Annotated[str, AfterValidator(_apt_source)]


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


# --- where a backend with egress may go ----------------------------------------------------------

# What an egress backend may not reach unless its inventory names the address and port
# (``egress_allow``): everything that is not the public internet, by why it is refused. The host's
# own addresses are refused separately (the firewall's INPUT chain), whatever their range.
EGRESS_BLOCKED = {
    "0.0.0.0/8": "'this network'",
    "10.0.0.0/8": "private (RFC 1918)",
    "100.64.0.0/10": "shared address space (CGNAT, and Tailscale's tailnet addresses)",
    "127.0.0.0/8": "loopback",
    "169.254.0.0/16": "link-local (cloud metadata services among them)",
    "172.16.0.0/12": "private (RFC 1918; Docker's own networks among them)",
    "192.0.0.0/24": "IETF protocol assignments",
    "192.168.0.0/16": "private (RFC 1918)",
    "198.18.0.0/15": "benchmarking networks",
    "224.0.0.0/4": "multicast",
    "240.0.0.0/4": "reserved, and the broadcast address",
}
# Never a destination, whatever the inventory says: nothing a backend could mean there.
_NEVER = ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4")


def _egress_destination(value: str) -> str:
    example = 'e.g. "192.168.1.50:8123" (an IPv4 address and a TCP port)'
    address, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"egress_allow entry {value!r} is not address:port; {example}")
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        raise ValueError(
            f"egress_allow entry {value!r}: {address!r} is not an IPv4 address (names are not resolved: the "
            f"firewall needs the address itself); {example}"
        ) from None
    for net in _NEVER:
        if ip in ipaddress.IPv4Network(net):
            raise ValueError(f"egress_allow entry {value!r}: {address} is {EGRESS_BLOCKED[net]}, never a destination")
    if not any(ip in ipaddress.IPv4Network(net) for net in EGRESS_BLOCKED):
        raise ValueError(
            f"egress_allow entry {value!r}: {address} is a public address, which a backend with egress reaches "
            "already; list only private (LAN, tailnet, link-local) destinations"
        )
    return f"{ip}:{int(port)}"


# One private destination an egress backend may reach: "<IPv4 address>:<TCP port>", normalised.
EgressDestination = Annotated[str, AfterValidator(_egress_destination)]
