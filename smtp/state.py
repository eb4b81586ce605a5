"""THE SMTP state machine: one table of verbs × phases (h11 ``_state.py`` style, DESIGN rule 3).

A session is in one :class:`Phase` (RFC 5321 §3.3, §4.1.4): connected (no EHLO/HELO yet),
greeted, in a mail transaction (MAIL accepted), with recipients (RCPT accepted). Beside
the phase it carries flags (:class:`Conditions`): TLS, authenticated, EHLO rather than
HELO, and what its listener offers. :data:`TABLE` says, for every verb, in which phases
it is allowed (and the reply when it is not), which conditions it needs (and the reply
when one is not met), and where a positive reply takes the session. Anything else is a
protocol error: unknown verbs are answered by the command reader (``500 5.5.1``).

The checks run in this order: phase, then needs in the order listed; the first refusal is
the answer. Argument syntax is checked only after the table allowed the verb (Postfix
answers ``503`` before looking at arguments, as here). The DATA and AUTH exchanges that
follow ``354`` and ``334`` are not commands: the session reads them in its own modes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from smtp import replies
from smtp.replies import Reply


class Phase(enum.Enum):
    __hash__ = object.__hash__  # members are singletons: identity hashing, in C (Enum's is Python code)

    CONNECTED = "connected"  # greeting sent, no EHLO/HELO yet (or again after STARTTLS, RFC 3207 §4.2)
    GREETED = "greeted"  # EHLO/HELO accepted, no transaction
    MAIL = "mail"  # MAIL accepted (RFC 5321 §4.1.1.2)
    RCPT = "rcpt"  # at least one RCPT accepted (RFC 5321 §4.1.1.3)


class Verb(enum.Enum):
    __hash__ = object.__hash__

    HELO = "HELO"
    EHLO = "EHLO"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    RSET = "RSET"
    NOOP = "NOOP"
    QUIT = "QUIT"
    VRFY = "VRFY"
    EXPN = "EXPN"
    HELP = "HELP"
    STARTTLS = "STARTTLS"  # RFC 3207
    AUTH = "AUTH"  # RFC 4954


@dataclass(frozen=True, slots=True)
class Conditions:
    """The session's flags, as the table reads them."""

    tls: bool = False
    authenticated: bool = False
    esmtp: bool = False  # the session greeted with EHLO (not HELO)
    starttls_offered: bool = False  # the listener has a STARTTLS context
    auth_offered: bool = False  # the listener takes AUTH (submission; never MX, SPEC §6)
    privacy: bool = False  # TLS, or the loopback development relaxation (SPEC §6)
    mail_needs_auth: bool = False  # submission: MAIL only once authenticated (RFC 6409 §4.3)


class Need(enum.Enum):
    """A condition a verb needs; :data:`NEEDS` holds its test and the reply when it fails."""

    __hash__ = object.__hash__

    NO_TLS = "no TLS yet"
    STARTTLS_OFFERED = "STARTTLS offered"
    AUTH_OFFERED = "AUTH offered"
    ESMTP = "EHLO, not HELO"
    NOT_AUTHENTICATED = "not authenticated yet"
    PRIVACY_FOR_AUTH = "TLS before AUTH"
    PRIVACY_FOR_MAIL = "TLS before MAIL on submission"
    AUTHENTICATED_FOR_MAIL = "AUTH before MAIL on submission"


NEEDS: Mapping[Need, tuple[Callable[[Conditions], bool], Reply]] = MappingProxyType({
    Need.NO_TLS: (lambda c: not c.tls, replies.TLS_ALREADY_ACTIVE),  # RFC 3207 §4.2
    Need.STARTTLS_OFFERED: (lambda c: c.starttls_offered, replies.TLS_NOT_AVAILABLE),
    Need.AUTH_OFFERED: (lambda c: c.auth_offered, replies.AUTH_NOT_AVAILABLE),
    Need.ESMTP: (lambda c: c.esmtp, replies.BAD_SEQUENCE),  # RFC 4954 §3: an EHLO extension
    Need.NOT_AUTHENTICATED: (lambda c: not c.authenticated, replies.AUTH_ALREADY),  # RFC 4954 §4
    Need.PRIVACY_FOR_AUTH: (lambda c: c.privacy, replies.AUTH_ENCRYPTION_REQUIRED),  # RFC 4954 §4, §6
    Need.PRIVACY_FOR_MAIL: (lambda c: c.privacy or not c.mail_needs_auth, replies.TLS_REQUIRED),  # RFC 3207 §4
    Need.AUTHENTICATED_FOR_MAIL: (lambda c: c.authenticated or not c.mail_needs_auth, replies.AUTH_REQUIRED),
})


@dataclass(frozen=True, slots=True)
class Rule:
    refused: Mapping[Phase, Reply]  # phases where the verb is not allowed, with the reply
    needs: tuple[Need, ...] = ()
    moves: Mapping[Phase, Phase] = field(default_factory=dict)  # phase after a positive reply (absent: unchanged)
    implemented: bool = True  # False: known verb, answered 502 (RFC 5321 §4.2.4)


_C, _G, _M, _R = Phase.CONNECTED, Phase.GREETED, Phase.MAIL, Phase.RCPT
_ALL = (_C, _G, _M, _R)


def _refused(**by_phase: Reply) -> Mapping[Phase, Reply]:
    return MappingProxyType({Phase[name.upper()]: reply for name, reply in by_phase.items()})


def _moves(*pairs: tuple[Phase, Phase]) -> Mapping[Phase, Phase]:
    return MappingProxyType(dict(pairs))


_IN_TRANSACTION = _refused(mail=replies.TRANSACTION_IN_PROGRESS, rcpt=replies.TRANSACTION_IN_PROGRESS)

#: verb → rule: the single source of truth for "is this command valid now, and what then?".
TABLE: Mapping[Verb, Rule] = MappingProxyType({
    # RFC 5321 §4.1.4: EHLO/HELO anywhere; in a transaction it resets it first (as RSET).
    Verb.EHLO: Rule(_refused(), moves=_moves(*((p, _G) for p in _ALL))),
    Verb.HELO: Rule(_refused(), moves=_moves(*((p, _G) for p in _ALL))),
    # RFC 5321 §4.1.1.2 MAIL starts a transaction; nested MAIL is refused (§4.1.4).
    Verb.MAIL: Rule(_refused(connected=replies.NEED_HELO, mail=replies.NESTED_MAIL, rcpt=replies.NESTED_MAIL),
                    needs=(Need.PRIVACY_FOR_MAIL, Need.AUTHENTICATED_FOR_MAIL), moves=_moves((_G, _M))),
    # RFC 5321 §4.1.1.3
    Verb.RCPT: Rule(_refused(connected=replies.NEED_HELO, greeted=replies.NEED_MAIL),
                    moves=_moves((_M, _R), (_R, _R))),
    # RFC 5321 §4.1.1.4: after the final reply to the message, the transaction is over.
    Verb.DATA: Rule(_refused(connected=replies.NEED_HELO, greeted=replies.NEED_MAIL, mail=replies.NEED_RCPT),
                    moves=_moves((_R, _G))),
    # RFC 5321 §4.1.1.5: RSET clears the transaction, never the greeting.
    Verb.RSET: Rule(_refused(), moves=_moves((_M, _G), (_R, _G))),
    Verb.NOOP: Rule(_refused()),  # RFC 5321 §4.1.1.9
    Verb.QUIT: Rule(_refused()),  # RFC 5321 §4.1.1.10: the session closes
    Verb.VRFY: Rule(_refused()),  # RFC 5321 §3.5.3: 252, no enumeration
    Verb.EXPN: Rule(_refused(), implemented=False),  # RFC 5321 §3.5.3: no list expansion
    Verb.HELP: Rule(_refused()),  # RFC 5321 §4.1.1.8
    # RFC 3207 §4: not inside a transaction; §4.2: after the handshake, back to connected.
    Verb.STARTTLS: Rule(_IN_TRANSACTION, needs=(Need.NO_TLS, Need.STARTTLS_OFFERED),
                        moves=_moves((_C, _C), (_G, _C))),
    # RFC 4954 §4: after EHLO, once, not inside a transaction; AUTH never before TLS (SPEC §6).
    Verb.AUTH: Rule(_refused(connected=replies.NEED_HELO, mail=replies.TRANSACTION_IN_PROGRESS,
                             rcpt=replies.TRANSACTION_IN_PROGRESS),
                    needs=(Need.AUTH_OFFERED, Need.ESMTP, Need.NOT_AUTHENTICATED, Need.PRIVACY_FOR_AUTH)),
})


def unmet(verb: Verb, conditions: Conditions) -> Reply | None:
    """The reply for the first need of ``verb`` that ``conditions`` do not meet, or None."""
    for need in TABLE[verb].needs:
        test, reply = NEEDS[need]
        if not test(conditions):
            return reply
    return None


def check(verb: Verb, phase: Phase, conditions: Conditions) -> Reply | None:
    """None when ``verb`` may run now; otherwise the reply that refuses it."""
    rule = TABLE[verb]
    refused = rule.refused.get(phase)
    if refused is not None:
        return refused
    found = unmet(verb, conditions)
    if found is not None:
        return found
    return None if rule.implemented else replies.NOT_IMPLEMENTED


def next_phase(verb: Verb, phase: Phase) -> Phase:
    """The phase after a positive reply to ``verb`` (RFC 5321 §4.2: 2yz, or 3yz then 2yz)."""
    return TABLE[verb].moves.get(phase, phase)
