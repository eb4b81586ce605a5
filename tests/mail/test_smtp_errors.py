"""An SMTP command that fails unexpectedly (store unreachable, a bug) answers a temporary
failure and keeps the session usable; the exception's text never reaches the client
(DESIGN rule 5, RFC 5321 §4.2.3).

In process: the real :class:`GatewaySMTP` shell and :class:`SmtpFlow` on loopback, with a
directory whose lookups raise, as a store that went away would.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest

from gateway.auth import Authenticator
from gateway.mail.directory import Directory
from gateway.mail.flow import SmtpFlow
from gateway.mail.pipeline import Pipeline
from gateway.mail.smtpd import GatewaySMTP
from smtp.policy import Limits
from smtp.throttle import ConnectionLimiter

SECRET = "secret-internal-detail"


class _BrokenDirectory:
    """Stands in for a directory whose store is unreachable."""

    db: Any = None

    def cached(self) -> None:
        raise RuntimeError(f"database is locked ({SECRET})")

    def snapshot(self) -> None:
        raise RuntimeError(SECRET)


async def _session(lines: list[bytes]) -> list[bytes]:
    limits = Limits(max_connections_per_ip=5)
    flow = SmtpFlow(cast(Directory, _BrokenDirectory()), cast(Pipeline, None), limits)

    def factory() -> GatewaySMTP:
        return GatewaySMTP(flow=flow, listener="mx", hostname="mx.gateway.test", limits=limits,
                           tls_context=None, implicit_tls=False, authenticator=cast(Authenticator, None),
                           connections=ConnectionLimiter(5), timeout=10)

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    replies: list[bytes] = []
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        replies.append(await asyncio.wait_for(reader.readline(), 5))
        for line in lines:
            writer.write(line)
            await writer.drain()
            reply = await asyncio.wait_for(reader.readline(), 5)
            while reply[3:4] == b"-":
                reply = await asyncio.wait_for(reader.readline(), 5)
            replies.append(reply)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    return replies


def test_failing_lookup_answers_451_without_internals(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="gateway.smtp"):
        replies = asyncio.run(_session([b"EHLO client.hopital.test\r\n", b"MAIL FROM:<dr@hopital.test>\r\n",
                                        b"RSET\r\n", b"NOOP\r\n", b"QUIT\r\n"]))
    banner, ehlo, mail, rset, noop, quit_ = replies
    assert banner.startswith(b"220 ") and ehlo.startswith(b"250 ")
    assert mail == b"451 4.3.0 temporary failure, please retry\r\n"
    assert not any(SECRET.encode() in r or b"RuntimeError" in r for r in replies)
    assert rset.startswith(b"250") and noop.startswith(b"250") and quit_.startswith(b"221")
    failed = [r for r in caplog.records if r.getMessage() == "smtp command failed"]
    assert len(failed) == 1 and failed[0].exc_info is not None and failed[0].exc_info[0] is RuntimeError
