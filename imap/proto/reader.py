"""Cursor over one complete command (RFC 3501 §9 formal syntax, client side).

The :class:`Reader` works on the bytes of a whole command as framed by
:class:`imap.proto.receiver.CommandReceiver`: the lines (without the final CRLF) with every literal
header ``{N}``/``{N+}`` followed by CRLF and its N octets. Parse functions consume tokens and
raise :class:`BadCommand` (tagged BAD) on any syntax error.
"""

from __future__ import annotations

from imap.proto import mutf7, replies
from imap.proto.errors import BadCommand, CommandFailed
from imap.proto.replies import Reply
from imap.proto.seqset import SAVED, SequenceSet

# RFC 3501 §9: atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials
# / resp-specials. ATOM-CHAR is any CHAR (7-bit) except those.
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]')
ATOM_CHARS = frozenset(c for c in range(0x21, 0x7F) if c not in _ATOM_SPECIALS)
ASTRING_CHARS = ATOM_CHARS | {ord("]")}
TAG_CHARS = ASTRING_CHARS - {ord("+")}
LIST_CHARS = ASTRING_CHARS | {ord("%"), ord("*")}
SEQSET_CHARS = frozenset(b"0123456789:*,")
MAX_NUMBER = 0xFFFFFFFF  # RFC 3501 §9 number: 32-bit unsigned
MAX_NUMBER64 = 0x7FFFFFFFFFFFFFFF  # RFC 7162 §7 mod-sequence-value: 63 bits


class Reader:
    def __init__(self, data: bytes, pos: int = 0, *, utf8: bool = False) -> None:
        self.data = data
        self.pos = pos
        self.utf8 = utf8  # mailbox names are UTF-8 (RFC 6855 §3, RFC 9051 §5.1), not modified UTF-7
        # A refusal found while parsing (a mailbox name that is not modified UTF-7): raised
        # once the whole command has parsed, so a syntax error still answers BAD first.
        self.refusal: CommandFailed | None = None
        # RFC 5182 §2.1: a SEARCH asking to SAVE that fails empties ``$``, even on a syntax
        # error after the RETURN options (imap.proto.grammar.parse_command marks the error).
        self.search_save = False

    # --- primitives ---------------------------------------------------------------
    def error(self, reply: Reply = replies.SYNTAX_ERROR) -> BadCommand:
        return BadCommand(reply, detail=f"{reply.text} at offset {self.pos}")

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def expect_end(self) -> None:
        if not self.at_end():
            raise self.error(replies.TRAILING_CHARACTERS)

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def peek_is(self, char: bytes) -> bool:
        return self.data.startswith(char, self.pos)

    def expect(self, char: bytes) -> None:
        if not self.data.startswith(char, self.pos):
            raise self.error()
        self.pos += len(char)

    def sp(self) -> None:
        self.expect(b" ")

    def maybe_sp(self) -> bool:
        if self.peek() == 0x20:
            self.pos += 1
            return True
        return False

    def take(self, allowed: frozenset[int]) -> bytes:
        start = self.pos
        data = self.data
        while self.pos < len(data) and data[self.pos] in allowed:
            self.pos += 1
        if self.pos == start:
            raise self.error()
        return data[start : self.pos]

    # --- tokens -------------------------------------------------------------------
    def atom(self) -> str:
        return self.take(ATOM_CHARS).decode("ascii")

    def keyword(self) -> str:
        """An atom, upper-cased (command names, search keys, options)."""
        return self.atom().upper()

    def tag(self) -> str:
        return self.take(TAG_CHARS).decode("ascii")

    def number(self, *, nonzero: bool = False, maximum: int = MAX_NUMBER) -> int:
        start = self.pos
        while self.pos < len(self.data) and 0x30 <= self.data[self.pos] <= 0x39:
            self.pos += 1
        digits = self.data[start : self.pos]
        if not digits or len(digits) > 20:
            raise self.error(replies.INVALID_NUMBER)
        value = int(digits)
        if value > maximum or (nonzero and value == 0):
            raise self.error(replies.INVALID_NUMBER)
        return value

    def quoted(self) -> bytes:
        """RFC 3501 §9 quoted; 8-bit octets are accepted (RFC 6855 UTF-8 in quoted)."""
        self.expect(b'"')
        out = bytearray()
        data = self.data
        while True:
            if self.pos >= len(data):
                raise self.error(replies.UNTERMINATED_QUOTED)
            c = data[self.pos]
            self.pos += 1
            if c == 0x22:
                return bytes(out)
            if c == 0x5C:
                if self.pos >= len(data) or data[self.pos] not in (0x22, 0x5C):
                    raise self.error(replies.INVALID_ESCAPE)
                c = data[self.pos]
                self.pos += 1
            elif c in (0x0D, 0x0A, 0x00):
                raise self.error(replies.INVALID_QUOTED_CHARACTER)
            out.append(c)

    def literal(self, *, allow_nul: bool = False) -> bytes:
        """``{N}`` / ``{N+}`` CRLF and N octets (RFC 3501 §4.3, RFC 7888).

        ``allow_nul`` leaves the NUL check to the caller (APPEND answers ``NO`` for it)."""
        self.expect(b"{")
        size = self.number(maximum=MAX_NUMBER64)
        if self.peek_is(b"+"):
            self.pos += 1
        self.expect(b"}\r\n")
        end = self.pos + size
        if end > len(self.data):
            raise self.error(replies.TRUNCATED_LITERAL)
        value = self.data[self.pos : end]
        if not allow_nul and b"\x00" in value:
            raise self.error(replies.NUL_IN_LITERAL)  # RFC 3501 §4.3: literal8 is needed for NUL
        self.pos = end
        return value

    def string(self) -> bytes:
        if self.peek_is(b'"'):
            return self.quoted()
        if self.peek_is(b"{"):
            return self.literal()
        raise self.error()

    def astring(self) -> bytes:
        if self.peek_is(b'"') or self.peek_is(b"{"):
            return self.string()
        return self.take(ASTRING_CHARS)

    def nstring(self) -> bytes | None:
        if self.data[self.pos : self.pos + 3].upper() == b"NIL":
            self.pos += 3
            return None
        return self.string()

    def text_astring(self) -> str:
        """An astring decoded as UTF-8 (user names, passwords, search strings)."""
        try:
            return self.astring().decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(replies.INVALID_UTF8) from None

    def mailbox(self) -> str:
        """RFC 3501 §9 mailbox: astring, modified UTF-7 decoded; INBOX case-insensitive (§5.1).

        A name that is not valid modified UTF-7 (§5.1.3) names no mailbox: the command gets
        ``NO`` (:attr:`refusal`, as Dovecot answers), not ``BAD``: its syntax is right."""
        raw = self.astring()
        name = self._name(raw)
        if name is None:
            self.refusal = self.refusal or CommandFailed(replies.INVALID_MAILBOX_ENCODING)
            return raw.decode("ascii", "replace")
        return name

    def reference(self) -> str | None:
        """LIST / LSUB reference name (a mailbox); None when it is not valid modified UTF-7."""
        return self._name(self.astring())

    def list_mailbox(self) -> str | None:
        """RFC 3501 §9 list-mailbox: 1*list-char / string (``%`` and ``*`` are wildcards);
        None when it is not valid modified UTF-7 (it then matches no mailbox)."""
        if self.peek_is(b'"') or self.peek_is(b"{"):
            raw = self.string()
        else:
            raw = self.take(LIST_CHARS)
        return self._name(raw)

    def _name(self, raw: bytes) -> str | None:
        """A mailbox name or pattern as the session spells them: UTF-8 once enabled (invalid
        UTF-8 is a BAD, RFC 6855 §3), else modified UTF-7 (None when malformed)."""
        if not self.utf8:
            return _decoded(raw)
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(replies.INVALID_UTF8) from None
        return "INBOX" if name.upper() == "INBOX" else name

    def flag(self) -> str:
        """RFC 3501 §9 flag: ``\\Atom`` (system or extension flag) or a keyword atom."""
        if self.peek_is(b"\\"):
            self.pos += 1
            return "\\" + self.atom()
        return self.atom()

    def flag_list(self) -> tuple[str, ...]:
        self.expect(b"(")
        flags: list[str] = []
        while not self.peek_is(b")"):
            if flags:
                self.sp()
            flags.append(self.flag())
        self.pos += 1
        return tuple(flags)

    def flags(self) -> tuple[str, ...]:
        """A flag list, or (STORE, RFC 3501 §9 store-att-flags) flags without parentheses."""
        if self.peek_is(b"("):
            return self.flag_list()
        flags = [self.flag()]
        while self.maybe_sp():
            flags.append(self.flag())
        return tuple(flags)

    def sequence_set_text(self) -> bytes:
        return self.take(SEQSET_CHARS)

    def sequence_set(self) -> SequenceSet:
        """A sequence-set (RFC 3501 §9), or ``$`` (RFC 5182 §3 seq-last-command) alone."""
        if self.peek_is(b"$"):
            self.pos += 1
            return SAVED
        return SequenceSet.parse(self.sequence_set_text())

    def paren_list(self, item: str = "astring") -> list[bytes]:
        """``(a b c)`` of astrings (or atoms); empty list allowed."""
        self.expect(b"(")
        out: list[bytes] = []
        while not self.peek_is(b")"):
            if out:
                self.sp()
            out.append(self.astring() if item == "astring" else self.atom().encode())
        self.pos += 1
        return out


def _decoded(raw: bytes) -> str | None:
    """Modified UTF-7 decoded (RFC 3501 §5.1.3), INBOX upper-cased (§5.1); None when malformed."""
    try:
        name = mutf7.decode(raw)
    except mutf7.Malformed:
        return None
    return "INBOX" if name.upper() == "INBOX" else name
