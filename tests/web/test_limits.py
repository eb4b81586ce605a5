"""The HTTP listener's connection budget (issue 15): one client address cannot hold more than
``limits.http_per_address`` connections; beyond it a ``503`` at once; others are served."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from gateway.app.listeners import start_http
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.ports import listen_env

PER_ADDRESS = 3


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    home = make_home(tmp_path_factory.mktemp("web-limits") / "home")
    env = {**listen_env(), "GATEWAY__LIMITS__HTTP_PER_ADDRESS": str(PER_ADDRESS)}
    with live_gateway(home, env=env, factories=[start_http]) as running:
        yield running


def _get(source: str, port: int) -> tuple[socket.socket, bytes]:
    """One GET /healthz from ``source`` on a kept-alive connection: (socket, whole response)."""
    sock = socket.socket()
    sock.settimeout(5)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), -1)
        if sep and 0 <= length <= len(body):
            return sock, data
        try:
            chunk = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            return sock, data
        if not chunk:
            return sock, data
        data += chunk


def test_one_address_gets_503_beyond_its_share_others_are_served(live: LiveGateway) -> None:
    port = live.port("http")
    held = []
    try:
        for _ in range(PER_ADDRESS):  # keep-alive connections, held open
            sock, data = _get("127.0.4.1", port)
            held.append(sock)
            assert data.startswith(b"HTTP/1.1 200 "), data
        extra, data = _get("127.0.4.1", port)
        extra.close()
        assert data.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 10" in data, data
        other, data = _get("127.0.4.2", port)
        other.close()
        assert data.startswith(b"HTTP/1.1 200 "), data
        held.pop().close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            again, data = _get("127.0.4.1", port)
            again.close()
            if data.startswith(b"HTTP/1.1 200 "):
                break
            time.sleep(0.05)
        assert data.startswith(b"HTTP/1.1 200 "), data
    finally:
        for sock in held:
            sock.close()
