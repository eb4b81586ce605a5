"""RFC 5322 §3.4 address lists to ENVELOPE addresses (RFC 3501 §7.4.2).

A small tolerant tokenizer: display names (quoted or not) are kept as written (RFC 2047
encoded-words are not decoded), groups become the RFC 3501 group markers, source routes
go to ``adl``. Comments (RFC 5322 §3.2.2) are never part of an address: inside one
(``<user (c)@ (c) host>``) they are dropped, and after a bare addr-spec without display
name (``user@host (Real Name)``, the old RFC 822 style) the last one becomes the name, as
Dovecot reads it (imaptest's fetch-envelope and search-addresses tests).
"""

from __future__ import annotations

from imap.proto.structure import EnvelopeAddress

_SPECIALS = '()<>,;:"'
MAX_ADDRESSES = 1000


def _quoted(s: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    i += 1
    while i < len(s) and s[i] != '"':
        if s[i] == "\\" and i + 1 < len(s):
            i += 1
        out.append(s[i])
        i += 1
    return "".join(out), i + 1


def _comment(s: str, i: int) -> tuple[str, int]:
    """The text of the comment at ``s[i] == "("`` (quoted-pairs undone, nested parentheses
    kept) and the index after it."""
    depth = 0
    out: list[str] = []
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
            continue
        if ch == "(":
            depth += 1
            if depth == 1:
                i += 1
                continue
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return "".join(out).strip(), i + 1
        out.append(ch)
        i += 1
    return "".join(out).strip(), i


def _without_comments(s: str) -> str:
    """``s`` with its comments removed (quoted strings kept as they are)."""
    out: list[str] = []
    i = 0
    while i < len(s):
        if s[i] == '"':
            end = _quoted(s, i)[1]
            out.append(s[i:end])
            i = end
        elif s[i] == "(":
            i = _comment(s, i)[1]
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _addr_spec(spec: str, name: str | None, adl: str | None = None) -> EnvelopeAddress:
    spec = spec.strip()
    mailbox, at, host = spec.rpartition("@")
    if not at:
        mailbox, host = spec, ""
    mailbox, host = mailbox.strip(), host.strip()  # CFWS around "@" (RFC 5322 §3.4.1)
    if mailbox.startswith('"') and mailbox.endswith('"') and len(mailbox) > 1:
        mailbox = mailbox[1:-1]
    return EnvelopeAddress(name or None, adl, mailbox, host)


def _angle(inside: str, name: str | None) -> EnvelopeAddress:
    inside = _without_comments(inside).strip()
    adl = None
    if inside.startswith("@") and ":" in inside:
        adl, inside = inside.split(":", 1)
    return _addr_spec(inside, name, adl)


def parse_address_list(value: str) -> tuple[EnvelopeAddress, ...]:
    out: list[EnvelopeAddress] = []
    words: list[str] = []
    comment: list[str] = []  # the last comment since the current address began
    in_group = False
    i, n = 0, len(value)

    def flush() -> None:
        if words:
            out.append(_addr_spec("".join(words), comment[-1] if comment else None))
            words.clear()
        comment.clear()

    while i < n and len(out) < MAX_ADDRESSES:
        ch = value[i]
        if ch == '"':
            text, i = _quoted(value, i)
            words.append(f'"{text}"' if i < n and value[i : i + 1] == "@" else text)
        elif ch == "(":
            text, i = _comment(value, i)
            comment[:] = [text] if text else []
        elif ch == "<":
            close = value.find(">", i)
            close = n if close < 0 else close
            out.append(_angle(value[i + 1 : close].strip(), " ".join(words) or None))
            words.clear()
            comment.clear()
            i = close + 1
        elif ch == ":" and not in_group:
            out.append(EnvelopeAddress(None, None, " ".join(words), None))
            words.clear()
            comment.clear()
            in_group = True
            i += 1
        elif ch == ";" and in_group:
            flush()
            out.append(EnvelopeAddress(None, None, None, None))
            in_group = False
            i += 1
        elif ch in ",;":
            flush()
            i += 1
        elif ch.isspace():
            i += 1
        else:
            start = i
            while i < n and value[i] not in _SPECIALS and not value[i].isspace():
                i += 1
            words.append(value[start:i])
            if i == start:
                i += 1
    flush()
    if in_group:
        out.append(EnvelopeAddress(None, None, None, None))
    return tuple(out)
