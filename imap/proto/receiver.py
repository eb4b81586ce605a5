"""Incremental command receiver (h11 / Stalwart ``receiver.rs`` style, sans-IO).

The shell feeds bytes with :meth:`CommandReceiver.feed` and calls
:meth:`CommandReceiver.next_event` until it gets :data:`NEED_DATA`::

    receiver.feed(chunk)
    while not isinstance(event := receiver.next_event(), NeedData):
        if isinstance(event, NeedLiteral) and event.synchronizing:
            send(b"+ Ready for literal data\\r\\n")
        elif isinstance(event, Command):
            handle(event)

``next_event`` raises :class:`~imap.proto.errors.ImapError` (with ``.tag`` when known) for syntax
errors and limits; the shell writes ``exc.response()`` and, when ``exc.close_connection``
is set, a ``* BYE`` and closes. Limits are checked on the literal *header*, before any of
its octets are buffered (RFC 7888 §4, RFC 7889 ``TOOBIG``; DESIGN "literal-size DoS
before login").

Continuation lines (AUTHENTICATE responses, RFC 3501 §6.2.2; IDLE's ``DONE``, RFC 2177):
call :meth:`expect_line`; the next event is a :class:`ContinuationLine`, then the receiver
returns to command mode by itself.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from imap.proto import replies
from imap.proto.commands import Command
from imap.proto.errors import BadCommand, CommandFailed, ImapError, ProtocolLimit
from imap.proto.grammar import parse_command, tag_of

DEFAULT_MAX_LINE = 64 * 1024
DEFAULT_MAX_LITERAL_UNAUTH = 8 * 1024
DEFAULT_APPENDLIMIT = 26_214_400  # 25 MiB, advertised as APPENDLIMIT=26214400 (RFC 7889)
LITERAL_MINUS_MAX = 4096  # RFC 7888 §4

# A line that ends with a literal header: "{" number ["+"] "}" (RFC 3501 §9, RFC 7888 §8).
_LITERAL_AT_END = re.compile(rb"\{(\d{1,20})(\+?)\}\Z")


class LiteralMode(enum.Enum):
    """Which non-synchronizing literals the server advertises (RFC 7888)."""

    NONE = "none"  # only {N}; {N+} is a protocol error
    PLUS = "LITERAL+"  # {N+} of any size (up to the normal limits)
    MINUS = "LITERAL-"  # {N+} only up to 4096 octets


@dataclass(frozen=True, slots=True)
class NeedData:
    """Feed more bytes."""


NEED_DATA = NeedData()


@dataclass(frozen=True, slots=True)
class NeedLiteral:
    """A literal header was accepted. For ``synchronizing`` the shell must send a
    continuation request (``+ Ready for literal data``) or call :meth:`reject_literal`;
    for a non-synchronizing literal no action is needed."""

    size: int
    synchronizing: bool
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class ContinuationLine:
    """One line read in line mode, without its CRLF."""

    line: bytes


Event = NeedData | NeedLiteral | ContinuationLine | Command


class _Mode(enum.Enum):
    COMMAND = "command"
    LITERAL = "literal"
    LINE = "line"
    CLOSED = "closed"


class CommandReceiver:
    def __init__(
        self,
        *,
        max_line: int = DEFAULT_MAX_LINE,
        max_literal: int = DEFAULT_MAX_LITERAL_UNAUTH,
        max_command: int | None = None,
        literal_mode: LiteralMode = LiteralMode.PLUS,
    ) -> None:
        self.max_line = max_line
        #: Largest literal accepted: small before login, APPENDLIMIT after (see :meth:`authenticated`).
        self.max_literal = max_literal
        self._max_command = max_command
        self.literal_mode = literal_mode
        self.utf8 = False  # mailbox names in UTF-8, not modified UTF-7 (RFC 6855 §3, RFC 9051 §5.1)
        self._buf = bytearray()
        self._scan = 0  # bytes of _buf already known to hold no LF
        self._command = bytearray()
        self._literal_left = 0
        self._mode = _Mode.COMMAND
        self._discard: ImapError | None = None  # refusing the command being read (discard_literal)

    @property
    def max_command(self) -> int:
        """Bound on one framed command (lines plus literals); default line + literal limits."""
        if self._max_command is not None:
            return self._max_command
        return self.max_line + self.max_literal

    @max_command.setter
    def max_command(self, value: int | None) -> None:
        self._max_command = value

    def authenticated(self, *, max_literal: int = DEFAULT_APPENDLIMIT, max_command: int | None = None) -> None:
        """Raise the limits after a successful LOGIN / AUTHENTICATE."""
        self.max_literal = max_literal
        self._max_command = max_command

    @property
    def buffered(self) -> int:
        """Octets held: unconsumed input plus the command being framed."""
        return len(self._buf) + len(self._command)

    @property
    def closed(self) -> bool:
        return self._mode is _Mode.CLOSED

    def feed(self, data: bytes) -> None:
        if self._mode is not _Mode.CLOSED:
            self._buf += data

    def take_buffered(self) -> bytes:
        """The input not read yet, removed (COMPRESS: it is the start of the compressed stream)."""
        data, self._buf, self._scan = bytes(self._buf), bytearray(), 0
        return data

    def expect_line(self) -> None:
        """Read the next line as a :class:`ContinuationLine` (AUTHENTICATE, IDLE)."""
        if self._mode is _Mode.COMMAND and not self._command:
            self._mode = _Mode.LINE

    def reject_literal(self) -> None:
        """The shell refused a synchronizing literal (tagged NO/BAD sent): drop the command."""
        if self._mode is _Mode.LITERAL:
            self._reset()

    def discard_literal(self, error: ImapError) -> None:
        """The shell refused a non-synchronizing literal, already on its way (e.g. no room in
        memory for it): its octets and the rest of its command are read and dropped, then
        ``next_event`` raises ``error`` with the command's tag, and the session goes on."""
        if self._mode is _Mode.LITERAL:
            self._discard = error.with_tag(tag_of(bytes(self._command[:256])))
            self._command = bytearray()

    def next_event(self) -> Event:
        while True:
            if self._mode is _Mode.CLOSED:
                return NEED_DATA
            if self._mode is _Mode.LITERAL:
                if not self._take_literal():
                    return NEED_DATA
                continue
            line = self._take_line()
            if line is None:
                return NEED_DATA
            if self._mode is _Mode.LINE:
                self._mode = _Mode.COMMAND
                return ContinuationLine(line)
            event = self._command_line(line)
            if event is not None:
                return event

    # --- internals ----------------------------------------------------------------
    def _reset(self) -> None:
        self._command = bytearray()
        self._literal_left = 0
        self._mode = _Mode.COMMAND
        self._discard = None

    def _fail(self, exc: ImapError) -> ImapError:
        """Record the tag, drop the partial command, and stop reading if we cannot resync."""
        exc.with_tag(tag_of(bytes(self._command[:256])))
        self._reset()
        if exc.close_connection:
            self._mode = _Mode.CLOSED
            self._buf = bytearray()
            self._scan = 0
        return exc

    def _take_literal(self) -> bool:
        take = min(self._literal_left, len(self._buf))
        if take:
            if self._discard is None:
                self._command += self._buf[:take]
            del self._buf[:take]
            self._literal_left -= take
        if self._literal_left:
            return False
        self._mode = _Mode.COMMAND
        self._scan = 0
        return True

    def _take_line(self) -> bytes | None:
        """The next line without CRLF (a bare LF is accepted), or None if incomplete."""
        end = self._buf.find(b"\n", self._scan)
        if end < 0:
            self._scan = len(self._buf)
            if len(self._buf) > self.max_line or len(self._buf) + len(self._command) > self.max_command:
                # The rest may be literal data we never framed: we cannot resync (close).
                self._command += self._buf[:256]
                raise self._fail(ProtocolLimit(replies.LINE_TOO_LONG, close_connection=True))
            return None
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        self._scan = 0
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.max_line:
            self._command += line[:256]
            raise self._fail(ProtocolLimit(replies.LINE_TOO_LONG, close_connection=True))
        return line

    def _command_line(self, line: bytes) -> Event | None:
        if self._discard is not None:
            self._discarding(line)
            return None
        if not line and not self._command:
            return None  # tolerate empty lines between commands
        self._command += line
        if len(self._command) > self.max_command:
            raise self._fail(ProtocolLimit(replies.COMMAND_TOO_LONG, close_connection=True))
        match = _LITERAL_AT_END.search(line)
        if match is None:
            data = bytes(self._command)
            self._reset()
            return parse_command(data, utf8=self.utf8)  # raises ImapError with the tag
        size_text, plus = match.groups()
        size = int(size_text)
        synchronizing = not plus
        self._check_literal(size, synchronizing)
        self._command += b"\r\n"
        self._literal_left = size
        self._mode = _Mode.LITERAL if size else _Mode.COMMAND
        return NeedLiteral(size, synchronizing, tag_of(bytes(self._command[:256])))

    def _discarding(self, line: bytes) -> None:
        """The rest of a refused command: further non-synchronizing literals are dropped too;
        at its end (or at a synchronizing literal, which the client waits to be invited to
        send) the refusal is raised."""
        match = _LITERAL_AT_END.search(line)
        if match is not None and match.group(2):
            self._literal_left = int(match.group(1))
            self._mode = _Mode.LITERAL if self._literal_left else _Mode.COMMAND
            return None
        error, self._discard = self._discard, None
        assert error is not None
        self._reset()
        raise error

    def _check_literal(self, size: int, synchronizing: bool) -> None:
        """Limits on a literal header, before any literal octet is read (RFC 7888 §4)."""
        # A non-synchronizing literal is on its way: after refusing it we cannot find the
        # next command boundary, so the connection must be closed.
        close = not synchronizing
        if not synchronizing and self.literal_mode is LiteralMode.NONE:
            raise self._fail(BadCommand(replies.NON_SYNC_LITERAL_REFUSED, close_connection=True))
        if not synchronizing and self.literal_mode is LiteralMode.MINUS and size > LITERAL_MINUS_MAX:
            raise self._fail(ProtocolLimit(replies.LITERAL_TOO_LARGE, close_connection=True))
        if size > self.max_literal or len(self._command) + size > self.max_command:
            # RFC 7889 (APPENDLIMIT): APPEND over the limit is a NO [TOOBIG].
            is_append = b" APPEND " in bytes(self._command[:64]).upper()
            exc: ImapError = ProtocolLimit(replies.LITERAL_TOO_LARGE, close_connection=close)
            if is_append and synchronizing:
                exc = CommandFailed(replies.MESSAGE_TOO_LARGE)
            raise self._fail(exc)
