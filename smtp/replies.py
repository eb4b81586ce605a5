"""The SMTP reply catalogue: every wire text the ``smtp`` package sends (DESIGN rule 6).

Routing refusals (trust, INS, mailbox state) live in ``routing.reasons`` and reach the
SMTP layer as plain values through :class:`ReplyLike`; this module holds the replies
the ``smtp`` package gives on its own: greeting, sequence, TLS, AUTH, limits, syntax,
smuggling. The few lines that carry a value are built here too: the greeting and the
EHLO/HELO reply (our host name, the EHLO keywords), the SASL challenge (RFC 4954 §4) and
the queue id of a stored message.

Reply codes per RFC 5321 §4.2; enhanced status codes per RFC 3463. ENHANCEDSTATUSCODES is
advertised, so every 2yz/4yz/5yz reply carries one (RFC 2034 §3), except the greeting
and the EHLO/HELO reply; the 3yz intermediate replies (354, 334) carry none either.
Texts are plain words and never carry internal details (DESIGN rule 5).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol


class ReplyLike(Protocol):
    """Anything carrying an SMTP reply, e.g. a ``routing.decide.Verdict`` passed by the gateway."""

    @property
    def code(self) -> int: ...

    @property
    def enhanced(self) -> str: ...

    @property
    def text(self) -> str: ...


def format_reply(reply: ReplyLike) -> str:
    """The reply line without CRLF: ``<code> [<enhanced> ]<text>`` (RFC 5321 §4.2, RFC 2034 §4)."""
    text = " ".join(reply.text.split())  # never let CR/LF into a reply line
    if reply.enhanced:
        return f"{reply.code} {reply.enhanced} {text}"
    return f"{reply.code} {text}"


@dataclass(frozen=True)
class Reply:
    code: int
    enhanced: str
    text: str

    def line(self) -> str:
        return format_reply(self)

    def with_text(self, text: str) -> Reply:
        return Reply(self.code, self.enhanced, text)

    @property
    def is_positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def closes_connection(self) -> bool:
        # RFC 5321 §3.8: 421 means the service is closing the transmission channel.
        return self.code in (221, 421)


# --- session (RFC 5321 §4.2, §4.3) ---------------------------------------------------------
GREETING = Reply(220, "", "ESMTP service ready")  # RFC 5321 §4.3.1; see greeting()
EHLO_OK = Reply(250, "", "hello")  # RFC 5321 §4.1.1.1 ehlo-greet; see ehlo()
OK = Reply(250, "2.0.0", "OK")  # NOOP, RSET
SENDER_OK = Reply(250, "2.1.0", "sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "recipient OK")
START_DATA = Reply(354, "", "end data with <CR><LF>.<CR><LF>")
STORED = Reply(250, "2.0.0", "message accepted for delivery")  # see stored()
CLOSING = Reply(221, "2.0.0", "closing connection")  # QUIT
SHUTTING_DOWN = Reply(421, "4.3.2", "service shutting down, try again later")
TIMEOUT = Reply(421, "4.4.2", "timeout, closing connection")  # RFC 5321 §4.5.3.2
TEMPORARY_FAILURE = Reply(451, "4.3.0", "temporary failure, please retry")  # RFC 5321 §4.2.3
# RFC 5321 §3.5.3: no address enumeration; 252 "cannot VRFY user, but will accept message".
CANNOT_VERIFY = Reply(252, "2.5.0", "cannot verify users")
NOT_IMPLEMENTED = Reply(502, "5.5.1", "command not implemented")  # EXPN (RFC 5321 §3.5.3, §4.2.4)
# RFC 5321 §4.1.1.8; the verbs of smtp.state.TABLE that are implemented (a test checks it).
HELP = Reply(214, "2.0.0", "commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET STARTTLS VRFY")

# --- sequence (RFC 5321 §4.1.4, §4.3.2: 503 bad sequence of commands) -----------------------
NEED_HELO = Reply(503, "5.5.1", "send EHLO or HELO first")
NEED_MAIL = Reply(503, "5.5.1", "need MAIL command first")
NEED_RCPT = Reply(503, "5.5.1", "need RCPT command first")
NESTED_MAIL = Reply(503, "5.5.1", "nested MAIL command")
TRANSACTION_IN_PROGRESS = Reply(503, "5.5.1", "not permitted during a mail transaction")  # RFC 4954 §4
BAD_SEQUENCE = Reply(503, "5.5.1", "bad sequence of commands")  # AUTH after HELO (RFC 4954 §3)

# --- TLS (RFC 3207) ---------------------------------------------------------------------------
STARTTLS_READY = Reply(220, "2.0.0", "ready to start TLS")
TLS_REQUIRED = Reply(530, "5.7.0", "must issue STARTTLS first")  # RFC 3207 §4
TLS_NOT_AVAILABLE = Reply(454, "4.7.0", "TLS not available, try again later")  # RFC 3207 §4
TLS_ALREADY_ACTIVE = Reply(503, "5.5.1", "TLS already active")
# STARTTLS command injection (CVE-2011-0411 class): data pipelined after STARTTLS.
STARTTLS_PIPELINED = Reply(554, "5.5.1", "no commands may follow STARTTLS before the TLS handshake")

# --- AUTH (RFC 4954) --------------------------------------------------------------------------
AUTH_SUCCESS = Reply(235, "2.7.0", "authentication successful")  # RFC 4954 §6
AUTH_FAILED = Reply(535, "5.7.8", "authentication credentials invalid")  # RFC 4954 §6
AUTH_REQUIRED = Reply(530, "5.7.0", "authentication required")  # RFC 4954 §6
AUTH_ENCRYPTION_REQUIRED = Reply(
    538, "5.7.11", "encryption required for requested authentication mechanism"
)  # RFC 4954 §6, RFC 5248
AUTH_TOO_MANY_FAILURES = Reply(454, "4.7.0", "too many authentication failures, try again later")
AUTH_TOO_MANY_FAILURES_CLOSE = Reply(421, "4.7.0", "too many authentication failures, closing connection")
AUTH_TEMPORARY_FAILURE = Reply(454, "4.7.0", "temporary authentication failure")  # RFC 4954 §6
AUTH_ALREADY = Reply(503, "5.5.1", "already authenticated")  # RFC 4954 §4
AUTH_NOT_AVAILABLE = Reply(503, "5.5.1", "authentication is not available on this port")
AUTH_MECHANISM_UNSUPPORTED = Reply(504, "5.5.4", "unrecognized authentication type")  # RFC 4954 §4
AUTH_CANCELLED = Reply(501, "5.7.0", "authentication cancelled")  # RFC 4954 §4 "*"
AUTH_BAD_BASE64 = Reply(501, "5.5.2", "cannot decode base64")  # RFC 4954 §4
AUTH_MALFORMED = Reply(501, "5.5.2", "malformed authentication response")  # RFC 7628 §3.1 syntax
AUTH_LINE_TOO_LONG = Reply(500, "5.5.6", "authentication exchange line is too long")  # RFC 4954 §4

# --- limits ------------------------------------------------------------------------------------
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "message size exceeds fixed maximum message size")  # RFC 1870 §6
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "too many recipients")  # RFC 5321 §4.5.3.1.10
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "too many connections from your address, try again later")
SERVICE_BUSY = Reply(421, "4.7.0", "too many connections, try again later")  # the listener's cap
# RFC 3463 X.3.1 "mail system full"; RFC 1870 §6.2, RFC 5321 §4.2.3: 452 is temporary.
INSUFFICIENT_STORAGE = Reply(452, "4.3.1", "insufficient system storage, try again later")
# RFC 3463 X.2.2 "mailbox full" (RFC 9208 quota): temporary, the sender keeps the message and
# retries (at RCPT for a mailbox already full; after DATA when no recipient can take it).
MAILBOX_FULL = Reply(452, "4.2.2", "mailbox full, try again later")
LINE_TOO_LONG = Reply(500, "5.5.2", "line too long")  # RFC 5321 §4.5.3.1.4-6
# SMTP smuggling: like Postfix's smtpd_forbid_bare_newline ("bare <LF> received"), with
# RFC 3463 X.5.2 "syntax error"; the message is refused as a whole.
BARE_LINE_ENDING = Reply(550, "5.5.2", "bare <LF> or <CR> received, message refused")
BARE_CR = Reply(550, "5.5.2", "bare <CR> received, message refused")  # bare LF normalised (issue 17)
# RFC 5322 §2.2 / RFC 6152 §2: no NUL in a message; RFC 3463 X.6.0 "other media error".
NUL_IN_MESSAGE = Reply(550, "5.6.0", "NUL character in message, message refused")

# --- syntax (RFC 5321 §4.2.2, §4.1.1.11) -------------------------------------------------------
COMMAND_UNRECOGNIZED = Reply(500, "5.5.1", "command not recognized")
# RFC 6531: UTF-8 only in the paths of MAIL and RCPT, and valid UTF-8 there.
NON_ASCII_COMMAND = Reply(500, "5.5.2", "non-ASCII characters in a command")
INVALID_UTF8 = Reply(500, "5.5.2", "invalid UTF-8 in a command")
TOO_MANY_UNRECOGNIZED = Reply(421, "4.7.0", "too many unrecognized commands, closing connection")
SYNTAX_ERROR = Reply(501, "5.5.4", "syntax error in parameters or arguments")
MAIL_SYNTAX = Reply(501, "5.5.4", "syntax: MAIL FROM:<address> [parameters]")
RCPT_SYNTAX = Reply(501, "5.5.4", "syntax: RCPT TO:<address> [parameters]")
MAIL_PARAMS_UNRECOGNIZED = Reply(555, "5.5.4", "MAIL FROM parameters not recognized or not implemented")
RCPT_PARAMS_UNRECOGNIZED = Reply(555, "5.5.4", "RCPT TO parameters not recognized or not implemented")
PARAM_DUPLICATE = Reply(501, "5.5.4", "parameter given more than once")
SIZE_INVALID = Reply(501, "5.5.4", "invalid SIZE parameter")  # RFC 1870 §6
BODY_INVALID = Reply(501, "5.5.4", "BODY must be 7BIT or 8BITMIME")  # RFC 6152 §2
SMTPUTF8_INVALID = Reply(501, "5.5.4", "SMTPUTF8 takes no value")  # RFC 6531 §3.4
DSN_PARAM_INVALID = Reply(501, "5.5.4", "invalid DSN parameter")  # RFC 3461 §4

# --- addresses: the backend's policy gives these (RFC 5321 §4.1.2, RFC 3463 X.1.3, X.7.1) ---------
MALFORMED_ADDRESS = Reply(553, "5.1.3", "malformed address")
# RFC 6531 §3.5 / RFC 3463 X.6.7: a UTF-8 address in a transaction that did not say SMTPUTF8.
UTF8_ADDRESS_WITHOUT_SMTPUTF8 = Reply(553, "5.6.7", "non-ASCII address without SMTPUTF8")
NULL_SENDER_NOT_ALLOWED = Reply(550, "5.7.1", "the empty sender address <> is not accepted here")


def greeting(hostname: str) -> bytes:
    """``220 <host> ESMTP service ready`` (RFC 5321 §4.3.1, §4.1.1.1: no enhanced code)."""
    return f"{GREETING.code} {hostname} {GREETING.text}\r\n".encode("ascii", "replace")


def ehlo(hostname: str, keywords: Sequence[str]) -> bytes:
    """The EHLO reply: our name and greeting, then one keyword a line (RFC 5321 §4.1.1.1,
    §4.2.1 multiline form); HELO passes no keywords (one line)."""
    lines = [f"{hostname} {EHLO_OK.text}", *keywords]
    last = len(lines) - 1
    return "".join(f"{EHLO_OK.code}{' ' if i == last else '-'}{text}\r\n" for i, text in enumerate(lines)).encode(
        "ascii", "replace")


def challenge(data: bytes) -> bytes:
    """A SASL challenge: ``334 <base64>`` (RFC 4954 §4; an empty challenge keeps the space)."""
    return b"334 " + base64.b64encode(data) + b"\r\n"


def stored(message_id: str) -> Reply:
    """``250 2.0.0 message accepted for delivery (id ...)``: only after the durable commit (SPEC §7)."""
    safe = "".join(c for c in message_id if c.isalnum() or c in "-_.")[:64]
    return STORED.with_text(f"{STORED.text} (id {safe})") if safe else STORED


_ALL: dict[str, Reply] = {k: v for k, v in dict(globals()).items() if isinstance(v, Reply)}

#: Every protocol-level reply by its constant name.
CATALOGUE: Mapping[str, Reply] = MappingProxyType(_ALL)
