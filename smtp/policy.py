"""The listener's SMTP policy that does not need routing (SPEC §6), pure.

:func:`conditions` turns the session facts and the listener's limits into the flags the
state table (:mod:`smtp.state`) reads: AUTH only on submission, never before TLS unless
the loopback development relaxation is on, MAIL on submission only once authenticated.
The ``check_*`` functions answer one verb's needs from that table (``None``: go on, a
:class:`~smtp.replies.Reply`: send it instead) outside a session; :class:`smtp.session.Session`
reads the table itself, and the gateway's listeners run on it. Trust-list, INS and mailbox
decisions are the gateway's (``routing.decide``) and reach us as reply values.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from smtp import replies
from smtp.backend import Listener, SessionFacts
from smtp.params import (
    MailParams,
    RcptParams,
    XtextError,
    parse_mail_params,
    parse_rcpt_params,
    split_params,
    xtext_decode,
    xtext_encode,
)
from smtp.replies import Reply
from smtp.state import Conditions, Verb, unmet
from smtp.throttle import ConnectionLimiter, client_key

DEFAULT_MAX_MESSAGE_SIZE = 25 * 1024 * 1024  # SPEC §6: 25 MB, advertised with SIZE (RFC 1870)
DEFAULT_MAX_RECIPIENTS = 100  # RFC 5321 §4.5.3.1.8: at least 100 must be accepted


@dataclass(frozen=True)
class Limits:
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_recipients: int = DEFAULT_MAX_RECIPIENTS
    # Development relaxation (SPEC §6): AUTH without TLS, honoured for loopback peers only.
    allow_plaintext_auth_on_loopback: bool = False


DEFAULT_LIMITS = Limits()


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _plaintext_ok(facts: SessionFacts, limits: Limits) -> bool:
    return facts.tls or (limits.allow_plaintext_auth_on_loopback and _is_loopback(facts.peer_ip))


def conditions(facts: SessionFacts, limits: Limits = DEFAULT_LIMITS, *, starttls_offered: bool = False,
               auth_available: bool = True) -> Conditions:
    """The state table's flags for this session; ``auth_available``: the host can check credentials."""
    submission = facts.listener != "mx"
    return Conditions(tls=facts.tls, authenticated=facts.account is not None, esmtp=facts.esmtp,
                      starttls_offered=starttls_offered, auth_offered=submission and auth_available,
                      privacy=_plaintext_ok(facts, limits), mail_needs_auth=submission)


def auth_offered(facts: SessionFacts, limits: Limits = DEFAULT_LIMITS) -> bool:
    """Whether EHLO advertises AUTH: never on MX, never before TLS (RFC 4954 §4, SPEC §6)."""
    c = conditions(facts, limits)
    return c.auth_offered and c.esmtp and c.privacy


def check_auth_allowed(facts: SessionFacts, limits: Limits = DEFAULT_LIMITS) -> Reply | None:
    """May the client issue AUTH now? (RFC 4954 §4, §6; the table's needs for AUTH)."""
    return unmet(Verb.AUTH, conditions(facts, limits, starttls_offered=True))


def check_starttls(facts: SessionFacts, pending_input: bytes = b"") -> Reply | None:
    """May the client issue STARTTLS now? (RFC 3207 §4).

    ``pending_input`` is what the client already sent after the STARTTLS line: anything
    there is a command injection attempt (CVE-2011-0411 class) and must never be
    executed inside the TLS session, so the command is refused.
    """
    refused = unmet(Verb.STARTTLS, conditions(facts, starttls_offered=True))
    if refused is not None:
        return refused
    return replies.STARTTLS_PIPELINED if pending_input else None


def check_mail_allowed(facts: SessionFacts, limits: Limits = DEFAULT_LIMITS) -> Reply | None:
    """Session-level preconditions for MAIL FROM on the submission listeners (RFC 6409 §4.3);
    on MX, trust, TLS and certificate checks are routing's (routing.decide)."""
    return unmet(Verb.MAIL, conditions(facts, limits))


def check_mail_params(params: Iterable[str], limits: Limits = DEFAULT_LIMITS) -> Reply | None:
    """MAIL FROM parameters: SIZE over the limit -> 552 5.3.4, bad DSN -> 501, unknown -> 555."""
    result = parse_mail_params(params, limits.max_message_size)
    return result if isinstance(result, Reply) else None


def check_rcpt_params(params: Iterable[str]) -> Reply | None:
    """RCPT TO parameters: NOTIFY / ORCPT per RFC 3461, anything else -> 555."""
    result = parse_rcpt_params(params)
    return result if isinstance(result, Reply) else None


def check_recipient_count(accepted: int, limits: Limits = DEFAULT_LIMITS) -> Reply | None:
    """Before accepting one more recipient when ``accepted`` already are (RFC 5321 §4.5.3.1.10)."""
    return replies.TOO_MANY_RECIPIENTS if accepted >= limits.max_recipients else None


def check_message_size(size: int, limits: Limits = DEFAULT_LIMITS) -> Reply | None:
    return replies.MESSAGE_TOO_BIG if size > limits.max_message_size else None


__all__ = [
    "DEFAULT_LIMITS",
    "ConnectionLimiter",
    "Limits",
    "Listener",
    "MailParams",
    "RcptParams",
    "SessionFacts",
    "XtextError",
    "auth_offered",
    "check_auth_allowed",
    "check_mail_allowed",
    "check_mail_params",
    "check_message_size",
    "check_rcpt_params",
    "check_recipient_count",
    "check_starttls",
    "client_key",
    "conditions",
    "parse_mail_params",
    "parse_rcpt_params",
    "split_params",
    "xtext_decode",
    "xtext_encode",
]
