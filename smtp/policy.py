"""The listener's SMTP policy that does not need routing (SPEC §6), pure.

:func:`conditions` turns the session facts and the listener's limits into the flags the
state table (:mod:`smtp.state`) reads: AUTH only on submission, never before TLS unless
the loopback development relaxation is on, MAIL on submission only once authenticated;
:func:`check_recipient_count` is the recipient limit. :class:`smtp.session.Session` applies
both; nothing else checks them again. Trust-list, INS and mailbox decisions are the
gateway's (``routing.decide``) and reach us as reply values.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from smtp import replies
from smtp.backend import Listener, SessionFacts
from smtp.replies import Reply
from smtp.state import Conditions

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


def check_recipient_count(accepted: int, limits: Limits = DEFAULT_LIMITS) -> Reply | None:
    """Before accepting one more recipient when ``accepted`` already are (RFC 5321 §4.5.3.1.10)."""
    return replies.TOO_MANY_RECIPIENTS if accepted >= limits.max_recipients else None


__all__ = ["DEFAULT_LIMITS", "Limits", "Listener", "SessionFacts", "check_recipient_count", "conditions"]
