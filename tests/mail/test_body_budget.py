"""Issue 15 item 6: one memory budget for message bodies in flight, SMTP DATA and IMAP APPEND.

A live gateway with a small budget (7.5 MiB, 5 MiB per client address, 1 s wait; a body costs
4 times its size, ``gateway.net.bodies.COPIES``). Sessions hold room by sending part of a DATA
(or announcing an APPEND literal) and stopping there:

- with no room, DATA gets ``452 4.3.1`` after its end and the session goes on; APPEND gets
  ``NO [LIMIT]`` (synchronizing literal: never invited; non-synchronizing: dropped); a
  ``MAIL FROM`` with ``SIZE=`` gets ``452 4.3.1`` at once when it could never fit, after the
  wait when it cannot fit now;
- room given back during the wait lets the waiting session go on and store its message;
- one address holding its share does not stop another address.
"""

from __future__ import annotations

import base64
import imaplib
import socket
import time
from collections.abc import Iterator

import pytest

from gateway.app.listeners import start_imap, start_submission
from gateway.net.bodies import COPIES
from gateway.net.bodies import STEP as bodies_step
from gateway.net.budgets import Budgets
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.ports import listen_env
from gateway.testing.world import PASSWORD, World, populate
from smtp import replies

MIB = 1 << 20
WAIT_S = 1.0
STEP = 256 * 1024
TOTAL = 30 * STEP  # 7.5 MiB
# Room is held for what a DATA has received (smtp.session: before the DataReader stores it), 4 copies,
# in 256 KiB steps: a DATA with 920 KiB received holds 4 x 920 KiB rounded up, 3.75 MiB.
PART = 920 * 1024
HELD_PART = 15 * STEP


def test_the_figures_below_count_four_copies() -> None:
    assert COPIES == 4 and STEP == bodies_step


@pytest.fixture(scope="module")
def world_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway]]:
    home = make_home(tmp_path_factory.mktemp("gw") / "home")
    world = populate(home)
    env = {**listen_env(), "GATEWAY__TLS__ALLOW_AUTH_WITHOUT_TLS": "true",
           "GATEWAY__LIMITS__BODY_MEMORY_BYTES": str(TOTAL), "GATEWAY__LIMITS__BODY_MEMORY_PER_ADDRESS": str(5 * MIB),
           "GATEWAY__LIMITS__BODY_MEMORY_WAIT_SECONDS": str(WAIT_S)}
    with live_gateway(home, env=env, factories=[start_submission, start_imap]) as live:
        yield world, live


def _budgets(live: LiveGateway) -> Budgets:
    return live.gateway.budgets


def _wait_used(live: LiveGateway, at_least: int) -> None:
    deadline = time.monotonic() + 5
    while _budgets(live).bodies.used < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _budgets(live).bodies.used >= at_least, _budgets(live).bodies.used


class Smtp:
    """A submission session from a chosen loopback address."""

    def __init__(self, world: World, live: LiveGateway, source: str) -> None:
        self.world = world
        self.sock = socket.socket()
        self.sock.settimeout(15)
        self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", live.port("submission")))
        self.buf = b""
        assert self.reply().startswith(b"220")
        assert self.command(b"EHLO budget.clinic.test").startswith(b"250")
        token = base64.b64encode(f"\0{world.pro}\0{PASSWORD}".encode())
        assert self.command(b"AUTH PLAIN " + token).startswith(b"235")

    def reply(self) -> bytes:
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            if line[3:4] != b"-":
                return line

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def start_data(self, mail_options: str = "") -> None:
        assert self.command(f"MAIL FROM:<{self.world.pro}>{mail_options}".encode()).startswith(b"250")
        assert self.command(f"RCPT TO:<{self.world.patient()}>".encode()).startswith(b"250")
        assert self.command(b"DATA").startswith(b"354")

    def send_part(self, size: int) -> None:
        head = f"From: {self.world.pro}\r\nSubject: budget\r\n\r\n".encode()
        line = b"b" * 1022 + b"\r\n"
        self.sock.sendall(head + line * (size // len(line)))

    def finish(self) -> bytes:
        self.sock.sendall(b".\r\n")
        return self.reply()

    def message(self, size: int = 10_000) -> bytes:
        self.start_data()
        self.send_part(size)
        return self.finish()

    def close(self) -> None:
        self.sock.close()


def _line(reply: replies.Reply) -> bytes:
    return reply.line().encode()


def test_data_without_room_gets_452_and_the_session_goes_on(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    a, b = Smtp(world, live, "127.0.6.1"), Smtp(world, live, "127.0.6.2")
    waiting = Smtp(world, live, "127.0.6.3")
    try:
        a.start_data()
        a.send_part(PART)  # 3.75 MiB held
        b.start_data()
        b.send_part(PART)
        _wait_used(live, 2 * HELD_PART)  # 7.5 of 7.5 MiB: no room for another message
        start = time.monotonic()
        assert waiting.message() == _line(replies.INSUFFICIENT_STORAGE)
        assert time.monotonic() - start >= WAIT_S - 0.1
        assert a.finish().startswith(b"250 2.0.0")
        assert b.finish().startswith(b"250 2.0.0")
        assert _budgets(live).bodies.used == 0
        assert waiting.message().startswith(b"250 2.0.0")  # the same session, once there is room
    finally:
        for s in (a, b, waiting):
            s.close()


def test_room_given_back_during_the_wait_lets_the_session_go_on(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    a, b = Smtp(world, live, "127.0.6.4"), Smtp(world, live, "127.0.6.5")
    try:
        a.start_data()
        a.send_part(PART)
        _wait_used(live, HELD_PART)
        b.start_data()
        b.send_part(1000 * 1024)  # would hold 4 MiB: its start has room, the rest waits for a
        _wait_used(live, HELD_PART + 8 * STEP)  # b holds 2 MiB at least: one read asks 2 MiB at most
        assert a.finish().startswith(b"250 2.0.0")  # gives 3.75 MiB back within b's wait
        assert b.finish().startswith(b"250 2.0.0")
    finally:
        a.close()
        b.close()


def test_one_address_at_its_share_does_not_stop_another(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    a1, a2, other = (Smtp(world, live, "127.0.6.6"), Smtp(world, live, "127.0.6.6"), Smtp(world, live, "127.0.6.7"))
    try:
        a1.start_data()
        a1.send_part(1250 * 1024)  # holds 5 MiB: its address's whole share
        _wait_used(live, 5 * MIB)
        start = time.monotonic()
        assert other.message().startswith(b"250 2.0.0")
        assert time.monotonic() - start < WAIT_S  # no wait: the budget has room for this address
        assert a2.message() == _line(replies.INSUFFICIENT_STORAGE)  # the same address: its share is taken
        assert a1.finish().startswith(b"250 2.0.0")
    finally:
        for s in (a1, a2, other):
            s.close()


def test_mail_from_size_beyond_the_room(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    a, b = Smtp(world, live, "127.0.6.8"), Smtp(world, live, "127.0.6.9")
    try:
        start = time.monotonic()
        assert b.command(f"MAIL FROM:<{world.pro}> SIZE={2 * MIB}".encode()) == _line(replies.INSUFFICIENT_STORAGE)
        assert time.monotonic() - start < WAIT_S / 2  # 4 x 2 MiB can never fit one address's share: at once
        a.start_data()
        a.send_part(PART)
        _wait_used(live, HELD_PART)
        assert b.command(f"MAIL FROM:<{world.pro}> SIZE={MIB // 2}".encode()).startswith(b"250")  # b's own share
        assert b.command(b"RSET").startswith(b"250")
        a2 = Smtp(world, live, "127.0.6.8")
        try:
            start = time.monotonic()
            reply = a2.command(f"MAIL FROM:<{world.pro}> SIZE={MIB // 2}".encode())
            assert reply == _line(replies.INSUFFICIENT_STORAGE) and time.monotonic() - start >= WAIT_S - 0.1
            assert a2.command(b"NOOP").startswith(b"250")
        finally:
            a2.close()
        assert a.finish().startswith(b"250 2.0.0")
    finally:
        a.close()
        b.close()


class _ImapFrom(imaplib.IMAP4):
    """imaplib, connecting from a chosen loopback address."""

    def __init__(self, source: str, port: int) -> None:
        self.source = source
        super().__init__("127.0.0.1", port, timeout=15)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, source_address=(self.source, 0))


def _imap(live: LiveGateway, source: str, address: str) -> imaplib.IMAP4:
    client = _ImapFrom(source, live.port("imap"))
    client.login(address, PASSWORD)
    return client


def test_append_and_data_share_the_budget(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    holder = socket.socket()
    holder.settimeout(15)
    holder.bind(("127.0.7.1", 0))
    holder.connect(("127.0.0.1", live.port("imap")))
    smtp = Smtp(world, live, "127.0.7.1")
    client = _imap(live, "127.0.7.2", world.pro)
    try:
        assert holder.recv(4096).startswith(b"* OK")
        holder.sendall(f'a1 LOGIN "{world.pro}" "{PASSWORD}"\r\n'.encode())
        assert b"a1 OK" in holder.recv(4096)
        size = 1_300_000
        holder.sendall(b"a2 APPEND INBOX {%d}\r\n" % size)  # announced: 5 MiB held before any octet
        assert holder.recv(4096).startswith(b"+ ")
        _wait_used(live, 5 * MIB)
        assert smtp.message() == _line(replies.INSUFFICIENT_STORAGE)  # the same address: its share is held
        # the other address's APPEND has room; a synchronizing one beyond the room left is refused uninvited
        body = f"From: {world.pro}\r\nSubject: x\r\n\r\n".encode() + b"y" * 1000 + b"\r\n"
        assert client.append("INBOX", "", None, body)[0] == "OK"
        typ, data = client.append("INBOX", "", None, b"z" * (MIB + 1))
        assert typ == "NO" and data[0].startswith(b"[LIMIT]"), (typ, data)
        assert client.noop()[0] == "OK"
        message = f"From: {world.pro}\r\nSubject: appended\r\n\r\n".encode()
        holder.sendall(message + b"a" * (size - len(message)) + b"\r\n")
        got = b""
        while b"a2 " not in got:
            got += holder.recv(4096)
        assert b"a2 OK" in got, got
        assert smtp.message().startswith(b"250 2.0.0")  # room again
        assert _budgets(live).bodies.used == 0
    finally:
        holder.close()
        smtp.close()
        client.logout()


def test_non_synchronizing_append_without_room_is_dropped(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    a = Smtp(world, live, "127.0.7.3")
    raw = socket.socket()
    raw.settimeout(15)
    raw.bind(("127.0.7.3", 0))
    raw.connect(("127.0.0.1", live.port("imap")))
    try:
        assert raw.recv(4096).startswith(b"* OK")
        raw.sendall(f'a1 LOGIN "{world.pro}" "{PASSWORD}"\r\n'.encode())
        assert b"a1 OK" in raw.recv(4096)
        a.start_data()
        a.send_part(PART)
        _wait_used(live, HELD_PART)
        size = 450_000  # 1.75 MiB more: beyond the address's 5 MiB
        raw.sendall(b"a2 APPEND INBOX {%d+}\r\n" % size + b"q" * size + b"\r\na3 NOOP\r\n")
        got = b""
        while b"a3 " not in got:
            got += raw.recv(4096)
        assert b"a2 NO [LIMIT]" in got and b"a3 OK" in got, got
        assert a.finish().startswith(b"250 2.0.0")
    finally:
        raw.close()
        a.close()
