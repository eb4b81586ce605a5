"""Typed SMTP commands, as :mod:`smtp.reader` makes them from command lines (RFC 5321 §4.1).

Every command names its :class:`~smtp.state.Verb`: the state table is checked on the verb
before anything else, so a command with bad arguments is an :class:`Invalid` carrying its
refusal, answered only once the table allowed the verb.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from smtp.params import MailParams, RcptParams
from smtp.replies import Reply
from smtp.state import Verb


@dataclass(frozen=True, slots=True)
class Hello:
    """EHLO or HELO (RFC 5321 §4.1.1.1): ``domain`` as the client gave it."""

    verb: Verb
    domain: str


@dataclass(frozen=True, slots=True)
class Mail:
    """MAIL FROM (RFC 5321 §4.1.1.2): ``sender`` is the mailbox, "" for the null reverse-path."""

    sender: str
    params: MailParams
    verb: ClassVar[Verb] = Verb.MAIL


@dataclass(frozen=True, slots=True)
class Rcpt:
    """RCPT TO (RFC 5321 §4.1.1.3): ``recipient`` is the mailbox (source route dropped)."""

    recipient: str
    params: RcptParams
    verb: ClassVar[Verb] = Verb.RCPT


@dataclass(frozen=True, slots=True)
class Auth:
    """AUTH (RFC 4954 §4): ``initial`` is the initial response as sent (base64 or "=")."""

    mechanism: str  # upper case
    initial: str | None = None
    verb: ClassVar[Verb] = Verb.AUTH


@dataclass(frozen=True, slots=True)
class Simple:
    """A verb whose argument needs no parsing: DATA, RSET, QUIT, STARTTLS (none allowed),
    NOOP, HELP (ignored), VRFY, EXPN (required)."""

    verb: Verb
    argument: str = ""


@dataclass(frozen=True, slots=True)
class Invalid:
    """A known verb with arguments that do not parse: ``reply`` once the table allows ``verb``."""

    verb: Verb
    reply: Reply


Command = Hello | Mail | Rcpt | Auth | Simple | Invalid
