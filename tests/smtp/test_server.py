"""The asyncio shell (:mod:`smtp.server`) on loopback, with the in-memory backend.

Only what needs a socket is here: real clients (smtplib, aiosmtplib) through STARTTLS and
implicit TLS, the STARTTLS injection defence at the transport, pipelining in one segment,
the deadlines (idle, slow command line, minimum DATA rate), flow control, the PROXY
resolver and admission hooks, server shutdown. Protocol behaviour is in the transcripts.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.app.devtls import write_dev_tls
from smtp import replies
from smtp.policy import Limits
from smtp.server import Deadline, ServerConfig, SmtpConnection, SmtpServer, refusal
from smtp.session import SessionConfig
from smtp.testing import Memory

HOST = "mx.test"


def _line(reply: replies.Reply) -> bytes:
    return reply.line().encode() + b"\r\n"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return write_dev_tls(tmp_path_factory.mktemp("tls"), "localhost")


@pytest.fixture(scope="module")
def contexts(tls_files: tuple[Path, Path, Path]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key, ca = tls_files
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(ca))
    return server, client


class Running:
    def __init__(self, server: SmtpServer, port: int, memory: Memory) -> None:
        self.server, self.port, self.memory = server, port, memory

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert (await reader.readline()).startswith(b"220 mx.test ESMTP")
        return reader, writer


async def _start(memory: Memory, *, listener: str = "submission", starttls: ssl.SSLContext | None = None,
                 implicit: ssl.SSLContext | None = None, **config: object) -> Running:
    limits = Limits(max_message_size=100_000, allow_plaintext_auth_on_loopback=bool(config.pop("dev", False)))
    session = SessionConfig(hostname=HOST, listener=listener, limits=limits)  # type: ignore[arg-type]
    hooks = {k: config.pop(k) for k in ("peer_resolver", "admit", "on_notice") if k in config}
    server = SmtpServer(lambda peer: memory.backend(peer), ServerConfig(session=session, **config),  # type: ignore[arg-type]
                        starttls_context=starttls, **hooks)  # type: ignore[arg-type]
    port = await server.start("127.0.0.1", 0, ssl_context=implicit)
    return Running(server, port, memory)


@pytest.fixture
async def plain() -> AsyncIterator[Running]:
    running = await _start(Memory(), listener="mx")
    yield running
    await running.server.close()


async def _reply(reader: asyncio.StreamReader) -> bytes:
    line = await asyncio.wait_for(reader.readline(), 5)
    while line[3:4] == b"-":
        line = await asyncio.wait_for(reader.readline(), 5)
    return line


# --- real clients ---------------------------------------------------------------------


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit_tls"])
async def test_smtplib_submits_through_tls_and_auth(contexts: tuple[ssl.SSLContext, ssl.SSLContext],
                                                   implicit: bool) -> None:
    server_ctx, client_ctx = contexts
    memory = Memory()
    running = await _start(memory, starttls=None if implicit else server_ctx, implicit=server_ctx if implicit else None)

    def client() -> dict[str, tuple[int, bytes]]:
        smtp: smtplib.SMTP
        if implicit:
            smtp = smtplib.SMTP_SSL("localhost", running.port, context=client_ctx, timeout=10)
        else:
            smtp = smtplib.SMTP("localhost", running.port, timeout=10)
            smtp.ehlo("client.test")
            assert not smtp.has_extn("auth")  # SPEC §6: no AUTH before TLS
            smtp.starttls(context=client_ctx)
        smtp.ehlo("client.test")
        assert smtp.has_extn("auth") and not smtp.has_extn("starttls")
        smtp.login("dr@clinic.test", "secret")
        refused = smtp.sendmail("dr@clinic.test", ["a@patients.test"], b"Subject: hi\r\n\r\nbody\r\n",
                                mail_options=["RET=HDRS"], rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
        smtp.quit()
        return refused

    try:
        assert await asyncio.to_thread(client) == {}
    finally:
        await running.server.close()
    [delivered] = memory.deliveries
    assert delivered.message == b"Subject: hi\r\n\r\nbody\r\n"
    assert delivered.facts.account == "dr@clinic.test" and delivered.facts.tls_info is not None
    assert delivered.facts.tls_info.version in ("TLSv1.2", "TLSv1.3")


async def test_aiosmtplib_client(contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    import aiosmtplib

    server_ctx, client_ctx = contexts
    memory = Memory()
    running = await _start(memory, starttls=server_ctx)
    try:
        errors, reply = await aiosmtplib.send(
            b"Subject: x\r\n\r\ny\r\n", sender="dr@clinic.test", recipients=["a@patients.test", "b@patients.test"],
            hostname="localhost", port=running.port, start_tls=True, tls_context=client_ctx,
            username="dr@clinic.test", password="secret", timeout=10)
    finally:
        await running.server.close()
    assert errors == {} and reply.startswith("2.0.0 message accepted for delivery (id M1)")
    assert [r.address for r in memory.deliveries[0].envelope.recipients] == ["a@patients.test", "b@patients.test"]


# --- STARTTLS injection at the transport (RFC 3207 §4.2, CVE-2011-0411) ------------------


async def test_starttls_injection_in_the_same_segment_is_refused(contexts: tuple[ssl.SSLContext, ssl.SSLContext]
                                                                 ) -> None:
    running = await _start(Memory(), starttls=contexts[0])
    try:
        reader, writer = await running.connect()
        writer.write(b"EHLO a\r\nSTARTTLS\r\nMAIL FROM:<x@clinic.test>\r\nRSET\r\n")
        assert (await _reply(reader)).startswith(b"250 ")
        assert await _reply(reader) == _line(replies.STARTTLS_PIPELINED)
        writer.write(b"NOOP\r\n")
        assert await _reply(reader) == _line(replies.OK)  # MAIL and RSET were never answered
        writer.close()
    finally:
        await running.server.close()


async def test_plaintext_after_starttls_never_reaches_the_tls_session(
        contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """Bytes sent after the 220 but before the handshake: dropped (here they break the handshake)."""
    server_ctx, client_ctx = contexts
    memory = Memory()
    running = await _start(memory, starttls=server_ctx)
    try:
        reader, writer = await running.connect()
        writer.write(b"EHLO a\r\n")
        await _reply(reader)
        writer.write(b"STARTTLS\r\n")
        assert await _reply(reader) == _line(replies.STARTTLS_READY)
        writer.write(b"MAIL FROM:<x@clinic.test>\r\n")  # injected after the 220, in plaintext
        await writer.drain()
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(writer.start_tls(client_ctx, server_hostname="localhost"), 5)
        writer.close()
    finally:
        await running.server.close()
    assert memory.resets >= 0 and not memory.deliveries


# --- pipelining, deadlines ------------------------------------------------------------


async def test_pipelined_transaction_in_one_segment(plain: Running) -> None:
    reader, writer = await plain.connect()
    writer.write(b"EHLO a\r\nMAIL FROM:<s@peer.test>\r\nRCPT TO:<r@patients.test>\r\nDATA\r\n")
    assert (await _reply(reader)).startswith(b"250 ")
    assert await _reply(reader) == _line(replies.SENDER_OK)
    assert await _reply(reader) == _line(replies.RECIPIENT_OK)
    assert await _reply(reader) == _line(replies.START_DATA)
    writer.write(b"Subject: p\r\n\r\nx\r\n.\r\nQUIT\r\n")
    assert await _reply(reader) == b"250 2.0.0 message accepted for delivery (id M1)\r\n"
    assert await _reply(reader) == _line(replies.CLOSING)
    assert await asyncio.wait_for(reader.read(), 5) == b""


def test_deadline_arithmetic() -> None:
    d = Deadline(10.0, 500.0, now=100.0)
    assert d.at == 110.0 and not d.expired(109.9) and d.expired(110.0)
    d.data(1000, now=101.0)  # 2 s more
    assert d.at == 111.0
    d.data(1_000_000, now=102.0)  # never more than the timeout from now
    assert d.at == 112.0
    d.command(now=105.0)
    assert d.at == 115.0


async def test_idle_timeout_closes_with_421() -> None:
    running = await _start(Memory(), listener="mx", timeout=0.4)
    try:
        reader, writer = await running.connect()
        start = time.monotonic()
        for _ in range(3):  # activity keeps it open beyond the timeout
            await asyncio.sleep(0.2)
            writer.write(b"NOOP\r\n")
            assert await _reply(reader) == _line(replies.OK)
        quiet = time.monotonic()
        assert await _reply(reader) == _line(replies.TIMEOUT)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert time.monotonic() - quiet >= 0.35 and quiet - start >= 0.55
    finally:
        await running.server.close()


async def _trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes,
                  every: float) -> tuple[bytes, float]:
    """Send ``data`` a piece every ``every`` seconds until the server says something."""
    start = time.monotonic()
    for i in range(0, len(data), 4):
        try:
            writer.write(data[i : i + 4])
            await writer.drain()
        except ConnectionError:
            break
        try:
            return await asyncio.wait_for(reader.readline(), every), time.monotonic() - start
        except TimeoutError:
            continue
    return await asyncio.wait_for(reader.readline(), 5), time.monotonic() - start


async def test_slow_command_line_and_slow_data_are_cut() -> None:
    notices: list[tuple[str, str]] = []
    running = await _start(Memory(), listener="mx", timeout=0.5, min_data_rate=1000.0,
                           on_notice=lambda kind, detail: notices.append((kind, detail)))
    try:
        reader, writer = await running.connect()
        got, elapsed = await _trickle(reader, writer, b"EHLO " + b"a" * 200, every=0.1)  # never a line in time
        assert got == _line(replies.TIMEOUT) and elapsed < 1.0
        reader, writer = await running.connect()
        writer.write(b"EHLO a\r\nMAIL FROM:<s@peer.test>\r\nRCPT TO:<r@patients.test>\r\nDATA\r\n")
        for _ in range(4):
            await _reply(reader)
        got, elapsed = await _trickle(reader, writer, b"x" * 400, every=0.1)  # 40 bytes/s, far below 1000
        assert got == _line(replies.TIMEOUT) and elapsed < 1.2
    finally:
        await running.server.close()
    assert notices.count(("timeout", "")) == 2 and notices.count(("connection", "")) == 2


async def test_data_at_a_fair_rate_is_not_cut() -> None:
    running = await _start(Memory(), listener="mx", timeout=0.5, min_data_rate=1000.0)
    try:
        reader, writer = await running.connect()
        writer.write(b"EHLO a\r\nMAIL FROM:<s@peer.test>\r\nRCPT TO:<r@patients.test>\r\nDATA\r\n")
        for _ in range(4):
            await _reply(reader)
        for _ in range(10):  # 1 s in all, twice the timeout, at 4000 bytes/s
            writer.write(b"y" * 398 + b"\r\n")
            await asyncio.sleep(0.1)
        writer.write(b".\r\n")
        assert (await _reply(reader)).startswith(b"250 2.0.0")
    finally:
        await running.server.close()


# --- hooks, refusals, shutdown ---------------------------------------------------------


async def test_peer_resolver_and_admission() -> None:
    async def resolve(reader: asyncio.StreamReader, peer: str) -> str:
        line = await reader.readuntil(b"\r\n")
        if not line.startswith(b"PROXY "):
            raise ValueError("no header")
        return line.split()[2].decode()

    seen: list[str] = []

    def admit(peer: str) -> str | None:
        seen.append(peer)
        return "address_full" if peer == "203.0.113.9" else None

    memory = Memory()
    running = await _start(memory, listener="mx", peer_resolver=resolve, admit=admit)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"PROXY TCP4 198.51.100.7 192.0.2.1 5000 25\r\nEHLO a\r\n")
        assert (await reader.readline()).startswith(b"220 ")
        assert (await _reply(reader)).startswith(b"250 ")  # the EHLO sent behind the header was kept
        writer.write(b"MAIL FROM:<s@peer.test>\r\nRCPT TO:<r@patients.test>\r\nDATA\r\nx\r\n.\r\n")
        for _ in range(4):
            await _reply(reader)
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"PROXY TCP4 203.0.113.9 192.0.2.1 5000 25\r\n")
        assert await asyncio.wait_for(reader.read(), 5) == refusal("address_full")
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"EHLO no.header\r\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""  # refused without a word
    finally:
        await running.server.close()
    assert seen == ["198.51.100.7", "203.0.113.9"]
    assert memory.deliveries[0].facts.peer_ip == "198.51.100.7"


async def test_proxy_headers_read_by_aiosmtpd_on_the_hosts_own_accept_loop() -> None:
    """The gateway's one use of aiosmtpd after the switch: ``aiosmtpd.proxy_protocol.get_proxy``
    reads PROXY v1/v2 from the shell's prelude reader (public API of both). The host accepts
    itself (``gateway.net.accept``) and hands the socket over with ``loop.connect_accepted_socket``;
    the per-connection ``admit`` and ``on_close`` hooks carry its ticket."""
    import ipaddress
    import socket
    import struct

    from aiosmtpd.proxy_protocol import get_proxy

    async def resolve(reader: asyncio.StreamReader, peer: str) -> str:
        data = await asyncio.wait_for(get_proxy(reader), 5)
        if not data.valid:
            raise ValueError("invalid PROXY header")
        return peer if data.src_addr is None else str(data.src_addr)

    memory = Memory()
    admitted: list[str] = []
    closed: list[str] = []
    session = SessionConfig(hostname=HOST)
    server = SmtpServer(lambda peer: memory.backend(peer), ServerConfig(session=session), peer_resolver=resolve)
    v2 = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", 12)
          + ipaddress.IPv4Address("198.51.100.8").packed + ipaddress.IPv4Address("192.0.2.1").packed
          + struct.pack("!HH", 5000, 25))
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]
        for header, client in [(b"PROXY TCP4 198.51.100.7 192.0.2.1 5000 25\r\n", "198.51.100.7"),
                               (v2, "198.51.100.8")]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            conn, _ = listening.accept()

            def admit(ip: str) -> None:
                admitted.append(ip)

            def protocol(name: str = client) -> SmtpConnection:
                return server.connection(on_close=lambda: closed.append(name), admit=admit)

            await loop.connect_accepted_socket(protocol, conn)
            writer.write(header + b"HELO a\r\nMAIL FROM:<s@peer.test>\r\nRCPT TO:<r@patients.test>\r\nDATA\r\n")
            assert (await reader.readline()).startswith(b"220 ")
            for _ in range(4):
                await _reply(reader)
            writer.write(b"x\r\n.\r\nQUIT\r\n")
            assert (await _reply(reader)).startswith(b"250 2.0.0")
            assert await _reply(reader) == _line(replies.CLOSING)
            assert await asyncio.wait_for(reader.read(), 5) == b""
            assert memory.deliveries[-1].facts.peer_ip == client
    await server.close()
    assert admitted == ["198.51.100.7", "198.51.100.8"] and sorted(closed) == sorted(admitted)


def test_refusal_lines_come_from_the_catalogue() -> None:
    assert refusal("address_full") == _line(replies.TOO_MANY_CONNECTIONS)
    assert refusal("listener_full") == _line(replies.SERVICE_BUSY)


async def test_shutdown_answers_421_to_idle_sessions(plain: Running) -> None:
    reader, writer = await plain.connect()
    writer.write(b"EHLO a\r\n")
    await _reply(reader)
    await plain.server.close()
    assert await _reply(reader) == _line(replies.SHUTTING_DOWN)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert not plain.server.connections


async def test_client_that_does_not_read_is_cut_at_the_deadline() -> None:
    running = await _start(Memory(), listener="mx", timeout=0.3)
    try:
        _reader, writer = await running.connect()
        transport = writer.transport
        transport.pause_reading()  # type: ignore[attr-defined]
        start = time.monotonic()
        while time.monotonic() - start < 3 and running.server.connections:
            writer.write(b"HELP\r\n" * 2000)  # replies pile up on a client that never reads
            await asyncio.sleep(0.05)
        assert not running.server.connections
        assert time.monotonic() - start < 2.5
        writer.close()
    finally:
        await running.server.close()
