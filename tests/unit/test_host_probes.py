"""The host checks' parsers, on text captured from a Debian 12 host running the stack."""

from __future__ import annotations

import subprocess

import pytest

from tests.host.probes import http_script, listening, parse_http, route_devices

# /proc/net/tcp and tcp6 of a host whose ingress is published on 127.0.0.1:8088, sshd on all addresses.
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F98 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31722 1 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20139 1 0
   2: 020011AC:0016 010011AC:C7A2 01 00000000:00000000 02:0009F5A4 00000000     0        0 33160 2 0
  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00
   1: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 0A 00000000:00000000 00
"""

PROC_NET_ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
docker0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
br-6b0a93c1d2e4\t00FC1FAC\t00000000\t0001\t0\t0\t0\t F0FFFFFF\t0\t0\t0
"""


def test_listening_reads_ipv4_and_ipv6_sockets_in_listen_state_only() -> None:
    assert listening(PROC_NET_TCP) == {("127.0.0.1", 8088), ("0.0.0.0", 22), ("::", 22), ("::1", 631)}


def test_route_devices_lists_every_device_with_a_route() -> None:
    assert route_devices(PROC_NET_ROUTE) == {"eth0", "docker0", "br-6b0a93c1d2e4"}


def test_parse_http_splits_status_headers_and_body() -> None:
    raw = 'HTTP/1.0 401 Unauthorized\r\nWww-Authenticate: Bearer realm="x"\r\nContent-Length: 2\r\n\r\n{}'
    assert parse_http(raw) == (401, {"www-authenticate": 'Bearer realm="x"', "content-length": "2"}, "{}")


def test_http_script_speaks_http_1_0_to_a_real_server(tmp_path) -> None:
    """The bash command against a real HTTP server on this machine's loopback."""
    (tmp_path / "doc.json").write_text('{"ok": true}')
    server = subprocess.Popen(
        ["python3", "-m", "http.server", "0", "--bind", "127.0.0.1", "-d", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split(" port ")[1].split()[0])
        out = subprocess.run(
            ["sh", "-c", http_script(port, "/doc.json", {"Host": "mcp.example"})], capture_output=True, text=True
        )
        assert parse_http(out.stdout)[0::2] == (200, '{"ok": true}')
    finally:
        server.terminate()
        server.wait()


@pytest.mark.parametrize("path, headers", [("/a b", {}), ("/a", {"X": "1\r\nInjected: 1"})])
def test_http_script_refuses_a_request_that_would_split(path: str, headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        http_script(80, path, headers)
