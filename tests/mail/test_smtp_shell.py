"""The SMTP shell's command loop (:class:`GatewaySMTP`), in process, as transcripts.

The real shell and :class:`SmtpFlow` on loopback; the directory's lookups raise, as a store
that went away would, so these transcripts stay on what the shell itself answers:

- a command that fails unexpectedly answers a temporary failure, keeps the session usable,
  and never shows the exception's text (DESIGN rule 5, RFC 5321 §4.2.3);
- unrecognized, empty, over-long and non-ASCII command lines get the catalogue's replies;
  too many unrecognized commands close the session (421);
- line limits per command (RFC 5321 §4.5.3.1.4, RFC 1870 §3, RFC 3461 §4);
- a command fed one byte at a time;
- the idle timeout: moved by every command, then 421 and the connection closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest

from gateway.accounts.auth import Authenticator
from gateway.delivery.directory import Directory
from gateway.delivery.pipeline import Pipeline
from gateway.delivery.smtp_policy import SmtpFlow
from gateway.delivery.smtpd import GatewaySMTP
from smtp import replies
from smtp.policy import Limits

SECRET = "secret-internal-detail"


class _BrokenDirectory:
    """Stands in for a directory whose store is unreachable."""

    db: Any = None

    def cached(self) -> None:
        raise RuntimeError(f"database is locked ({SECRET})")

    def snapshot(self) -> None:
        raise RuntimeError(SECRET)


def line(reply: replies.Reply) -> bytes:
    return reply.line().encode() + b"\r\n"


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def reply(self) -> bytes:
        """One reply; a multiline reply comes back as its last line."""
        got = await asyncio.wait_for(self.reader.readline(), 5)
        while got[3:4] == b"-":
            got = await asyncio.wait_for(self.reader.readline(), 5)
        return got

    async def send(self, data: bytes) -> bytes:
        self.writer.write(data)
        await self.writer.drain()
        return await self.reply()


async def _with_client(body: Any, *, timeout: float = 10) -> None:
    limits = Limits()
    flow = SmtpFlow(cast(Directory, _BrokenDirectory()), cast(Pipeline, None), limits)

    def factory() -> GatewaySMTP:
        return GatewaySMTP(flow=flow, listener="mx", hostname="mx.gateway.test", limits=limits,
                           tls_context=None, implicit_tls=False, authenticator=cast(Authenticator, None),
                           timeout=timeout)

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        client = Client(reader, writer)
        assert (await client.reply()).startswith(b"220 mx.gateway.test ")
        try:
            await body(client)
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


def run(body: Any, **kw: Any) -> None:
    asyncio.run(_with_client(body, **kw))


def test_failing_lookup_answers_451_without_internals(caplog: pytest.LogCaptureFixture) -> None:
    async def body(c: Client) -> None:
        assert (await c.send(b"EHLO client.hopital.test\r\n")).startswith(b"250 ")
        mail = await c.send(b"MAIL FROM:<dr@hopital.test>\r\n")
        assert mail == line(replies.TEMPORARY_FAILURE)
        assert SECRET.encode() not in mail and b"RuntimeError" not in mail
        assert (await c.send(b"RSET\r\n")).startswith(b"250")
        assert (await c.send(b"NOOP\r\n")).startswith(b"250")
        assert (await c.send(b"QUIT\r\n")).startswith(b"221")

    with caplog.at_level(logging.ERROR, logger="gateway.smtp"):
        run(body)
    failed = [r for r in caplog.records if r.getMessage() == "smtp command failed"]
    assert len(failed) == 1 and failed[0].exc_info is not None and failed[0].exc_info[0] is RuntimeError


def test_bad_command_lines_get_catalogue_replies() -> None:
    async def body(c: Client) -> None:
        assert await c.send(b"FROB x\r\n") == line(replies.COMMAND_UNRECOGNIZED)
        assert await c.send(b"\r\n") == line(replies.COMMAND_UNRECOGNIZED)
        assert await c.send("NOOP é\r\n".encode()) == line(replies.NON_ASCII_COMMAND)
        assert await c.send(b"NOOP " + b"x" * 600 + b"\r\n") == line(replies.LINE_TOO_LONG)
        # longer than the reader's own limit: the rest of the line is read and dropped
        assert await c.send(b"NOOP " + b"x" * 5000 + b"\r\n") == line(replies.LINE_TOO_LONG)
        assert (await c.send(b"NOOP\r\n")).startswith(b"250")
        assert (await c.send(b"noop\r\n")).startswith(b"250")  # RFC 5321 §2.4: verbs in any case

    run(body)


def test_line_limits_per_command() -> None:
    async def body(c: Client) -> None:
        assert (await c.send(b"EHLO client.hopital.test\r\n")).startswith(b"250 ")
        # RCPT may carry DSN parameters beyond 512 octets (RFC 3461 §4): it reaches the flow
        rcpt = b"RCPT TO:<a@b.test> ORCPT=rfc822;" + b"x" * (900 - 32) + b"\r\n"
        assert await c.send(rcpt) == line(replies.BAD_SEQUENCE.with_text("need MAIL command first"))
        assert await c.send(b"VRFY " + b"x" * 600 + b"\r\n") == line(replies.LINE_TOO_LONG)

    run(body)


def test_too_many_unrecognized_commands_close_the_session() -> None:
    async def body(c: Client) -> None:
        for _ in range(4):
            assert await c.send(b"XYZZY\r\n") == line(replies.COMMAND_UNRECOGNIZED)
        assert await c.send(b"XYZZY\r\n") == line(replies.TOO_MANY_UNRECOGNIZED)
        assert await asyncio.wait_for(c.reader.read(), 5) == b""

    run(body)


def test_command_fed_one_byte_at_a_time() -> None:
    async def body(c: Client) -> None:
        for byte in b"EHLO slow.hopital.test\r":
            c.writer.write(bytes([byte]))
            await c.writer.drain()
            await asyncio.sleep(0)
        assert (await c.send(b"\n")).startswith(b"250 ")

    run(body)


def test_idle_timeout_moves_with_each_command_then_closes_with_421() -> None:
    async def body(c: Client) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(4):  # 0.8 s of activity, beyond the 0.4 s timeout
            await asyncio.sleep(0.2)
            assert (await c.send(b"NOOP\r\n")).startswith(b"250")
        quiet = loop.time()
        assert await c.reply() == line(replies.TIMEOUT)
        assert await asyncio.wait_for(c.reader.read(), 5) == b""
        assert loop.time() - quiet >= 0.35 and quiet - start >= 0.75

    run(body, timeout=0.4)


def test_end_of_input_mid_line_closes_quietly(caplog: pytest.LogCaptureFixture) -> None:
    async def body(c: Client) -> None:
        c.writer.write(b"NOOP")  # no line end, then the client half-closes
        await c.writer.drain()
        c.writer.write_eof()
        assert await asyncio.wait_for(c.reader.read(), 5) == b""

    with caplog.at_level(logging.ERROR, logger="gateway.smtp"):
        run(body)
    assert not [r for r in caplog.records if r.getMessage() == "smtp command failed"]
