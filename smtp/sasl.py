"""The SASL exchange of SMTP AUTH (RFC 4954 §4) as a small state machine, sans-IO.

:class:`Exchange` holds the wire rules shared by every mechanism: base64 both ways, ``=``
for an empty initial response, ``*`` to cancel, a response that does not decode. A
mechanism (:data:`MECHANISMS`) only sees decoded bytes and answers a :class:`Challenge`
(the session sends ``334`` and reads one more line), :data:`~smtp.backend.Credentials`
for the authenticator, or a reply that ends the exchange.

Adding a mechanism is one class and one table entry. OAUTHBEARER (RFC 7628 §3.1, a GS2
header and ``auth=Bearer`` key/values) and XOAUTH2 (``user=`` then ``auth=Bearer``), parsed by
:mod:`saslwire.bearer` (the one parser, shared with IMAP), give a
:class:`~smtp.backend.TokenCredentials`; when the host refuses the token it hands back the
JSON error, sent as a ``334`` challenge, and :meth:`Exchange.refuse` makes the client's
answer (``%x01``, or anything) end in ``535 5.7.8`` (RFC 7628 §3.2.2).
EXTERNAL (RFC 4422 Appendix A) gives an :class:`~smtp.backend.ExternalCredentials` (the
authzid, empty: none) checked by the host against the client certificate in
``SessionFacts.tls_info``; it is usable only when the handshake gave a verified one. The
listener's configuration (``SessionConfig.mechanisms``)
says which are offered.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from saslwire import bearer
from smtp import replies
from smtp.backend import Credentials, ExternalCredentials, PasswordCredentials, TokenCredentials
from smtp.replies import Reply


@dataclass(frozen=True, slots=True)
class Challenge:
    data: bytes  # sent base64-encoded after ``334 ``


Step = Challenge | Credentials | Reply


class Mechanism(Protocol):
    def start(self, initial: bytes | None) -> Step:
        """The first step: ``initial`` is the decoded initial response, None when not sent."""
        ...

    def respond(self, response: bytes) -> Step:
        """The client's decoded answer to the last challenge."""
        ...


def _utf8(value: bytes) -> str | None:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


class Plain:
    """RFC 4616 §2: ``[authzid] NUL authcid NUL passwd``, UTF-8."""

    def start(self, initial: bytes | None) -> Step:
        return Challenge(b"") if initial is None else self.respond(initial)

    def respond(self, response: bytes) -> Step:
        parts = response.split(b"\x00")
        if len(parts) != 3:
            return replies.SYNTAX_ERROR
        authzid, username, password = (_utf8(p) for p in parts)
        if authzid is None or username is None or password is None:
            return replies.SYNTAX_ERROR
        if authzid and authzid != username:  # RFC 4616 §2: we authorise as oneself only
            return replies.AUTH_FAILED
        return PasswordCredentials(username, password, authzid)


class Login:
    """The LOGIN mechanism (draft-murchison-sasl-login): user name, then password; a user
    name sent as initial response skips the first challenge."""

    def __init__(self) -> None:
        self.username: str | None = None

    def start(self, initial: bytes | None) -> Step:
        return Challenge(b"Username:") if initial is None else self.respond(initial)

    def respond(self, response: bytes) -> Step:
        text = _utf8(response)
        if text is None:
            return replies.SYNTAX_ERROR
        if self.username is None:
            self.username = text
            return Challenge(b"Password:")
        return PasswordCredentials(self.username, text)


class _Bearer:
    """OAUTHBEARER (RFC 7628 §3.1) or XOAUTH2: the response parsed by :mod:`saslwire.bearer`
    (the one parser, shared with IMAP); malformed, ``501 5.5.2``."""

    mechanism = bearer.OAUTHBEARER

    def start(self, initial: bytes | None) -> Step:
        return Challenge(b"") if initial is None else self.respond(initial)

    def respond(self, response: bytes) -> Step:
        try:
            parsed = bearer.parse(self.mechanism, response)
        except bearer.MalformedResponse:
            return replies.AUTH_MALFORMED
        return TokenCredentials(parsed.mechanism, parsed.authzid, parsed.token)


class OAuthBearer(_Bearer):
    """RFC 7628 §3.1: ``n,a=<authzid>,%x01auth=Bearer <token>%x01%x01`` (other pairs, host and
    port, ignored); channel binding (``p=``) is not offered, so it is refused."""

    mechanism = bearer.OAUTHBEARER


class XOAuth2(_Bearer):
    """``user=<address>%x01auth=Bearer <token>%x01%x01``."""

    mechanism = bearer.XOAUTH2


class External:
    """RFC 4422 appendix A: the one message is the authzid (UTF-8, may be empty); without an
    initial response the server sends an empty challenge first."""

    def start(self, initial: bytes | None) -> Step:
        return Challenge(b"") if initial is None else self.respond(initial)

    def respond(self, response: bytes) -> Step:
        authzid = _utf8(response)
        if authzid is None or "\x00" in authzid:
            return replies.AUTH_MALFORMED
        return ExternalCredentials(authzid.strip() or None)


class Refusing:
    """After the error challenge of a refused token (RFC 7628 §3.2.2): whatever the client
    answers (``%x01``, normally), the exchange ends in ``535 5.7.8``."""

    def start(self, initial: bytes | None) -> Step:
        return replies.AUTH_FAILED

    def respond(self, response: bytes) -> Step:
        return replies.AUTH_FAILED


#: mechanism name → a new mechanism state for one exchange.
MECHANISMS: Mapping[str, Callable[[], Mechanism]] = MappingProxyType(
    {"PLAIN": Plain, "LOGIN": Login, "OAUTHBEARER": OAuthBearer, "XOAUTH2": XOAuth2, "EXTERNAL": External})
TOKEN_MECHANISMS = bearer.TOKEN_MECHANISMS  # offered when the host checks access tokens


def _b64(text: bytes) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


class Exchange:
    """One AUTH exchange: :meth:`start` with the AUTH command's initial response, then
    :meth:`respond` with each line the client sends after a ``334``."""

    def __init__(self, mechanism: Mechanism) -> None:
        self.mechanism = mechanism

    def start(self, initial: str | None) -> Step:
        if initial is None:
            return self.mechanism.start(None)
        if initial == "=":  # RFC 4954 §4: an empty initial response
            return self.mechanism.start(b"")
        decoded = _b64(initial.encode("ascii"))
        return replies.AUTH_BAD_BASE64 if decoded is None else self.mechanism.start(decoded)

    def refuse(self) -> None:
        """The host refused the token and its error challenge was sent: the next line ends it."""
        self.mechanism = Refusing()

    def respond(self, line: bytes) -> Step:
        line = line.strip()
        if isinstance(self.mechanism, Refusing):
            return replies.AUTH_FAILED  # RFC 7628 §3.2.2: whatever the answer
        if line == b"*":  # RFC 4954 §4: the client cancels
            return replies.AUTH_CANCELLED
        decoded = _b64(line)
        return replies.AUTH_BAD_BASE64 if decoded is None else self.mechanism.respond(decoded)


def begin(mechanism: str, offered: tuple[str, ...]) -> Exchange | None:
    """A new exchange for ``mechanism`` if it is offered here (else the session answers 504)."""
    factory = MECHANISMS.get(mechanism) if mechanism in offered else None
    return Exchange(factory()) if factory is not None else None
