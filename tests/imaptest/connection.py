"""One client connection of a scripted test, with the protocol checks imaptest's client makes.

imaptest's client (``imap-client.c``, ``mailbox-state.c``) tracks each connection's view of
the selected mailbox (message count, the UID of each sequence number) and drops the
connection, which fails the test, when the server contradicts itself: EXISTS lower than the
known count, EXPUNGE of a sequence number that does not exist, a UID that changes under a
sequence number, FLAGS that are not atoms, an unknown ``\\System`` flag, a broken
INTERNALDATE or MODSEQ, a FETCH that is not key-value pairs, a tagged reply with a tag never
sent, or BAD where the script did not expect it. Those become :class:`ProtocolError` here.
Its milder checks (which only log) are kept as warnings in the report.

Every read honours the test's deadline; literals in commands go as ``{n+}`` when the server
offers LITERAL+ (as imaptest always sends them), otherwise as synchronising literals.
"""

from __future__ import annotations

import calendar
import re
import socket
import time
from collections import deque
from dataclasses import dataclass
from enum import IntEnum

from tests.imaptest.imapargs import Arg, Kind, NeedMore, ParseError, parse_response, parse_script_args, to_text

SYSTEM_FLAGS = {b"ANSWERED", b"FLAGGED", b"DELETED", b"SEEN", b"DRAFT", b"RECENT"}
MONTHS = {m: i for i, m in enumerate(
    (b"JAN", b"FEB", b"MAR", b"APR", b"MAY", b"JUN", b"JUL", b"AUG", b"SEP", b"OCT", b"NOV", b"DEC"), 1)}
DATETIME = re.compile(rb"( \d|\d\d|\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)\Z")
LITERAL_AT_END = re.compile(rb" ~?\{(\d*)(\+?)\}\r?\Z")


class ProtocolError(Exception):
    """The server broke the protocol in a way imaptest answers by disconnecting (test fails)."""


class Timeout(Exception):
    pass


class Login(IntEnum):
    NONAUTH = 0
    AUTH = 1
    SELECTED = 2


@dataclass
class Response:
    args: list[Arg]
    raw: bytes

    @property
    def text(self) -> str:
        raw = self.raw.rstrip(b"\r\n")
        line = raw.decode("utf-8", "backslashreplace").replace("\r", "\\r").replace("\n", "\\n")
        return line if len(line) <= 400 else line[:400] + f"...({len(raw)} bytes)"


@dataclass
class _Chunk:
    data: bytes
    tag: str
    wait_after: bool  # a synchronising literal follows: wait for "+"


def parse_datetime(value: bytes) -> tuple[int, int] | None:
    """``imap_parse_datetime``: (UTC timestamp, zone in minutes), None when broken."""
    match = DATETIME.match(value)
    if match is None or match.group(2).upper() not in MONTHS:
        return None
    day, _, year, hour, minute, second, sign, zh, zm = match.groups()
    month = MONTHS[match.group(2).upper()]
    try:
        t = calendar.timegm((int(year), month, int(day), int(hour), int(minute), int(second), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    zone = (int(zh) * 60 + int(zm)) * (-1 if sign == b"-" else 1)
    return t - zone * 60, zone


def split_literals(command: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """A command with inline literals as (text up to the literal's ``{n``, its bytes) pairs and
    the text after the last one (imaptest ``command_get_cmdline``)."""
    parts: list[tuple[bytes, bytes]] = []
    prefix = bytearray()
    pos = 0
    end = command.find(b"\n", pos)
    while end >= 0:
        line = command[pos:end]
        match = LITERAL_AT_END.search(line)
        if match is None:
            prefix += command[pos : end + 1]
            pos = end + 1
        else:
            size = int(match.group(1) or b"0")
            brace = line.rindex(b"{", match.start())
            head = line[: brace + 1] + match.group(1)  # up to "{n", without "+}" and CR
            parts.append((bytes(prefix) + head, command[end + 1 : end + 1 + size]))
            prefix = bytearray()
            pos = end + 1 + size
        end = command.find(b"\n", pos)
    return parts, bytes(prefix) + command[pos:]


class Connection:
    def __init__(self, index: int, global_id: int, host: str, port: int, deadline: float,
                 warnings: list[str], internaldates: dict[tuple[bytes, int], tuple[int, int]]) -> None:
        self.index = index
        self.internaldates = internaldates  # (mailbox, UID) -> INTERNALDATE, shared by a test's connections
        self.global_id = global_id
        self.deadline = deadline
        self.warnings = warnings
        self.buf = bytearray()
        self.tag_counter = 1
        self.caps: list[bytes] = []
        self.login = Login.NONAUTH
        self.storage = b""  # the mailbox imaptest thinks this connection works on
        self.view: list[int] = []  # the UID of each sequence number, 0 while unknown
        self.seen_bye = False
        self.logout_sent = False
        self.qresync = False
        self.keywords: set[bytes] = set()  # the last FLAGS list's keywords, lower case
        self.preauth = False
        self.last_sent_state = ""  # "append" / "logout" / "" (imaptest's last_cmd->state)
        self.sending: deque[_Chunk] = deque()
        self.allow_literal_plus = True  # False: synchronising literals even if LITERAL+ is offered
        self.waiting_continuation = False
        self.closed = False
        self.sock = socket.create_connection((host, port), timeout=self.remaining())
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # --- I/O -------------------------------------------------------------------------------

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Timeout("per-test time limit reached")
        return left

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _send(self, data: bytes) -> None:
        self.sock.settimeout(self.remaining())
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise Timeout("per-test time limit reached while sending") from None
        except OSError as exc:
            raise ProtocolError(f"Unexpected disconnection (send failed: {exc})") from None

    def _recv(self, need: int) -> bool:
        """Read at least once; False at end of stream."""
        got = 0
        while got < max(need, 1):
            self.sock.settimeout(self.remaining())
            try:
                chunk = self.sock.recv(max(65536, need - got))
            except TimeoutError:
                raise Timeout("per-test time limit reached while waiting for the server") from None
            except OSError:
                return False
            if not chunk:
                return False
            self.buf += chunk
            got += len(chunk)
        return True

    def read(self) -> Response | None:
        """The next response, or None when the server closed the connection."""
        while True:
            if self.buf:
                try:
                    args, end = parse_response(bytes(self.buf))
                except NeedMore as more:
                    need = more.need
                except ParseError as exc:
                    line = bytes(self.buf[:300]).split(b"\n")[0]
                    raise ProtocolError(f"error parsing input: {exc}: {line!r}") from None
                else:
                    raw = bytes(self.buf[:end])
                    del self.buf[:end]
                    return Response(args, raw)
            else:
                need = 1
            if self.closed or not self._recv(need):
                self.closed = True
                return None

    # --- sending commands ----------------------------------------------------------------------

    def next_tag(self) -> str:
        tag = f"{self.global_id}.{self.tag_counter}"
        self.tag_counter += 1
        return tag

    @property
    def literal_plus(self) -> bool:
        return self.allow_literal_plus and any(c.upper() == b"LITERAL+" for c in self.caps)

    def queue_command(self, tag: str, command: bytes) -> None:
        """Send ``tag command`` (its literals included) now, or as far as the first
        synchronising literal; :meth:`continuation` sends the rest."""
        parts, tail = split_literals(command)
        chunks: list[_Chunk] = []
        text = tag.encode() + b" "
        for head, data in parts:
            if self.literal_plus:
                text += head + b"+}\r\n" + data
            else:
                chunks.append(_Chunk(text + head + b"}\r\n", tag, True))
                text = data
        chunks.append(_Chunk(text + tail + b"\r\n", tag, False))
        self.sending.extend(chunks)
        self._pump()

    def _pump(self) -> None:
        while self.sending and not self.waiting_continuation:
            chunk = self.sending.popleft()
            self._send(chunk.data)
            self.waiting_continuation = chunk.wait_after

    def continuation(self) -> None:
        if not self.waiting_continuation:
            raise ProtocolError("Unexpected command continuation")
        self.waiting_continuation = False
        self._pump()

    def command_done(self, tag: str) -> None:
        """A tagged reply came: drop what is left of that command (a refused literal)."""
        if self.sending and self.sending[0].tag == tag and self.waiting_continuation:
            self.waiting_continuation = False
        while self.sending and self.sending[0].tag == tag:
            self.sending.popleft()
        self._pump()

    def run(self, command: bytes) -> tuple[Response, list[Response]]:
        """Outside the test proper (login, setup): send, wait for the tagged reply."""
        tag = self.next_tag()
        self.queue_command(tag, command)
        untagged: list[Response] = []
        while True:
            response = self.read()
            if response is None:
                raise ProtocolError(f"Unexpected disconnection during {command[:60]!r}")
            first = response.args[0].atom() if response.args else None
            if first == b"+":
                self.continuation()
            elif first == b"*":
                self.track_untagged(response.args[1:])
                untagged.append(response)
            elif first == tag.encode():
                self.command_done(tag)
                self.track_tagged(command, response.args[1:])
                return response, untagged
            else:
                raise ProtocolError(f"Unexpected tagged reply: {response.text}")

    # --- imaptest's state tracking -----------------------------------------------------------

    def warn(self, text: str) -> None:
        self.warnings.append(f"connection {self.index + 1}: {text}")

    def mailbox_close(self) -> None:
        self.view = []
        self.keywords = set()

    def selecting(self, command: bytes) -> None:
        """SELECT/EXAMINE of another mailbox: imaptest starts a new view."""
        verb, _, rest = command.partition(b" ")
        if verb.upper() in (b"SELECT", b"EXAMINE") and rest:
            try:
                args = parse_script_args(rest)
            except ParseError:
                return
            if args and args[0].is_astring and args[0].data != self.storage:
                self.storage = args[0].data
                self.mailbox_close()

    def track_tagged(self, command: bytes, args: list[Arg]) -> None:
        status = args[0].atom().upper() if args and args[0].atom() is not None else b""  # type: ignore[union-attr]
        lowered = command.lower()
        if status == b"OK" and (lowered.startswith((b"select ", b"examine "))):
            self.login = Login.SELECTED
        elif status == b"OK" and lowered in (b"close", b"unselect") and self.login is Login.SELECTED:
            self.mailbox_close()
        elif status == b"OK" and lowered.startswith(b"login "):
            self.login = Login.AUTH

    def track_untagged(self, args: list[Arg]) -> None:
        """``imap_client_handle_untagged``: follow the view, refuse contradictions."""
        first = args[0].atom() if args else None
        if first is None:
            raise ProtocolError("Invalid untagged input: " + to_text(args))
        word = first.upper()
        if word.isdigit():
            self._numbered(int(word), args)
        elif word == b"BYE":
            if not self.logout_sent or self.seen_bye:
                self.warn("Unexpected BYE")
            self.mailbox_close()
            self.seen_bye = True
            self.login = Login.NONAUTH
        elif word == b"FLAGS":
            if len(args) < 2 or args[1].kind is not Kind.LIST or not self._valid_flags(args[1].items):
                raise ProtocolError("Broken FLAGS: " + to_text(args))
            self.keywords = {a.data.lower() for a in args[1].items if not a.data.startswith(b"\\")}
        elif word == b"CAPABILITY":
            self.caps = [a.data for a in args[1:] if a.kind is not Kind.LIST]
        elif word == b"ENABLED":
            self.qresync = self.qresync or any((a.atom() or b"").upper() == b"QRESYNC" for a in args[1:])
        elif word == b"VANISHED" and not self.qresync:
            raise ProtocolError("Server sent VANISHED but we hadn't enabled QRESYNC")
        elif word == b"OK":
            self._resp_text_code(args[1:])
        elif word == b"BAD":
            self.warn("BAD received: " + to_text(args))

    def _numbered(self, num: int, args: list[Arg]) -> None:
        name = args[1].atom() if len(args) > 1 else None
        if name is None:
            raise ProtocolError("Invalid untagged input: " + to_text(args))
        name = name.upper()
        if name == b"EXISTS":
            if num < len(self.view):
                raise ProtocolError(f"Message count dropped {len(self.view)} -> {num}")
            self.view += [0] * (num - len(self.view))
        if num > len(self.view) and self.last_sent_state in ("append", "logout"):
            self.warn(f"seq too high ({num} > {len(self.view)}): " + to_text(args))
        elif name == b"EXPUNGE":
            if num == 0:
                raise ProtocolError("Tried to expunge sequence 0")
            if num > len(self.view):
                raise ProtocolError(f"Tried to expunge sequence {num} with only {len(self.view)} msgs")
            del self.view[num - 1]
        elif name == b"FETCH":
            self._fetch(num, args[2:])

    def _valid_flags(self, items: list[Arg]) -> bool:
        for item in items:
            atom = item.atom()
            if atom is None:
                return False
            if atom.startswith(b"\\") and atom[1:].upper() not in SYSTEM_FLAGS:
                return False
        return True

    def _fetch(self, seq: int, rest: list[Arg]) -> None:
        """``mailbox_state_handle_fetch``: the checks that disconnect."""
        if seq > len(self.view):
            self.warn(f"FETCH for sequence {seq} beyond the {len(self.view)} messages known")
            return
        if not rest or rest[0].kind is not Kind.LIST:
            raise ProtocolError("FETCH didn't return a list")
        items = rest[0].items
        pairs: dict[bytes, Arg] = {}
        for i in range(0, len(items) - 1, 2):
            key = items[i].atom()
            if key is not None:
                pairs.setdefault(key.upper(), items[i + 1])
        uid_arg = pairs.get(b"UID")
        if uid_arg is None and self.qresync:
            raise ProtocolError("FETCH didn't return UID while QRESYNC was enabled")
        if uid_arg is not None and uid_arg.kind is Kind.ATOM:
            if not uid_arg.data.isdigit() or int(uid_arg.data) == 0 or int(uid_arg.data) >= 2**32:
                raise ProtocolError(f"Invalid UID number {uid_arg.data!r}")
            uid = int(uid_arg.data)
            if self.view[seq - 1] == 0:
                self.view[seq - 1] = uid
            elif self.view[seq - 1] != uid:
                old, self.view[seq - 1] = self.view[seq - 1], uid
                raise ProtocolError(f"UID changed for sequence {seq}: {old} -> {uid}")
        for i in range(0, len(items) - 1, 2):
            key, value = items[i].atom(), items[i + 1]
            if key is None or value.kind is Kind.NIL:
                continue
            key = key.upper()
            if key == b"FLAGS":
                if value.kind is not Kind.LIST:
                    raise ProtocolError("FLAGS reply isn't a list")
                if not self._valid_flags(value.items):
                    raise ProtocolError("Invalid FLAGS in FETCH: " + to_text(value.items))
                for flag in value.items:
                    if not flag.data.startswith(b"\\") and flag.data.lower() not in self.keywords:
                        self.warn("Keyword used without being in FLAGS: " + flag.data.decode("latin-1"))
                        self.keywords.add(flag.data.lower())
            elif key == b"MODSEQ":
                text = to_text(value.items) if value.kind is Kind.LIST else value.data.decode("latin-1")
                if not text.isdigit() or int(text) == 0 or int(text) >= 2**64:
                    raise ProtocolError(f"Invalid MODSEQ {text} returned")
            elif key == b"INTERNALDATE" and self.view[seq - 1] != 0:
                parsed = parse_datetime(value.data)
                if parsed is None:
                    raise ProtocolError(f"Broken INTERNALDATE {value.data!r}")
                known = self.internaldates.setdefault((self.storage, self.view[seq - 1]), parsed)
                if known != parsed:
                    raise ProtocolError(f"UID={self.view[seq - 1]} INTERNALDATE changed {known} -> {parsed}")
        if len(items) % 2:
            raise ProtocolError("FETCH reply doesn't have key-value pairs")

    def _resp_text_code(self, args: list[Arg]) -> None:
        """``imap_client_handle_resp_text_code`` for ``* OK [...]``."""
        if not args or args[0].kind is not Kind.ATOM:
            raise ProtocolError("Invalid resp-text: " + to_text(args))
        value = to_text(args)
        if not value.startswith("["):
            return
        end = value.find("]")
        if end < 0:
            raise ProtocolError("Missing ']' in resp-text")
        key, _, code_value = value[1:end].partition(" ")
        if key == "CAPABILITY":
            self.caps = [w.encode() for w in code_value.split()]
        elif key == "CLOSED":
            if self.login is not Login.SELECTED:
                self.warn("CLOSED code sent in non-selected state")
            else:
                self.mailbox_close()
