"""What the SMTP session needs from its host (DESIGN rule 1): values and ``typing.Protocol``s.

``gateway`` implements these (trust list, INS and mailbox decisions through ``routing``,
storage, password checks); :mod:`smtp.testing` has an in-memory implementation. The shell
(:mod:`smtp.server`) builds one :class:`Backend` per connection, so a policy may keep the
state of the current transaction between ``mail``, ``rcpt`` and ``data`` (Go's
``go-smtp`` Backend/Session split); :meth:`Policy.reset` says that transaction is over.

Verdicts are :class:`~smtp.replies.ReplyLike` values (``routing.decide.Verdict`` fits):
a 2yz code accepts, anything else is sent as the refusal. A method that raises is a
failure of the host: the session logs it and answers a temporary failure (``451 4.3.0``,
``454 4.7.0`` for AUTH), never the exception's text (DESIGN rule 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from smtp.params import MailParams, RcptParams
from smtp.replies import ReplyLike

Listener = Literal["mx", "submission", "submissions"]


@dataclass(frozen=True, slots=True)
class TlsFacts:
    """The TLS session as the shell saw it after the handshake."""

    version: str | None = None  # e.g. "TLSv1.3"
    cipher: str | None = None
    peer_certificate: bytes | None = None  # the verified client certificate, DER (None without one)
    peer_dn: str | None = None  # its subject as RFC 4514 text, when the shell's ``tls_facts`` hook gives it
    # A client certificate was presented but did not verify, and the host's TLS context let the
    # handshake complete (issue 17 item 5): why, as the host's reason code (e.g. "expired");
    # ``peer_certificate`` and ``peer_dn`` are then None. The host's policy refuses MAIL FROM.
    peer_problem: str | None = None


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What is known about the client at a point of the session; the session replaces it as
    it learns (EHLO, TLS, AUTH) and passes the current value to every backend call."""

    peer_ip: str  # the client address (the one a trusted PROXY header gave, if any)
    listener: Listener
    tls: bool
    account: str | None = None  # the authenticated account, once AUTH succeeded
    esmtp: bool = True  # EHLO (True) or HELO (False)
    helo: str | None = None  # the EHLO/HELO argument
    tls_info: TlsFacts | None = None  # set when ``tls``


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str  # the forward-path's mailbox (RFC 5321 §4.1.2), source route dropped
    params: RcptParams


@dataclass(frozen=True, slots=True)
class Envelope:
    """One mail transaction: the sender ("" for the null reverse-path) and the recipients
    accepted so far (RFC 5321 §3.3)."""

    sender: str
    params: MailParams
    recipients: tuple[Recipient, ...] = ()


@dataclass(frozen=True, slots=True)
class PasswordCredentials:
    """PLAIN (RFC 4616) and LOGIN; ``authzid`` is "" or equal to ``username`` (no proxy
    authorization: the SASL layer refuses any other)."""

    username: str
    password: str
    authzid: str = ""


@dataclass(frozen=True, slots=True)
class TokenCredentials:
    """OAUTHBEARER (RFC 7628) and XOAUTH2: a bearer token and the mailbox asked for (the SASL
    authzid; None: the token's own). ``repr`` never shows the token."""

    mechanism: str
    authzid: str | None
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ExternalCredentials:
    """EXTERNAL (RFC 4422 appendix A): the mailbox asked for (None: the one the certificate is
    bound to), checked by the host against ``SessionFacts.tls_info.peer_certificate``."""

    authzid: str | None


# The credentials a SASL mechanism gives (smtp.sasl.MECHANISMS).
Credentials = PasswordCredentials | TokenCredentials | ExternalCredentials


@dataclass(frozen=True, slots=True)
class AuthResult:
    account: str | None  # the account now authenticated; None: refused (535)
    throttled: bool = False  # refused without checking, too many failures (454 4.7.0)
    # A refused token: the RFC 7628 §3.2.2 error sent as ``334 <base64>`` first; 535 follows
    # the client's answer.
    challenge: bytes | None = None
    temporary: bool = False  # the token could not be judged (identity provider down): 454 4.7.0


class Authenticator(Protocol):
    async def authenticate(self, facts: SessionFacts, credentials: Credentials) -> AuthResult: ...


class Policy(Protocol):
    """The session's decisions per phase (mox ``smtpserver/analyze.go``): each returns a verdict."""

    async def helo(self, facts: SessionFacts) -> ReplyLike | None:
        """EHLO/HELO (``facts`` carry the new name); None accepts."""
        ...

    async def mail(self, facts: SessionFacts, envelope: Envelope) -> ReplyLike:
        """MAIL FROM, parameters already valid (SIZE within the listener's limit)."""
        ...

    async def rcpt(self, facts: SessionFacts, envelope: Envelope, recipient: Recipient) -> ReplyLike:
        """RCPT TO, within the recipient limit; ``envelope`` holds those accepted before."""
        ...

    async def data(self, facts: SessionFacts, envelope: Envelope, message: bytes) -> ReplyLike:
        """After DATA, before delivery: header rules, DKIM (SPEC §4)."""
        ...

    def reset(self) -> None:
        """The transaction is over (RSET, EHLO/HELO, DATA answered, MAIL refused, STARTTLS,
        connection closed): forget its state."""
        ...


class DeliveryRefused(Exception):
    """Raised by :meth:`Delivery.deliver` when the host stored nothing and refuses the message
    with a reply of the catalogue (e.g. ``452 4.2.2`` mailbox full, RFC 3463 X.2.2), not the
    generic ``451 4.3.0`` of a failure (DESIGN rule 5: the error knows its reply)."""

    def __init__(self, reply: ReplyLike) -> None:
        super().__init__(reply.code)
        self.reply = reply


class Delivery(Protocol):
    async def deliver(self, facts: SessionFacts, envelope: Envelope, message: bytes) -> str:
        """Store/queue ``message`` for every recipient durably and return its id: the client
        gets ``250`` only after it returns (SPEC §7); :class:`DeliveryRefused` answers its
        reply; raising anything else answers ``451 4.3.0``."""
        ...


class BodyHold(Protocol):
    """Room for this session's message in the host's memory budget (issue 15): ``ensure``
    holds at least ``size`` bytes in all (False: no room, after the host's own wait);
    ``room_for`` answers ``SIZE=`` without holding; ``release`` gives it all back."""

    async def room_for(self, size: int) -> bool: ...

    async def ensure(self, size: int) -> bool: ...

    def release(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Backend:
    """One connection's host side. Without an ``authenticator`` AUTH is not offered."""

    policy: Policy
    delivery: Delivery
    authenticator: Authenticator | None = None
    bodies: BodyHold | None = None


def accepted(verdict: ReplyLike) -> bool:
    return 200 <= verdict.code < 300
