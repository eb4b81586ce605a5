"""ESMTP MAIL/RCPT parameters: parsing and validation (pure).

* RFC 5321 §4.1.2 ``esmtp-param = esmtp-keyword ["=" esmtp-value]``; keywords are
  case-insensitive, values keep their case (xtext is case-sensitive).
* RFC 5321 §4.1.1.11: unrecognised parameters get 555.
* RFC 1870 SIZE, RFC 6152 BODY=8BITMIME, RFC 6531 SMTPUTF8, RFC 4954 §5 AUTH=.
* RFC 3461 (DSN): RET, ENVID on MAIL; NOTIFY, ORCPT on RCPT; xtext per §4.

The tokens are the command line's as sent (:mod:`smtp.reader`): xtext is case-sensitive, so
nothing upper-cases them before they get here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from smtp import replies
from smtp.replies import Reply

# RFC 5321 §4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
_KEYWORD_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
# RFC 5321 §4.1.2: esmtp-value = 1*(%d33-60 / %d62-126)
_VALUE_RE = re.compile(r"^[\x21-\x3c\x3e-\x7e]+$")
# RFC 5321 §4.1.2 Atom, used by RFC 3461 §4.2 addr-type
_ATOM_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$")
_HEX = "0123456789ABCDEFabcdef"

MAX_ENVID = 100  # RFC 3461 §4.4
MAX_ORCPT = 500  # RFC 3461 §4.2
MAX_SIZE_DIGITS = 20  # RFC 1870 §4: size-value ::= 1*20DIGIT

NotifyItem = Literal["SUCCESS", "FAILURE", "DELAY"]


class XtextError(ValueError):
    """Malformed xtext (RFC 3461 §4)."""


def xtext_decode(value: str) -> str:
    """RFC 3461 §4: ``xtext = *( xchar / hexchar )``; ``hexchar = "+" 2HEXDIG``.

    The RFC asks for upper-case hex digits; lower case is accepted too (be liberal in
    what you accept).  Decoded characters must be US-ASCII.
    """
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == "+":
            pair = value[i + 1 : i + 3]
            if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                raise XtextError("bad hexchar")
            code = int(pair, 16)
            if code > 0x7F:
                raise XtextError("non-ASCII hexchar")
            out.append(chr(code))
            i += 3
        elif "!" <= c <= "~" and c != "=":
            out.append(c)
            i += 1
        else:
            raise XtextError("character not allowed in xtext")
    return "".join(out)


def xtext_encode(value: str) -> str:
    """RFC 3461 §4: printable ASCII except ``+`` and ``=`` as is, anything else ``+XX``."""
    out: list[str] = []
    for c in value:
        code = ord(c)
        if code > 0x7F:
            raise XtextError("xtext carries US-ASCII only")
        out.append(c if 33 <= code <= 126 and c not in "+=" else f"+{code:02X}")
    return "".join(out)


@dataclass(frozen=True)
class MailParams:
    size: int | None = None
    body: Literal["7BIT", "8BITMIME"] | None = None
    smtputf8: bool = False
    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None  # decoded
    auth: str | None = None  # decoded RFC 4954 §5 AUTH= value ("<>" when unknown)


@dataclass(frozen=True)
class RcptParams:
    notify: frozenset[NotifyItem] | None = None  # None: not given; empty set: NEVER
    orcpt: tuple[str, str] | None = None  # (addr-type lower case, decoded address)


def split_params(tokens: Iterable[str]) -> dict[str, str | None] | Reply:
    """Tokens ``KEY[=VALUE]`` -> {KEY upper case: value or None}; syntax errors -> 501."""
    result: dict[str, str | None] = {}
    for token in tokens:
        keyword, eq, value = token.partition("=")
        if not _KEYWORD_RE.match(keyword) or (eq and not _VALUE_RE.match(value)):
            return replies.SYNTAX_ERROR
        key = keyword.upper()
        if key in result:
            return replies.PARAM_DUPLICATE
        result[key] = value if eq else None
    return result


def parse_mail_params(tokens: Iterable[str], max_size: int) -> MailParams | Reply:
    """Validate MAIL FROM parameters; SIZE above ``max_size`` is refused here (RFC 1870 §6.1)."""
    found = split_params(tokens)
    if isinstance(found, Reply):
        return found
    if set(found) - {"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH"}:
        return replies.MAIL_PARAMS_UNRECOGNIZED
    size: int | None = None
    if "SIZE" in found:
        text = found["SIZE"]
        if text is None or not text.isdigit() or len(text) > MAX_SIZE_DIGITS:
            return replies.SIZE_INVALID
        size = int(text)
        if size > max_size:
            return replies.MESSAGE_TOO_BIG
    body: Literal["7BIT", "8BITMIME"] | None = None
    if "BODY" in found:
        value = (found["BODY"] or "").upper()
        if value == "7BIT":
            body = "7BIT"
        elif value == "8BITMIME":
            body = "8BITMIME"
        else:
            return replies.BODY_INVALID  # BINARYMIME needs CHUNKING (RFC 3030), not offered
    if "SMTPUTF8" in found and found["SMTPUTF8"] is not None:
        return replies.SMTPUTF8_INVALID
    ret: Literal["FULL", "HDRS"] | None = None
    if "RET" in found:  # RFC 3461 §4.3
        value = (found["RET"] or "").upper()
        if value == "FULL":
            ret = "FULL"
        elif value == "HDRS":
            ret = "HDRS"
        else:
            return replies.DSN_PARAM_INVALID
    envid = _envid(found.get("ENVID")) if "ENVID" in found else None
    if isinstance(envid, Reply):
        return envid
    auth: str | None = None
    if "AUTH" in found:  # RFC 4954 §5: AUTH=<> or AUTH=xtext(mailbox)
        raw = found["AUTH"]
        if raw is None:
            return replies.SYNTAX_ERROR
        try:
            auth = raw if raw == "<>" else xtext_decode(raw)
        except XtextError:
            return replies.SYNTAX_ERROR
    return MailParams(size, body, "SMTPUTF8" in found, ret, envid, auth)


def _envid(raw: str | None) -> str | Reply:
    # RFC 3461 §4.4: ENVID=xtext, at most 100 characters, printable US-ASCII once decoded.
    if raw is None or len(raw) > MAX_ENVID:
        return replies.DSN_PARAM_INVALID
    try:
        decoded = xtext_decode(raw)
    except XtextError:
        return replies.DSN_PARAM_INVALID
    if not decoded or not all(" " <= c <= "~" for c in decoded):
        return replies.DSN_PARAM_INVALID
    return decoded


def parse_rcpt_params(tokens: Iterable[str]) -> RcptParams | Reply:
    """Validate RCPT TO parameters (RFC 3461 §4.1 NOTIFY, §4.2 ORCPT)."""
    found = split_params(tokens)
    if isinstance(found, Reply):
        return found
    if set(found) - {"NOTIFY", "ORCPT"}:
        return replies.RCPT_PARAMS_UNRECOGNIZED
    notify: frozenset[NotifyItem] | None = None
    if "NOTIFY" in found:
        parsed = _notify(found["NOTIFY"])
        if parsed is None:
            return replies.DSN_PARAM_INVALID
        notify = parsed
    orcpt: tuple[str, str] | None = None
    if "ORCPT" in found:
        parsed_orcpt = _orcpt(found["ORCPT"])
        if parsed_orcpt is None:
            return replies.DSN_PARAM_INVALID
        orcpt = parsed_orcpt
    return RcptParams(notify, orcpt)


_NOTIFY_ITEMS: dict[str, NotifyItem] = {"SUCCESS": "SUCCESS", "FAILURE": "FAILURE", "DELAY": "DELAY"}


def _notify(raw: str | None) -> frozenset[NotifyItem] | None:
    # RFC 3461 §4.1: "NEVER" alone, or a comma-separated list of SUCCESS, FAILURE, DELAY.
    if not raw:
        return None
    items = raw.upper().split(",")
    if items == ["NEVER"]:
        return frozenset()
    chosen: set[NotifyItem] = set()
    for item in items:
        known = _NOTIFY_ITEMS.get(item)
        if known is None or known in chosen:
            return None  # NEVER combined with others, unknown, empty or repeated item
        chosen.add(known)
    return frozenset(chosen)


def _orcpt(raw: str | None) -> tuple[str, str] | None:
    # RFC 3461 §4.2: ORCPT=addr-type ";" xtext, at most 500 characters.
    if not raw or len(raw) > MAX_ORCPT:
        return None
    addr_type, sep, encoded = raw.partition(";")
    if not sep or not _ATOM_RE.match(addr_type) or not encoded:
        return None
    try:
        return addr_type.lower(), xtext_decode(encoded)
    except XtextError:
        return None
