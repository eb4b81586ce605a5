"""One SMTP connection's protocol session, without sockets or clocks (DESIGN rule 2).

The shell (:mod:`smtp.server`, or :mod:`smtp.testing`) writes :meth:`Session.greeting`,
then passes every received chunk to ``await`` :meth:`Session.receive_data` and writes
what comes back: an :class:`Output` with the replies to write in one go (RFC 2920 §3.1:
pipelined commands get their replies together, up to :data:`FLUSH_AT` bytes, then
``more`` asks the shell to write and call again with ``b""``), how many command lines and
message bytes were read (the shell's deadlines), and events: :class:`StartTls` (write, then the
handshake, then :meth:`Session.tls_started`), :class:`Close` (write, then close),
:class:`~smtp.output.MessageRefused` (for the host's metrics). Time comes in from the shell as
:meth:`Session.timeout`; :meth:`Session.shutdown` when the server stops; :meth:`Session.close`
when the connection ended.

Commands are read by :mod:`smtp.reader`, checked against THE table (:mod:`smtp.state`),
then run by their handler (:mod:`smtp.handlers`) over the :class:`~smtp.backend.Backend`.
After ``354`` the bytes go to :class:`~smtp.dataparse.DataReader`; after ``334`` lines go
to the SASL exchange (:mod:`smtp.sasl`). Failures of the host are caught here, in one
place: logged, answered with a temporary failure, the session goes on.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from smtp import handlers, replies
from smtp.backend import Backend, Envelope, SessionFacts, TlsFacts
from smtp.dataparse import BareLineEndings, DataReader, NeedMore
from smtp.output import Close, Event, MessageRefused, Output, StartTls
from smtp.policy import DEFAULT_LIMITS, Limits, Listener, conditions
from smtp.reader import LONGEST_COMMAND, SASL_LINE, LineReader, TooLong, parse
from smtp.replies import Reply, ReplyLike, format_reply
from smtp.sasl import Exchange
from smtp.state import Conditions, Phase, Verb, next_phase

log = logging.getLogger("smtp.session")

MAX_UNRECOGNIZED = 5  # unknown verbs before 421 (aiosmtpd's and Postfix's habit)
MAX_AUTH_FAILURES = 3  # failed AUTH exchanges on one connection before 421
# Replies held before the session stops reading pipelined commands and lets the shell write:
# a client that pipelines without reading cannot make one call's output grow with its input.
FLUSH_AT = 64 * 1024


class Mode(enum.Enum):
    COMMAND = "command"
    DATA = "data"  # after 354: message bytes (smtp.dataparse)
    AUTH = "auth"  # after 334: SASL responses (smtp.sasl)
    TLS = "tls"  # after 220 to STARTTLS, until the shell's handshake
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SessionConfig:
    hostname: str = "localhost"
    listener: Listener = "mx"
    limits: Limits = DEFAULT_LIMITS
    starttls: bool = False  # STARTTLS offered: the shell holds a context for it
    mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN")  # smtp.sasl.MECHANISMS offered, in this order
    max_unrecognized: int = MAX_UNRECOGNIZED
    max_auth_failures: int = MAX_AUTH_FAILURES
    # Bare LF in DATA (smtp.dataparse): None is the listener's default, "reject" on the MX (a
    # relay's bare LF is a smuggling attempt) and "normalize" on submission (older clients).
    bare_line_endings: BareLineEndings | None = None

    @property
    def data_line_endings(self) -> BareLineEndings:
        if self.bare_line_endings is not None:
            return self.bare_line_endings
        return "reject" if self.listener == "mx" else "normalize"


class Session:
    def __init__(self, backend: Backend, config: SessionConfig | None = None, *, peer: str = "",
                 tls: TlsFacts | None = None) -> None:
        self.backend = backend
        self.config = config or SessionConfig()
        self._conditions: Conditions | None = None
        self.facts = SessionFacts(peer_ip=peer, listener=self.config.listener, tls=tls is not None,
                                  esmtp=False, tls_info=tls)
        self.phase = Phase.CONNECTED
        self.mode = Mode.COMMAND
        self.envelope: Envelope | None = None
        self.lines = LineReader()
        self.data_reader: DataReader | None = None
        self.sasl: Exchange | None = None
        self.unrecognized = 0
        self.auth_failures = 0
        self._out = bytearray()  # what this call to the session produced so far
        self._commands = self._message_bytes = 0
        self._events: list[Event] = []
        self._more = False

    # --- state, for handlers and tests ------------------------------------------------
    @property
    def facts(self) -> SessionFacts:
        return self._facts

    @facts.setter
    def facts(self, facts: SessionFacts) -> None:
        self._facts = facts
        self._conditions = None

    @property
    def conditions(self) -> Conditions:
        """The table's flags, worked out again only when the facts change."""
        if self._conditions is None:
            self._conditions = conditions(self._facts, self.config.limits, starttls_offered=self.config.starttls,
                                          auth_available=self.backend.authenticator is not None)
        return self._conditions

    @property
    def closed(self) -> bool:
        return self.mode is Mode.CLOSED

    @property
    def in_data(self) -> bool:
        """Reading a message (the shell's deadline then follows the minimum data rate)."""
        return self.mode is Mode.DATA

    def reply(self, reply: ReplyLike) -> None:
        self.write(format_reply(reply).encode("ascii", "replace") + b"\r\n")

    def write(self, data: bytes) -> None:
        self._out += data

    def event(self, event: Event) -> None:
        self._events.append(event)

    def message_refused(self, reply: Reply) -> None:
        self.event(MessageRefused(reply))

    def move(self, verb: Verb) -> None:
        self.phase = next_phase(verb, self.phase)

    def end_transaction(self) -> None:
        """Forget the transaction (RFC 5321 §4.1.1.5); the host's policy too."""
        self.envelope = None
        self.backend.policy.reset()

    def begin_data(self) -> DataReader:
        """After ``354``: the bytes that follow are the message (RFC 5321 §4.1.1.4)."""
        self.mode = Mode.DATA
        self.data_reader = DataReader(self.max_size, bare_line_endings=self.config.data_line_endings)
        return self.data_reader

    def no_room(self, reader: DataReader) -> None:
        """The memory budget has no room for this message: read on, store nothing, ``452 4.3.1``."""
        reader.refuse(replies.INSUFFICIENT_STORAGE)
        if self.backend.bodies is not None:
            self.backend.bodies.release()

    def begin_auth(self, exchange: Exchange) -> None:
        """After ``334``: the next line is a SASL response (RFC 4954 §4)."""
        self.mode, self.sasl = Mode.AUTH, exchange

    def end_auth(self) -> None:
        if self.mode is Mode.AUTH:
            self.mode, self.sasl = Mode.COMMAND, None

    def begin_tls(self) -> None:
        """After ``220`` to STARTTLS: nothing more is read until :meth:`tls_started`."""
        self.mode = Mode.TLS
        self.event(StartTls())

    @property
    def max_size(self) -> int:
        return self.config.limits.max_message_size

    def close_with(self, reply: ReplyLike) -> None:
        """Answer ``reply`` (a 221 or 421) and close (RFC 5321 §3.8)."""
        self.reply(reply)
        self.event(Close())
        self.close()

    # --- driving, for the shell ---------------------------------------------------------
    def greeting(self) -> Output:
        return Output(replies.greeting(self.config.hostname))

    async def receive_data(self, data: bytes) -> Output:
        if self.mode is Mode.DATA:
            await self._message(data)
        elif self.mode in (Mode.COMMAND, Mode.AUTH):
            self.lines.feed(data)
        # Mode.TLS: RFC 3207 §4.2 / CVE-2011-0411: nothing sent before the handshake is read.
        await self._lines()
        return self._flush()

    def timeout(self) -> Output:
        """The shell's deadline ran out (RFC 5321 §4.5.3.2): 421, then close."""
        if not self.closed:
            self.close_with(replies.TIMEOUT)
        return self._flush()

    def shutdown(self) -> Output:
        if not self.closed:
            self.close_with(replies.SHUTTING_DOWN)
        return self._flush()

    def tls_started(self, tls: TlsFacts) -> None:
        """The handshake is done: RFC 3207 §4.2, everything learnt before it is forgotten."""
        self.mode = Mode.COMMAND
        self.move(Verb.STARTTLS)
        self.facts = SessionFacts(peer_ip=self.facts.peer_ip, listener=self.facts.listener, tls=True,
                                  esmtp=False, tls_info=tls)

    def close(self) -> None:
        """The connection ended (or is ending): give back what is held."""
        if self.mode is Mode.CLOSED:
            return
        self.mode = Mode.CLOSED
        self.lines.take_rest()
        self.data_reader = self.sasl = None
        if self.backend.bodies is not None:
            self.backend.bodies.release()
        self.end_transaction()

    # --- internals ---------------------------------------------------------------------
    def _flush(self) -> Output:
        output = Output(bytes(self._out), self._commands, self._message_bytes, tuple(self._events), self._more)
        self._out.clear()
        self._commands = self._message_bytes = 0
        self._events.clear()
        self._more = False
        return output

    async def _lines(self) -> None:
        while self.mode in (Mode.COMMAND, Mode.AUTH):
            if len(self._out) >= FLUSH_AT:
                self._more = True
                return
            sasl = self.mode is Mode.AUTH
            line = self.lines.next_line(SASL_LINE if sasl else LONGEST_COMMAND)
            if line is None:
                return
            try:
                if sasl:
                    self._commands += 1
                    await handlers.auth_line(self, line)
                else:
                    parsed = replies.LINE_TOO_LONG if isinstance(line, TooLong) else parse(line, self.max_size)
                    if not isinstance(parsed, Reply):
                        self._commands += 1
                    await handlers.command(self, parsed)
            except Exception:
                self._failed(replies.AUTH_TEMPORARY_FAILURE if sasl else replies.TEMPORARY_FAILURE)
            if self.in_data:
                rest = self.lines.take_rest()
                if rest:
                    await self._message(rest)

    def _failed(self, failure: Reply) -> None:
        """A command failed (the host, or a bug): the log gets it, the client ``failure`` (DESIGN rule 5)."""
        log.exception("smtp command failed", extra={"listener": self.config.listener})
        self.end_auth()
        self.reply(failure)

    async def _message(self, chunk: bytes) -> None:
        reader = self.data_reader
        assert reader is not None
        self._message_bytes += len(chunk)
        hold = self.backend.bodies
        if hold is not None and reader.storing:
            # Room for what will be stored, before it is (issue 15): without it, nothing more is.
            try:
                room = await hold.ensure(reader.stored + len(chunk))
            except Exception:
                log.exception("smtp memory budget failed", extra={"listener": self.config.listener})
                reader.refuse(replies.TEMPORARY_FAILURE)
                room = True
            if not room:
                self.no_room(reader)
        result = reader.feed(chunk)
        if isinstance(result, NeedMore):
            return
        self.data_reader = None
        self.mode = Mode.COMMAND
        self.lines.feed(reader.trailing)  # commands pipelined after the end of data (RFC 2920)
        try:
            await handlers.message_done(self, result)
        except Exception:
            self._failed(replies.TEMPORARY_FAILURE)


__all__ = ["FLUSH_AT", "Mode", "Session", "SessionConfig"]
