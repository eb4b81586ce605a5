"""The SMTP command handlers, run once the state table allowed the verb (:mod:`smtp.state`).

Handlers translate: they ask the backend (:mod:`smtp.backend`) and answer its verdict or a
catalogue reply; the phase moves only on a positive reply, by the table's ``moves``.
Nothing here repeats a sequence rule: if a handler runs, its verb is valid now.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from smtp import replies, sasl
from smtp.backend import DeliveryRefused, Envelope, Recipient, accepted
from smtp.commands import Auth, Command, Hello, Invalid, Mail, Rcpt, Simple
from smtp.dataparse import Done
from smtp.extensions import ehlo_keywords, usable_mechanisms
from smtp.policy import check_recipient_count
from smtp.reader import TooLong
from smtp.replies import Reply, ReplyLike
from smtp.state import Verb, check

if TYPE_CHECKING:
    from smtp.session import Session

log = logging.getLogger("smtp.session")


async def command(s: Session, parsed: Command | Reply) -> None:
    """One command line, as :func:`smtp.reader.parse` read it."""
    if isinstance(parsed, Reply):
        if parsed is replies.COMMAND_UNRECOGNIZED:
            s.unrecognized += 1
            if s.unrecognized >= s.config.max_unrecognized:
                s.close_with(replies.TOO_MANY_UNRECOGNIZED)
                return
        s.reply(parsed)
        return
    refused = check(parsed.verb, s.phase, s.conditions)
    if refused is not None:
        s.reply(refused)
    elif isinstance(parsed, Invalid):
        s.reply(parsed.reply)
    elif isinstance(parsed, Hello):
        await hello(s, parsed)
    elif isinstance(parsed, Mail):
        await mail(s, parsed)
    elif isinstance(parsed, Rcpt):
        await rcpt(s, parsed)
    elif isinstance(parsed, Auth):
        await auth(s, parsed)
    else:
        await simple(s, parsed)


async def hello(s: Session, cmd: Hello) -> None:
    """RFC 5321 §4.1.1.1; §4.1.4: a refused EHLO leaves the session as it was."""
    facts = replace(s.facts, helo=cmd.domain, esmtp=cmd.verb is Verb.EHLO)
    verdict = await s.backend.policy.helo(facts)
    if verdict is not None and not accepted(verdict):
        s.reply(verdict)
        return
    s.end_transaction()
    s.facts = facts
    s.move(cmd.verb)
    keywords: list[str] = []
    if cmd.verb is Verb.EHLO:
        keywords = ehlo_keywords(s.conditions, max_size=s.max_size, mechanisms=s.config.mechanisms,
                                 certificate=_has_certificate(s))
    s.write(replies.ehlo(s.config.hostname, keywords))


async def mail(s: Session, cmd: Mail) -> None:
    if not cmd.params.smtputf8 and not cmd.sender.isascii():  # RFC 6531 §3.5
        s.reply(replies.UTF8_ADDRESS_WITHOUT_SMTPUTF8)
        return
    envelope = Envelope(cmd.sender, cmd.params)
    verdict = await s.backend.policy.mail(s.facts, envelope)
    if not accepted(verdict):
        s.end_transaction()
        if verdict.code == 421:  # RFC 5321 §3.8: e.g. the account was suspended meanwhile
            s.close_with(verdict)
        else:
            s.reply(verdict)
        return
    hold = s.backend.bodies
    if cmd.params.size and hold is not None and not await hold.room_for(cmd.params.size):
        s.end_transaction()  # RFC 1870 §6.2: no room for SIZE now, try later
        s.reply(replies.INSUFFICIENT_STORAGE)
        return
    s.envelope = envelope
    s.move(Verb.MAIL)
    s.reply(verdict)


async def rcpt(s: Session, cmd: Rcpt) -> None:
    envelope = s.envelope
    assert envelope is not None  # the table allows RCPT only in a transaction
    if not envelope.params.smtputf8 and not cmd.recipient.isascii():  # RFC 6531 §3.5
        s.reply(replies.UTF8_ADDRESS_WITHOUT_SMTPUTF8)
        return
    too_many = check_recipient_count(len(envelope.recipients), s.config.limits)
    if too_many is not None:
        s.reply(too_many)
        return
    recipient = Recipient(cmd.recipient, cmd.params)
    verdict = await s.backend.policy.rcpt(s.facts, envelope, recipient)
    if accepted(verdict):
        s.envelope = Envelope(envelope.sender, envelope.params, (*envelope.recipients, recipient))
        s.move(Verb.RCPT)
    s.reply(verdict)


async def simple(s: Session, cmd: Simple) -> None:
    verb = cmd.verb
    if verb is Verb.DATA:
        await data(s)
    elif verb is Verb.RSET:  # RFC 5321 §4.1.1.5
        s.end_transaction()
        s.move(verb)
        s.reply(replies.OK)
    elif verb is Verb.NOOP:
        s.reply(replies.OK)
    elif verb is Verb.QUIT:
        s.close_with(replies.CLOSING)
    elif verb is Verb.VRFY:
        s.reply(replies.CANNOT_VERIFY)
    elif verb is Verb.HELP:
        s.reply(replies.HELP)
    elif verb is Verb.STARTTLS:
        starttls(s)
    else:  # EXPN: the table answers it; kept for a verb added there without a handler
        s.reply(replies.NOT_IMPLEMENTED)


async def data(s: Session) -> None:
    """RFC 5321 §4.1.1.4. Room in the memory budget is held for a declared ``SIZE=`` before
    ``354``; without it the message is read and refused (``452 4.3.1``)."""
    envelope = s.envelope
    assert envelope is not None
    reader = s.begin_data()
    hold, declared = s.backend.bodies, envelope.params.size
    if hold is not None and declared and not await hold.ensure(min(declared, s.max_size)):
        s.no_room(reader)
    s.move(Verb.DATA)
    s.reply(replies.START_DATA)


async def message_done(s: Session, result: Done | Reply) -> None:
    """The end of data: the reader's refusal, the policy's verdict, or the durable delivery
    (SPEC §7: ``250`` only after it). The transaction ends whatever the answer."""
    envelope = s.envelope
    assert envelope is not None
    try:
        if isinstance(result, Reply):
            s.message_refused(result)
            answer: ReplyLike = result
        else:
            answer = await s.backend.policy.data(s.facts, envelope, result.message)
            if accepted(answer):
                try:
                    answer = replies.stored(await s.backend.delivery.deliver(s.facts, envelope, result.message))
                except DeliveryRefused as refused:  # nothing stored: the host's own reply
                    answer = refused.reply
    finally:
        if s.backend.bodies is not None:
            s.backend.bodies.release()
        s.end_transaction()
    s.reply(answer)


def starttls(s: Session) -> None:
    """RFC 3207 §4. Anything pipelined behind STARTTLS is a command injection attempt
    (CVE-2011-0411 class): it is dropped, never run inside TLS, and STARTTLS refused."""
    if s.lines.buffered:
        s.lines.take_rest()
        s.reply(replies.STARTTLS_PIPELINED)
        return
    s.reply(replies.STARTTLS_READY)
    s.begin_tls()


def _has_certificate(s: Session) -> bool:
    """The TLS handshake gave a verified client certificate (EXTERNAL, RFC 4422 appendix A)."""
    return s.facts.tls_info is not None and s.facts.tls_info.peer_certificate is not None


async def auth(s: Session, cmd: Auth) -> None:
    exchange = sasl.begin(cmd.mechanism, usable_mechanisms(s.config.mechanisms, tls=s.facts.tls,
                                                          certificate=_has_certificate(s)))
    if exchange is None:
        s.reply(replies.AUTH_MECHANISM_UNSUPPORTED)
        return
    await _auth_step(s, exchange, exchange.start(cmd.initial))


async def auth_line(s: Session, line: bytes | TooLong) -> None:
    """One client response inside an AUTH exchange (RFC 4954 §4)."""
    exchange = s.sasl
    assert exchange is not None
    step = replies.AUTH_LINE_TOO_LONG if isinstance(line, TooLong) else exchange.respond(line)
    await _auth_step(s, exchange, step)


async def _auth_step(s: Session, exchange: sasl.Exchange, step: sasl.Step) -> None:
    if isinstance(step, sasl.Challenge):
        s.write(replies.challenge(step.data))
        s.begin_auth(exchange)
        return
    s.end_auth()
    if isinstance(step, Reply):
        if step is replies.AUTH_FAILED:
            _auth_failed(s, step)
        else:
            s.reply(step)
        return
    authenticator = s.backend.authenticator
    assert authenticator is not None  # the table offers AUTH only with one
    try:
        result = await authenticator.authenticate(s.facts, step)
    except Exception:
        log.exception("smtp authentication failed to run", extra={"listener": s.config.listener})
        s.reply(replies.AUTH_TEMPORARY_FAILURE)  # RFC 4954 §6
        return
    if result.account is not None:
        s.facts = replace(s.facts, account=result.account)
        s.reply(replies.AUTH_SUCCESS)
        return
    if result.temporary:
        s.reply(replies.AUTH_TEMPORARY_FAILURE)  # RFC 4954 §6: the token was not judged
        return
    if result.challenge is not None and not result.throttled:  # RFC 7628 §3.2.2
        exchange.refuse()
        s.write(replies.challenge(result.challenge))
        s.begin_auth(exchange)
        return
    _auth_failed(s, replies.AUTH_TOO_MANY_FAILURES if result.throttled else replies.AUTH_FAILED)


def _auth_failed(s: Session, reply: Reply) -> None:
    s.auth_failures += 1
    if s.auth_failures >= s.config.max_auth_failures:
        s.close_with(replies.AUTH_TOO_MANY_FAILURES_CLOSE)
    else:
        s.reply(reply)
