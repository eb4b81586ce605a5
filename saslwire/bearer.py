"""The client responses of the bearer-token SASL mechanisms, parsed (pure; no token is checked here).

- OAUTHBEARER, RFC 7628 §3.1: a GS2 header (RFC 5801 §4) ``n,a=<authzid>,`` then ``%x01``
  separated key/value pairs, ``auth=Bearer <token>`` among them (others, such as ``host`` and
  ``port``, ignored), ended by ``%x01%x01``. The authzid's ``=2C`` / ``=3D`` escapes are undone
  (RFC 5801 §4 ``saslname``); channel binding (``p=``) is not offered, so a client asking for it
  is refused.
- XOAUTH2 (Google's, as MSSanté clients send it): ``user=<address>%x01auth=Bearer <token>%x01%x01``.

The authzid names the mailbox to open (``None``: the token's own personal mailbox). MalformedResponse
input raises :class:`MalformedResponse` (a :class:`ValueError`) with a short reason, never the token;
each protocol translates it into its own reply (SMTP ``501 5.5.2``, IMAP ``BAD``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

OAUTHBEARER: Final = "OAUTHBEARER"
XOAUTH2: Final = "XOAUTH2"
TOKEN_MECHANISMS: Final = (OAUTHBEARER, XOAUTH2)
"""The mechanisms offered when the host checks access tokens."""
KVSEP: Final = b"\x01"  # RFC 7628 §3.1 kvsep
MAX_RESPONSE: Final = 16 * 1024
"""Longest response parsed (an SMTP AUTH line, 12288 base64 octets, decodes to less)."""
_KEY = re.compile(rb"[A-Za-z]+")  # RFC 7628 §3.1 key = 1*(ALPHA)
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*)")  # RFC 6750 §2.1 b64token
_BAD_ESCAPE = re.compile(r"=(?!2C|3D)")


class MalformedResponse(ValueError):
    """The response does not follow the mechanism's syntax (the reason names no token)."""


@dataclass(frozen=True, slots=True)
class BearerResponse:
    mechanism: str
    authzid: str | None  # the mailbox asked for; None: the token's own
    token: str

    def __repr__(self) -> str:  # never the token, even in a traceback
        return f"BearerResponse({self.mechanism}, {self.authzid!r})"


def _pairs(data: bytes) -> dict[str, str]:
    """RFC 7628 §3.1 ``*kvpair kvsep``: ``key=value%x01`` ... then ``%x01`` (a key once each)."""
    if data == KVSEP:
        return {}
    if not data.endswith(KVSEP + KVSEP):
        raise MalformedResponse("not ended by two kvsep")
    pairs: dict[str, str] = {}
    for item in data[:-2].split(KVSEP):
        key, eq, value = item.partition(b"=")
        if not eq or not _KEY.fullmatch(key) or key.decode() in pairs:
            raise MalformedResponse("bad key/value pair")
        text = _utf8(value)  # the error is raised outside the handler: no context holding the token
        if text is None:
            raise MalformedResponse("value not UTF-8")
        pairs[key.decode()] = text
    return pairs


def _token(pairs: dict[str, str]) -> str:
    """RFC 7628 §3.1 ``auth-value``: ``Bearer`` (any case), spaces, then an RFC 6750 b64token."""
    match = _BEARER.fullmatch(pairs.get("auth", ""))
    if match is None:
        raise MalformedResponse("no auth=Bearer value")
    return match.group(1)


def _saslname(value: str) -> str:
    """RFC 5801 §4: ``=2C`` is a comma, ``=3D`` an equals sign; any other ``=`` is an error."""
    if _BAD_ESCAPE.search(value) or "," in value:
        raise MalformedResponse("bad saslname")
    return value.replace("=2C", ",").replace("=3D", "=")


def parse_oauthbearer(data: bytes) -> BearerResponse:
    """RFC 7628 §3.1 ``client-resp`` (the initial one; a lone ``%x01`` only answers an error)."""
    if len(data) > MAX_RESPONSE:
        raise MalformedResponse("too long")
    header, sep, rest = data.partition(KVSEP)
    if not sep:
        raise MalformedResponse("no kvsep")
    gs2 = _utf8(header)
    if gs2 is None:
        raise MalformedResponse("header not UTF-8")
    parts = gs2.split(",")
    if len(parts) != 3 or parts[2] != "" or parts[0] not in ("n", "y"):
        raise MalformedResponse("bad GS2 header")  # "p=": channel binding, not offered (RFC 7628 §3.1)
    authzid: str | None = None
    if parts[1]:
        if not parts[1].startswith("a="):
            raise MalformedResponse("bad GS2 authzid")
        authzid = _saslname(parts[1][2:]) or None
    return BearerResponse(OAUTHBEARER, authzid, _token(_pairs(rest)))


def parse_xoauth2(data: bytes) -> BearerResponse:
    """``user=<address>%x01auth=Bearer <token>%x01%x01``."""
    if len(data) > MAX_RESPONSE:
        raise MalformedResponse("too long")
    pairs = _pairs(data)
    user = pairs.get("user", "").strip()
    if not user:
        raise MalformedResponse("no user")
    return BearerResponse(XOAUTH2, user, _token(pairs))


def parse(mechanism: str, data: bytes) -> BearerResponse:
    """The response of ``mechanism`` (one of :data:`TOKEN_MECHANISMS`)."""
    if mechanism == OAUTHBEARER:
        return parse_oauthbearer(data)
    if mechanism == XOAUTH2:
        return parse_xoauth2(data)
    raise MalformedResponse(f"not a bearer mechanism: {mechanism}")


def _utf8(raw: bytes) -> str | None:
    """``raw`` decoded, or None (never an exception whose context would carry the bytes)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
