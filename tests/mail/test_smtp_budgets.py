"""SMTP under resource budgets (issue 15), against a live gateway on loopback.

- a client trickling DATA is cut when the deadline set at DATA runs out (Postfix's
  ``smtpd_timeout`` + ``smtpd_min_data_rate``), not kept alive by every byte;
- a command line sent one byte at a time is cut too (the deadline covers the whole line);
- the metric counts the timeouts per listener.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator

import pytest

from gateway import metrics
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.ports import listen_env
from gateway.testing.world import PASSWORD, World, populate
from smtp import replies

TIMEOUT_S = 2


@pytest.fixture(scope="module")
def world_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway]]:
    home = make_home(tmp_path_factory.mktemp("gw") / "home")
    world = populate(home)
    env = {**listen_env(), "GATEWAY__TLS__ALLOW_AUTH_WITHOUT_TLS": "true",
           "GATEWAY__SMTP__TIMEOUT_SECONDS": str(TIMEOUT_S), "GATEWAY__SMTP__MIN_DATA_RATE": "500"}
    with live_gateway(home, env=env) as live:
        yield world, live


def _line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def _reply(sock: socket.socket) -> bytes:
    line = _line(sock)
    while line[3:4] == b"-":
        line = _line(sock)
    return line


def _submission(world: World, live: LiveGateway) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", live.port("submission")), timeout=10)
    assert _reply(sock).startswith(b"220")
    sock.sendall(b"EHLO slow.clinic.test\r\n")
    assert _reply(sock).startswith(b"250 ")
    sock.sendall(b"AUTH PLAIN " + base64.b64encode(f"\0{world.pro}\0{PASSWORD}".encode()) + b"\r\n")
    assert _reply(sock).startswith(b"235")
    return sock


def _timeouts(listener: str) -> float:
    value = metrics.REGISTRY.get_sample_value("gateway_limit_refusals_total",
                                              {"listener": listener, "reason": "timeout"})
    return value or 0.0


def _trickle(sock: socket.socket, data: bytes, every: float, limit: float) -> tuple[bytes, float]:
    """Send one byte every ``every`` seconds until the server answers or ``limit`` passes."""
    start = time.monotonic()
    sock.settimeout(every)
    for byte in data:
        if time.monotonic() - start > limit:
            break
        try:
            sock.sendall(bytes([byte]))
        except OSError:  # the server closed first
            break
        try:
            got = sock.recv(1024)
        except TimeoutError:
            continue
        return got, time.monotonic() - start
    sock.settimeout(5)
    try:
        return sock.recv(1024), time.monotonic() - start
    except (TimeoutError, OSError):
        return b"", time.monotonic() - start


def test_slow_data_is_cut_at_the_deadline(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    before = _timeouts("submission")
    sock = _submission(world, live)
    try:
        sock.sendall(f"MAIL FROM:<{world.pro}>\r\n".encode())
        assert _reply(sock).startswith(b"250")
        sock.sendall(f"RCPT TO:<{world.patient()}>\r\n".encode())
        assert _reply(sock).startswith(b"250")
        sock.sendall(b"DATA\r\n")
        assert _reply(sock).startswith(b"354")
        # 4 bytes a second: far below 500 bytes/s; each byte used to restart the timer
        got, elapsed = _trickle(sock, b"Subject: slow\r\n\r\n" + b"x" * 200, every=0.25, limit=4 * TIMEOUT_S)
    finally:
        sock.close()
    assert got.startswith(replies.TIMEOUT.line().encode()), got
    assert TIMEOUT_S - 0.5 <= elapsed <= TIMEOUT_S + 1.5, elapsed
    assert _timeouts("submission") == before + 1


def test_slow_command_line_is_cut_at_the_deadline(world_live: tuple[World, LiveGateway]) -> None:
    _, live = world_live
    sock = socket.create_connection(("127.0.0.1", live.port("mx")), timeout=10)
    try:
        assert _reply(sock).startswith(b"220")
        got, elapsed = _trickle(sock, b"EHLO " + b"a" * 200, every=0.25, limit=4 * TIMEOUT_S)
    finally:
        sock.close()
    assert got.startswith(replies.TIMEOUT.line().encode()), got
    assert elapsed <= TIMEOUT_S + 1.5, elapsed


def test_data_at_a_fair_rate_is_not_cut(world_live: tuple[World, LiveGateway]) -> None:
    """Slower than the timeout in total, but each second brings more than ``min_data_rate`` bytes."""
    world, live = world_live
    sock = _submission(world, live)
    try:
        sock.sendall(f"MAIL FROM:<{world.pro}>\r\n".encode())
        assert _reply(sock).startswith(b"250")
        sock.sendall(f"RCPT TO:<{world.patient()}>\r\n".encode())
        assert _reply(sock).startswith(b"250")
        sock.sendall(b"DATA\r\n")
        assert _reply(sock).startswith(b"354")
        sock.sendall(f"From: {world.pro}\r\nSubject: fair\r\n\r\n".encode())
        start = time.monotonic()
        while time.monotonic() - start < 2 * TIMEOUT_S:  # 4 KiB every 0.5 s: 8 KiB/s
            sock.sendall(b"y" * 78 + b"\r\n" + b"z" * 4014 + b"\r\n")
            time.sleep(0.5)
        sock.sendall(b".\r\n")
        assert _reply(sock).startswith(b"250 2.0.0")
    finally:
        sock.close()
