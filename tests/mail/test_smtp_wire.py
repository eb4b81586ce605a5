"""The gateway's SMTP listeners speak :mod:`smtp.session` and nothing else.

- Over sockets, against the real MX and submission listeners of a live gateway: a short
  sequence of commands through every phase (connected, greeted, authenticated, in a
  transaction, with recipients, after DATA); every reply line is the catalogue's entry
  (:mod:`smtp.replies`, or ``routing.reasons`` for the routing verdicts), code, enhanced
  code and text. Ending input mid-line closes the session without an error in the log.
- Without sockets, the gateway's backend (:mod:`gateway.delivery.smtp_backend`) under the
  core session: a store that went away answers ``451 4.3.0`` without internals (DESIGN rule 5),
  and the session goes on.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from collections.abc import Iterator
from typing import Any, cast

import pytest

from gateway.app.listeners import start_mx, start_submission
from gateway.delivery.directory import Directory
from gateway.delivery.pipeline import Pipeline
from gateway.delivery.smtp_backend import backend_factory
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.ports import listen_env
from gateway.testing.world import PASSWORD, World, populate
from routing import reasons
from smtp import replies
from smtp.replies import ReplyLike, format_reply
from smtp.session import Session, SessionConfig
from smtp.testing import parse_reply

HOST = "mx.gateway.test"


@pytest.fixture(scope="module")
def world_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway]]:
    home = make_home(tmp_path_factory.mktemp("gw") / "home", hostname=HOST)
    world = populate(home)
    env = {**listen_env(), "GATEWAY__TLS__ALLOW_AUTH_WITHOUT_TLS": "true"}
    with live_gateway(home, env=env, factories=[start_mx, start_submission]) as live:
        yield world, live


class Wire:
    """A raw SMTP connection: one line out, the reply's lines back."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.file = self.sock.makefile("rb")

    def reply(self) -> list[str]:
        lines = []
        while True:
            raw = self.file.readline()
            assert raw.endswith(b"\r\n"), raw
            lines.append(raw[:-2].decode("ascii"))
            if raw[3:4] != b"-":
                return lines

    def send(self, line: str) -> list[str]:
        self.sock.sendall(line.encode("ascii") + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def _expect(wire: Wire, steps: list[tuple[str, ReplyLike]]) -> None:
    """Each command's reply is its catalogue entry: code, enhanced code, text."""
    for command, entry in steps:
        [line] = wire.send(command)
        code, enhanced, _ = parse_reply(line)
        assert (code, enhanced) == (entry.code, entry.enhanced), f"{command!r}: {line!r}"
        assert line == format_reply(entry), f"{command!r}: {line!r}"


def test_every_reply_on_the_submission_wire_is_the_catalogues(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    wire = Wire(live.port("submission"))
    try:
        assert wire.reply() == [replies.greeting(HOST).decode().rstrip("\r\n")]
        _expect(wire, [  # connected: nothing but the session verbs before EHLO
            ("NOOP", replies.OK), ("MAIL FROM:<a@b.test>", replies.NEED_HELO),
            ("RCPT TO:<a@b.test>", replies.NEED_HELO), ("DATA", replies.NEED_HELO), ("AUTH PLAIN", replies.NEED_HELO),
            ("FROB", replies.COMMAND_UNRECOGNIZED),
            ("HELP", replies.HELP), ("VRFY someone", replies.CANNOT_VERIFY), ("EXPN list", replies.NOT_IMPLEMENTED),
            ("RSET", replies.OK),
        ])
        ehlo = wire.send("EHLO client.hopital.test")
        assert ehlo[0] == f"250-{HOST} {replies.EHLO_OK.text}" and "250-ENHANCEDSTATUSCODES" in ehlo
        _expect(wire, [  # greeted, then authenticated
            ("RCPT TO:<a@b.test>", replies.NEED_MAIL), ("DATA", replies.NEED_MAIL),
            (f"MAIL FROM:<{world.pro}>", replies.AUTH_REQUIRED), ("AUTH CRAM-MD5", replies.AUTH_MECHANISM_UNSUPPORTED),
            ("STARTTLS now", replies.SYNTAX_ERROR), (f"AUTH PLAIN {_plain(world.pro, 'wrong')}", replies.AUTH_FAILED),
            (f"AUTH PLAIN {_plain(world.pro, PASSWORD)}", replies.AUTH_SUCCESS), ("AUTH PLAIN", replies.AUTH_ALREADY),
            ("MAIL FROM:<>", replies.NULL_SENDER_NOT_ALLOWED), ("MAIL FROM:<no-at-sign>", replies.MALFORMED_ADDRESS),
            ("MAIL FROM:<x@y.test> SIZE=abc", replies.SIZE_INVALID), (f"MAIL FROM:<{world.pro}>", replies.SENDER_OK),
        ])
        _expect(wire, [  # in a transaction, then with a recipient
            ("MAIL FROM:<a@b.test>", replies.NESTED_MAIL), ("DATA", replies.NEED_RCPT),
            ("AUTH PLAIN", replies.TRANSACTION_IN_PROGRESS), ("STARTTLS", replies.TRANSACTION_IN_PROGRESS),
            ("RCPT TO:<>", replies.RCPT_SYNTAX), (f"RCPT TO:<{world.patient()}>", reasons.RCPT_OK),
            ("DATA", replies.START_DATA),
        ])
        wire.sock.sendall(f"From: {world.pro}\r\nTo: {world.patient()}\r\nSubject: t\r\n\r\nbody\r\n.\r\n".encode())
        [stored] = wire.reply()
        assert parse_reply(stored)[:2] == (replies.STORED.code, replies.STORED.enhanced)
        assert stored.startswith(format_reply(replies.STORED) + " (id "), stored
        # after DATA: the transaction is over, the session is not
        _expect(wire, [("RCPT TO:<a@b.test>", replies.NEED_MAIL), ("QUIT", replies.CLOSING)])
        assert wire.file.read() == b""
    finally:
        wire.close()


def test_every_reply_on_the_mx_wire_is_the_catalogues(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    wire = Wire(live.port("mx"))
    try:
        assert wire.reply() == [replies.greeting(HOST).decode().rstrip("\r\n")]
        _expect(wire, [
            ("HELO mx.hopital.example", replies.EHLO_OK.with_text(f"{HOST} {replies.EHLO_OK.text}")),
            ("AUTH PLAIN", replies.AUTH_NOT_AVAILABLE), ("MAIL FROM:<x@y.test> BODY=BINARYMIME", replies.BODY_INVALID),
            ("RSET x", replies.SYNTAX_ERROR),
        ])
        assert "STARTTLS" in wire.send("EHLO mx.hopital.example")[-1]
        _expect(wire, [
            ("AUTH PLAIN", replies.AUTH_NOT_AVAILABLE), ("DATA", replies.NEED_MAIL),
            # the trust list wants TLS from this operator (routing's verdict)
            (f"MAIL FROM:<dr@{world.peer.domain}>", reasons.MAIL_TLS_REQUIRED),
            ("MAIL FROM:<x@y.test> SIZE=999999999999", replies.MESSAGE_TOO_BIG), ("STARTTLS", replies.STARTTLS_READY),
        ])
    finally:
        wire.close()


def test_end_of_input_mid_line_closes_quietly(world_live: tuple[World, LiveGateway],
                                              caplog: pytest.LogCaptureFixture) -> None:
    _, live = world_live
    wire = Wire(live.port("mx"))
    try:
        wire.reply()
        with caplog.at_level(logging.INFO):
            wire.sock.sendall(b"NOOP")  # no line end, then the client half-closes
            wire.sock.shutdown(socket.SHUT_WR)
            assert wire.file.read() == b""
    finally:
        wire.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith(("smtp", "gateway"))]


SECRET = "secret-internal-detail"


class _GoneDirectory:
    """A directory whose store went away."""

    db: Any = None

    def cached(self) -> None:
        raise RuntimeError(f"database is locked ({SECRET})")

    def snapshot(self) -> None:
        raise RuntimeError(SECRET)


def test_a_store_that_went_away_answers_451_without_internals(caplog: pytest.LogCaptureFixture) -> None:
    backend = backend_factory("mx", cast(Directory, _GoneDirectory()), cast(Pipeline, None), None, None)
    session = Session(backend("192.0.2.7"), SessionConfig(hostname=HOST, listener="mx"), peer="192.0.2.7")

    async def talk() -> bytes:
        out = [(await session.receive_data(line)).data for line in
               (b"EHLO client.hopital.test\r\n", b"MAIL FROM:<dr@hopital.test>\r\n", b"NOOP\r\n")]
        return b"".join(out)

    with caplog.at_level(logging.ERROR, logger="smtp.session"):
        wire = asyncio.run(talk())
    lines = wire.decode().split("\r\n")
    assert lines[-3:] == [format_reply(replies.TEMPORARY_FAILURE), format_reply(replies.OK), ""]
    assert SECRET.encode() not in wire and b"RuntimeError" not in wire
    [failed] = [r for r in caplog.records if r.getMessage() == "smtp command failed"]
    assert failed.exc_info is not None and failed.exc_info[0] is RuntimeError
