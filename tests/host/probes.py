"""What the host checks ask the host, with nothing a bare Debian host lacks: bash, cat and /proc.

A host on day one has no curl, no ``ip`` and no ``ss`` (Debian's minimal system has none, and the
deploy installs only Docker), so HTTP goes over bash's /dev/tcp and sockets and routes are read from
/proc. The parsers are pure, so they are unit-tested on captured text (tests/unit/test_host_probes.py).
"""

from __future__ import annotations

import ipaddress
import shlex
import socket
import struct

LISTEN = "0A"  # TCP state in /proc/net/tcp


def http_script(port: int, path: str, headers: dict[str, str]) -> str:
    """A bash command that sends one HTTP/1.0 GET to 127.0.0.1:``port`` and prints the raw response.
    HTTP/1.0: the server closes the connection after the response and never chunks it."""
    if any(c in path for c in "\r\n ") or any(c in k + v for k, v in headers.items() for c in "\r\n"):
        raise ValueError("a request line or header with a line break or space in the path")
    request = f"GET {path} HTTP/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    script = f"exec 3<>/dev/tcp/127.0.0.1/{int(port)} && printf %s {shlex.quote(request)} >&3 && timeout 20 cat <&3"
    return f"bash -c {shlex.quote(script)}"


def parse_http(raw: str) -> tuple[int, dict[str, str], str]:
    """(status, lower-cased headers, body) of a raw HTTP/1.x response."""
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers, body


def _address(hex_addr: str) -> str:
    """An address as /proc/net/tcp{,6} writes it (host byte order, 32-bit words) in text form."""
    raw = bytes.fromhex(hex_addr)
    words = struct.unpack(f"<{len(raw) // 4}I", raw)
    packed = struct.pack(f">{len(words)}I", *words)
    family = socket.AF_INET if len(packed) == 4 else socket.AF_INET6
    return str(ipaddress.ip_address(socket.inet_ntop(family, packed)))


def listening(proc_net_tcp: str) -> set[tuple[str, int]]:
    """The (address, port) pairs in LISTEN state, from /proc/net/tcp and /proc/net/tcp6 text."""
    found = set()
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0] == "sl" or fields[3] != LISTEN:
            continue
        addr, _, port = fields[1].partition(":")
        found.add((_address(addr), int(port, 16)))
    return found


def route_devices(proc_net_route: str) -> set[str]:
    """The devices that carry a route of the main IPv4 table, from /proc/net/route text. A bridge
    with an address on the host always has one (the kernel adds its subnet's route)."""
    return {line.split()[0] for line in proc_net_route.splitlines()[1:] if line.strip()}
