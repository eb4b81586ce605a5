"""Matching server replies against a script's expected replies (imaptest ``test-exec.c``).

- ``$name`` / ``${name}``: a variable; unbound, it takes the server's text up to the first
  byte equal (ignoring case) to the pattern's next byte; bound, the server must repeat its
  value exactly (case-sensitive). A failed candidate line unbinds what it bound.
- ``$``: any value (also a whole list); ``$$``: a literal ``$``.
- ``$n``: the message that had sequence number n when the command group started, followed
  through the EXPUNGEs seen since.
- ``$!unordered[=n]`` (with ``$!noextra``, ``$!extra``, ``$!ignore=x``, ``$!ban=x``,
  ``$!ordered``) at the start of a list: its elements (chains of n) in any order.
- Everything else compares ignoring ASCII case, as C strings (up to a NUL byte).

A match answers ``FULL`` or how many leading arguments matched (for the "best match" shown
when an expected reply never came).
"""

from __future__ import annotations

from tests.imaptest.imapargs import Arg, Kind, cstr

FULL = -1


def _is_var_char(c: int) -> bool:
    return (0x30 <= c <= 0x39) or (0x41 <= c <= 0x5A) or (0x61 <= c <= 0x7A) or c == 0x5F


def _upper(c: int) -> int:
    return c - 32 if 0x61 <= c <= 0x7A else c


class Uninitialized(Exception):
    """A command uses a variable no reply has bound; ``partial`` is the line expanded up to it
    (imaptest reports the failure and sends that much)."""

    def __init__(self, message: str, partial: bytes = b"") -> None:
        super().__init__(message)
        self.partial = partial


class Matcher:
    def __init__(self, variables: dict[str, bytes]) -> None:
        self.variables = variables
        self.added: list[str] = []
        self.seqmap: list[int] = []  # initial sequence - 1 -> current sequence, 0 = expunged

    # --- sequences ---------------------------------------------------------------------

    def start_group(self, message_count: int) -> None:
        self.seqmap = list(range(1, message_count + 1))

    def relative_seq(self, seq: int) -> bytes:
        if seq == 0:
            return b"<zero seq>"
        if seq > len(self.seqmap):
            return b"<out of range>"
        if self.seqmap[seq - 1] == 0:
            return b"<expunged>"
        return str(self.seqmap[seq - 1]).encode()

    def expunged(self, seq: int) -> None:
        """Follow an EXPUNGE (after it was matched) in the ``$n`` map."""
        if seq > len(self.seqmap) or seq == 0:
            return
        for i in range(seq - 1, len(self.seqmap)):
            if self.seqmap[i] >= seq:
                self.seqmap[i] = 0 if self.seqmap[i] == seq else self.seqmap[i] - 1

    # --- variables -----------------------------------------------------------------------

    def revert(self) -> None:
        for name in self.added:
            self.variables.pop(name, None)
        self.added.clear()

    def expand_all(self, text: bytes, *, skip_uninitialized: bool = False) -> bytes:
        """``$variables`` of a command line (or an expected reply shown in a report)."""
        if b"$" not in text:
            return text
        out = bytearray()
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c != 0x24 or i == n - 1:
                out.append(c)
                i += 1
                continue
            i += 1
            if text[i] == 0x24:
                out.append(0x24)
                i += 1
            elif text[i] == 0x21:  # $!directive: dropped up to the next space
                while i + 1 < n and text[i + 1] != 0x20:
                    i += 1
                i += 1
            else:
                if text[i] == 0x7B:
                    end = text.find(b"}", i + 1)
                    if end < 0:
                        raise Uninitialized("Missing '}'", bytes(out))
                    name, i = text[i + 1 : end], end + 1
                else:
                    start = i
                    while i < n and _is_var_char(text[i]):
                        i += 1
                    name = text[start:i]
                if name.isdigit():
                    out += self.relative_seq(int(name))
                    continue
                value = self.variables.get(name.decode("ascii", "replace"))
                if value is None:
                    if not skip_uninitialized:
                        raise Uninitialized(f"Uninitialized variable: {name.decode('ascii', 'replace')}", bytes(out))
                    value = b"$"
                out += value
        return bytes(out)

    def expand_input(self, pattern: bytes, data: bytes) -> bytes | None:
        """The pattern with its variables taken from ``data`` (binding unbound ones), or None
        when they cannot agree (``test_expand_input``; the caller compares the result)."""
        out = bytearray()
        i, j, n, m = 0, 0, len(pattern), len(data)
        while i < n:
            c = pattern[i]
            if c != 0x24 or pattern[i + 1 : i + 2] == b"$":
                if c == 0x24:
                    i += 1
                    c = pattern[i]
                if j >= m or _upper(c) != _upper(data[j]):
                    return None
                j += 1
                out.append(c)
                i += 1
                continue
            i += 1
            if pattern[i : i + 1] == b"{":
                end = pattern.find(b"}", i + 1)
                if end < 0:
                    return b""
                name, i = pattern[i + 1 : end], end + 1
            else:
                start = i
                while i < n and _is_var_char(pattern[i]):
                    i += 1
                name = pattern[start:i]
            value: bytes | None
            if name.isdigit():
                value = self.relative_seq(int(name))
            else:
                key = name.decode("ascii", "replace")
                value = self.variables.get(key) if key else None
                if value is None:
                    rest = pattern[i:]
                    if rest[:1] == b"$":
                        rest = self.expand_input(rest, data[j:]) or b""
                    stop = _upper(rest[0]) if rest else None
                    k = j
                    while k < m and (stop is None or _upper(data[k]) != stop):
                        k += 1
                    value = data[j:k]
                    if key:
                        self.variables[key] = value
                        self.added.append(key)
            out += value
            for b in value:
                if j >= m or data[j] != b:
                    return None
                j += 1
        return bytes(out)

    # --- arguments -----------------------------------------------------------------------

    def match_args(self, match: list[Arg], args: list[Arg], limit: int | None = None, prefix: bool = False,
                   start: int = 0) -> int:
        """``test_imap_match_args``: ``match`` against ``args[start:]``, at most ``limit`` items."""
        count = 0
        mi = 0
        ai = start
        while mi < len(match) and (limit is None or count < limit):
            want = match[mi]
            got = args[ai] if ai < len(args) else None
            if want.kind is Kind.NIL:
                if got is None or got.kind is not Kind.NIL:
                    return count
            elif want.kind is Kind.LIST:
                if got is None or got.kind is not Kind.LIST:
                    return count
                sub = self.match_list(want.items, got.items)
                if sub != FULL:
                    return count + sub
            else:
                if want.data == b"$" and got is not None and got.kind is Kind.LIST:
                    pass  # "$" skips a whole list
                else:
                    if got is None or not got.is_astring:
                        return count
                    value = cstr(got.data)
                    expanded = self.expand_input(cstr(want.data), value)
                    if expanded is None:
                        return count
                    if prefix and mi == len(match) - 1:
                        if value[: len(expanded)].lower() != expanded.lower():
                            return count
                    elif value.lower() != expanded.lower():
                        return count
            count += 1
            mi += 1
            ai += 1
        if prefix or ai >= len(args) or (limit is not None and count >= limit):
            return FULL
        return count

    def match_list(self, match: list[Arg], args: list[Arg]) -> int:
        """``test_imap_match_list``: a list, honouring the ``$!`` directives at its start."""
        unordered, chain, noextra = False, 1, -1
        ignores: list[bytes] = []
        bans: list[bytes] = []
        k = 0
        while k < len(match):
            word = match[k].atom()
            if word is None or not word.startswith(b"$!"):
                break
            word = word[2:]
            if word.startswith(b"unordered"):
                unordered = True
                if noextra == -1:
                    noextra = 0
                if word[9:10] == b"=":
                    chain = int(word[10:])
            elif word == b"ordered":
                unordered = False
            elif word == b"extra":
                noextra = 0
            elif word == b"noextra":
                noextra = 1
            elif word.startswith(b"ignore="):
                ignores.append(word[7:].lower())
            elif word.startswith(b"ban="):
                bans.append(word[4:].lower())
            k += 1
        if noextra == -1:
            noextra = 1
        match = match[k:]
        if not unordered:
            return self.match_args(match, args)
        if len(args) % chain != 0:
            return 0
        matched = [False] * len(args)
        found = 0
        for m in range(0, len(match), chain):
            for i in range(0, len(args), chain):
                if self.match_args(match[m : m + chain], args, chain, start=i) == FULL:
                    matched[i] = True
                    break
            else:
                return found
            found += 1
        if noextra > 0 or bans:
            for i in range(0, len(args), chain):
                if matched[i] or not args[i].is_astring:
                    continue
                word = cstr(args[i].data).lower()
                if noextra > 0 and word not in ignores:
                    return found
                if noextra <= 0 and word in bans:
                    return found
        return FULL
