"""IMAP under connection budgets (issue 15), against a live gateway on loopback.

- a connection that has not logged in within ``imap.login_timeout_seconds`` gets ``* BYE``
  and is closed, whether it stays silent or keeps sending (a login deadline, not an idle
  timer); once logged in, RFC 3501 §5.4's autologout applies instead;
- one client address cannot hold more than ``limits.imap_per_address`` connections, while
  another address still connects and logs in; the refused get ``* BYE [UNAVAILABLE]``.
"""

from __future__ import annotations

import imaplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import metrics
from gateway.app.listeners import start_imap, start_imaps
from gateway.testing.live import live_gateway, make_home
from gateway.testing.ports import listen_env
from gateway.testing.world import populate
from tests.imap_server.kit import PASSWORD, ImapEnv

LOGIN_TIMEOUT_S = 2
PER_ADDRESS = 4


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImapEnv]:
    home: Path = make_home(tmp_path_factory.mktemp("imap") / "home")
    world = populate(home)
    extra = {"GATEWAY__IMAP__LOGIN_TIMEOUT_SECONDS": str(LOGIN_TIMEOUT_S),
             "GATEWAY__LIMITS__IMAP_PER_ADDRESS": str(PER_ADDRESS),
             "GATEWAY__TLS__ALLOW_AUTH_WITHOUT_TLS": "true"}
    with live_gateway(home, env={**listen_env(), **extra}, factories=[start_imap, start_imaps]) as live:
        yield ImapEnv(world, live)


def _from(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((address, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def _refusals(listener: str, reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value("gateway_limit_refusals_total", {"listener": listener, "reason": reason})
    return value or 0.0


def _read_all(sock: socket.socket, limit: float) -> bytes:
    """Everything the server sends until it closes (or ``limit`` seconds pass)."""
    out = b""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            break
        out += chunk
    return out


def test_silent_connection_is_closed_at_the_login_deadline(env: ImapEnv) -> None:
    before = _refusals("imap", "login_timeout")
    sock = _from("127.0.1.1", env.imap_port)
    sock.settimeout(0.5)
    try:
        start = time.monotonic()
        got = _read_all(sock, 4 * LOGIN_TIMEOUT_S)
        elapsed = time.monotonic() - start
    finally:
        sock.close()
    assert got.startswith(b"* OK ") and got.endswith(b"* BYE Login timeout, closing connection\r\n"), got
    assert LOGIN_TIMEOUT_S - 0.5 <= elapsed <= LOGIN_TIMEOUT_S + 1.5, elapsed
    assert _refusals("imap", "login_timeout") == before + 1


def test_busy_connection_is_closed_at_the_login_deadline_too(env: ImapEnv) -> None:
    sock = _from("127.0.1.2", env.imap_port)
    sock.settimeout(0.3)
    try:
        start = time.monotonic()
        got = b""
        n = 0
        while time.monotonic() - start < 4 * LOGIN_TIMEOUT_S and b"BYE" not in got:
            n += 1
            try:
                sock.sendall(b"a%d NOOP\r\n" % n)
                got += sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
        elapsed = time.monotonic() - start
    finally:
        sock.close()
    assert b"* BYE Login timeout" in got, got[-200:]
    assert elapsed <= LOGIN_TIMEOUT_S + 1.5, elapsed


def test_logged_in_session_outlives_the_login_deadline(env: ImapEnv) -> None:
    address = env.new_account()
    client = imaplib.IMAP4("127.0.0.1", env.imap_port, timeout=10)
    client.login(address, PASSWORD)
    time.sleep(LOGIN_TIMEOUT_S + 0.5)
    assert client.noop()[0] == "OK"
    assert client.logout()[0] == "BYE"


def test_one_address_cannot_take_more_than_its_share(env: ImapEnv) -> None:
    before = _refusals("imap", "address_full")
    held = [_from("127.0.2.1", env.imap_port) for _ in range(PER_ADDRESS)]
    try:
        for sock in held:
            assert sock.recv(4096).startswith(b"* OK ")
        for _ in range(3):  # more from the same address: refused at once, every time
            extra = _from("127.0.2.1", env.imap_port)
            try:
                got = _read_all(extra, 5)
            finally:
                extra.close()
            assert got == b"* BYE [UNAVAILABLE] Too many connections from your address, try again later\r\n"
        assert _refusals("imap", "address_full") == before + 3
        # another address is served as usual, and logs in
        address = env.new_account()
        other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        other.bind(("127.0.2.2", 0))
        other.settimeout(10)
        other.connect(("127.0.0.1", env.imap_port))
        other.sendall(f'a1 LOGIN "{address}" "{PASSWORD}"\r\na2 LOGOUT\r\n'.encode())
        reply = _read_all(other, 5)
        other.close()
        assert b"a1 OK" in reply and b"a2 OK" in reply, reply
        # a connection of the first address ends: its place is free again
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:
            again = _from("127.0.2.1", env.imap_port)
            first = again.recv(4096)
            if first.startswith(b"* OK ") or time.monotonic() > deadline:
                held.append(again)
                break
            again.close()
            time.sleep(0.05)
        assert first.startswith(b"* OK "), first
    finally:
        for sock in held:
            sock.close()
