"""IMAP arguments as imaptest reads them: Dovecot's ``imap-parser`` rules, in Python.

imaptest parses both sides with the same parser: the script's lines (with literal types and
multi-line strings allowed) and the server's responses. The rules that matter for matching:

- an atom runs to a space or line end, or to ``)`` inside a list; every other byte belongs to
  it (``ATOM_ALLCHARS``), so ``BODY[HEADER.FIELDS (FROM)]`` is the atom ``BODY[HEADER.FIELDS``,
  the list ``(FROM)`` and the atom ``]``, on both sides alike;
- an atom spelled ``NIL`` (any case) is NIL; ``"..."`` is a string (backslash escapes removed);
  ``{n}`` and ``~{n}`` (literal8) are literals whose bytes are read inline;
- there is no resp-text mode: the human text after ``OK`` is parsed as arguments too, so a
  server text with an unbalanced ``(`` or a stray ``{`` is a parse error, as it is for imaptest.

Values are bytes. Comparisons follow C strings (see :func:`cstr`): imaptest compares with
``strcasecmp``, which stops at the first NUL byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Kind(Enum):
    ATOM = "atom"
    STRING = "string"
    LITERAL = "literal"
    NIL = "nil"
    LIST = "list"


@dataclass
class Arg:
    kind: Kind
    data: bytes = b""
    items: list[Arg] = field(default_factory=list)

    @property
    def is_astring(self) -> bool:
        """``imap_arg_get_astring``: atoms, strings, literals, and NIL read as the text "NIL"."""
        return self.kind is not Kind.LIST

    def atom(self) -> bytes | None:
        """``imap_arg_get_atom``: the text of an atom or NIL, else None."""
        return self.data if self.kind in (Kind.ATOM, Kind.NIL) else None


class ParseError(Exception):
    """The bytes are not IMAP as Dovecot's parser reads them (imaptest disconnects)."""


class NeedMore(Exception):
    """The buffer ends inside a response; ``need`` bytes at least are still missing."""

    def __init__(self, need: int = 1) -> None:
        super().__init__(need)
        self.need = need


def cstr(data: bytes) -> bytes:
    """The value as a C string: everything before the first NUL byte."""
    end = data.find(b"\0")
    return data if end < 0 else data[:end]


def unescape(data: bytes) -> bytes:
    """``str_unescape``: drop each backslash, keep the byte after it."""
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == 0x5C and i + 1 < len(data):
            i += 1
        out.append(data[i])
        i += 1
    return bytes(out)


class _Reader:
    def __init__(self, buf: bytes, pos: int, *, script: bool) -> None:
        self.buf = buf
        self.pos = pos
        self.script = script  # the whole input is here: its end is the end of the line

    def more(self, need: int = 1) -> NeedMore | ParseError:
        if self.script:
            return ParseError("unexpected end of line")
        return NeedMore(need)

    def parse(self) -> list[Arg]:
        buf, n = self.buf, len(self.buf)
        root: list[Arg] = []
        stack: list[list[Arg]] = [root]
        while True:
            while self.pos < n and buf[self.pos] == 0x20:
                self.pos += 1
            if self.pos >= n:
                if self.script:
                    break
                raise NeedMore()
            c = buf[self.pos]
            if c == 0x0D:  # CR
                if self.pos + 1 >= n:
                    if self.script:
                        raise ParseError("CR sent without LF")
                    raise NeedMore()
                if buf[self.pos + 1] != 0x0A:
                    raise ParseError("CR sent without LF")
                self.pos += 2
                break
            if c == 0x0A:
                self.pos += 1
                break
            if c == 0x22:  # "
                stack[-1].append(self.string())
            elif c == 0x7E and buf[self.pos + 1 : self.pos + 2] == b"{":  # ~{n}: literal8
                self.pos += 1
                stack[-1].append(self.literal())
            elif c == 0x7E and self.pos + 1 >= n and not self.script:
                raise NeedMore()  # "~" alone so far: literal8 or atom, the next byte tells
            elif c == 0x7B:  # {
                stack[-1].append(self.literal())
            elif c == 0x28:  # (
                item = Arg(Kind.LIST)
                stack[-1].append(item)
                stack.append(item.items)
                self.pos += 1
            elif c == 0x29:  # )
                if len(stack) == 1:
                    raise ParseError("Unexpected ')'")
                stack.pop()
                self.pos += 1
            else:
                stack[-1].append(self.atom(inside_list=len(stack) > 1))
        if len(stack) > 1:
            raise ParseError("Missing ')'")
        return root

    def atom(self, *, inside_list: bool) -> Arg:
        buf, n, start = self.buf, len(self.buf), self.pos
        i = start
        while i < n:
            c = buf[i]
            if c in (0x20, 0x0D, 0x0A) or (c == 0x29 and inside_list):
                break
            i += 1
        else:
            if not self.script:
                raise NeedMore()
        self.pos = i
        data = buf[start:i]
        return Arg(Kind.NIL if data.upper() == b"NIL" else Kind.ATOM, data)

    def string(self) -> Arg:
        buf, n = self.buf, len(self.buf)
        i = self.pos + 1
        escaped = False
        while True:
            if i >= n:
                raise self.more()
            c = buf[i]
            if c == 0x22:
                break
            if c == 0:
                raise ParseError("NULs not allowed in strings")
            if c == 0x5C:
                if i + 1 >= n:
                    raise self.more()
                escaped = True
                i += 1
                c = buf[i]
            if c in (0x0D, 0x0A) and not self.script:  # MULTILINE_STR only for scripts
                raise ParseError("Missing '\"'")
            i += 1
        raw = buf[self.pos + 1 : i]
        self.pos = i + 1
        return Arg(Kind.STRING, unescape(raw) if escaped else raw)

    def literal(self) -> Arg:
        buf, n = self.buf, len(self.buf)
        i = self.pos + 1  # after "{"
        size, nonsync = 0, False
        while True:
            if i >= n:
                raise self.more()
            c = buf[i]
            if c == 0x7D:  # }
                break
            if nonsync:
                raise ParseError("Expecting '}' after '+'")
            if c == 0x2B:
                nonsync = True
            elif 0x30 <= c <= 0x39:
                size = size * 10 + c - 0x30
            else:
                raise ParseError("Invalid literal size")
            i += 1
        i += 1
        if i < n and buf[i] == 0x0D:
            i += 1
        if i >= n:
            raise self.more()
        if buf[i] != 0x0A:
            raise ParseError("Missing LF after literal size")
        i += 1
        if n - i < size:
            raise self.more(size - (n - i))
        self.pos = i + size
        return Arg(Kind.LITERAL if self.script else Kind.STRING, buf[i : i + size])


def parse_script_args(line: bytes) -> list[Arg]:
    """One line of a test file (its literals already inline) as imaptest's parser reads it."""
    reader = _Reader(line, 0, script=True)
    args = reader.parse()
    if reader.pos < len(line):
        raise ParseError("data after the end of line")
    return args


def parse_response(buf: bytes, pos: int = 0) -> tuple[list[Arg], int]:
    """One server response starting at ``pos``: its arguments and the offset after its CRLF.

    Raises :class:`NeedMore` when the buffer ends first, :class:`ParseError` on bad syntax.
    """
    reader = _Reader(buf, pos, script=False)
    args = reader.parse()
    return args, reader.pos


def _quote(data: bytes, limit: int) -> str:
    text = data.decode("utf-8", "backslashreplace")
    if len(text) > limit:
        text = text[:limit] + f"...({len(data)} bytes)"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n") + '"'


def to_text(args: list[Arg], limit: int = 200) -> str:
    """Arguments back as one readable line (``imap_args_to_str``), long values shortened."""
    parts: list[str] = []
    for arg in args:
        if arg.kind is Kind.LIST:
            parts.append("(" + to_text(arg.items, limit) + ")")
        elif arg.kind in (Kind.ATOM, Kind.NIL):
            parts.append(arg.data.decode("utf-8", "backslashreplace"))
        else:
            parts.append(_quote(arg.data, limit))
    return " ".join(parts)
