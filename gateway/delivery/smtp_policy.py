"""One SMTP session's policy flow: facts from the store, decisions from ``routing``/``smtp``.

No socket code here: :mod:`gateway.delivery.smtpd` (the aiosmtpd shell) calls these
methods and writes what they return. Every method returns the reply to send; the
transaction state lives in :class:`Transaction`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace

from crypto.dkim import DkimResult, dns_txt_record, pinned_dnsfunc, verify_signatures
from gateway import metrics
from gateway.delivery.directory import Directory, Snapshot, Target
from gateway.delivery.headers import HeaderInfo, parse_headers
from gateway.delivery.pipeline import Inbound, Pipeline, Rcpt
from routing.address import Address, InvalidAddress, parse_address
from routing.decide import Verdict, aligned, author_entry, decide_after_data, decide_mail_from, decide_rcpt
from routing.facts import NO_CONVERSATION, DkimCheck, DkimOutcome, HeaderFacts, RecipientFacts, Sender
from routing.trust import TrustEntry
from smtp import replies
from smtp.params import MailParams, RcptParams, parse_mail_params, parse_rcpt_params, xtext_encode
from smtp.policy import Limits, SessionFacts, check_mail_allowed, check_recipient_count
from smtp.replies import Reply, ReplyLike

log = logging.getLogger("gateway.smtp")

MALFORMED_ADDRESS = Reply(553, "5.1.3", "malformed address")
NULL_SENDER_NOT_ALLOWED = Reply(550, "5.7.1", "the null sender is not accepted here")


@dataclass
class Transaction:
    sender: Sender | None = None
    mail_params: MailParams | None = None
    recipients: list[Rcpt] = field(default_factory=list)
    snapshot: Snapshot | None = None


@dataclass
class SessionInfo:
    peer_ip: str
    listener: str  # mx | submission | submissions
    tls: bool = False
    tls_peer_dn: str | None = None
    helo: str | None = None
    account: Address | None = None

    def facts(self) -> SessionFacts:
        return SessionFacts(peer_ip=self.peer_ip, listener=self.listener,  # type: ignore[arg-type]
                            tls=self.tls, account=str(self.account) if self.account else None)


class SmtpFlow:
    def __init__(self, directory: Directory, pipeline: Pipeline, limits: Limits) -> None:
        self.directory = directory
        self.pipeline = pipeline
        self.limits = limits

    def _channel(self, info: SessionInfo) -> str:
        return "mx" if info.listener == "mx" else "submission"

    async def mail(self, info: SessionInfo, tx: Transaction, address_text: str, tokens: list[str]) -> ReplyLike:
        refused = check_mail_allowed(info.facts(), self.limits)
        if refused is not None:
            return refused
        params = parse_mail_params(tokens, self.limits.max_message_size)
        if isinstance(params, Reply):
            return params
        address: Address | None = None
        if address_text:
            try:
                address = parse_address(address_text)
            except InvalidAddress:
                return MALFORMED_ADDRESS
        elif info.listener != "mx":
            return NULL_SENDER_NOT_ALLOWED
        snap = self.directory.cached()
        if snap is None:
            snap = await asyncio.to_thread(self.directory.snapshot)
        sender = Sender(kind=self.directory.sender_kind(address, snap),  # type: ignore[arg-type]
                        address=address, channel=self._channel(info),  # type: ignore[arg-type]
                        account=info.account, tls=info.tls, tls_peer_dn=info.tls_peer_dn)
        verdict = decide_mail_from(sender, snap.trust)
        if not verdict.accept:
            log.info("mail refused", extra={"reason": verdict.reason, "listener": info.listener})
            metrics.refused(info.listener, "mail", verdict.reason)
            return verdict
        entry = snap.trust.lookup(address.domain) if address else None
        if entry and entry.max_message_size and params.size and params.size > entry.max_message_size:
            return replies.MESSAGE_TOO_BIG
        tx.sender, tx.mail_params, tx.snapshot, tx.recipients = sender, params, snap, []
        return replies.SENDER_OK

    async def rcpt(self, info: SessionInfo, tx: Transaction, address_text: str, tokens: list[str]) -> ReplyLike:
        if tx.sender is None or tx.snapshot is None:
            return replies.BAD_SEQUENCE
        params = parse_rcpt_params(tokens)
        if isinstance(params, Reply):
            return params
        too_many = check_recipient_count(len(tx.recipients), self.limits)
        if too_many is not None:
            return too_many
        try:
            address = parse_address(address_text)
        except InvalidAddress:
            return MALFORMED_ADDRESS
        snap = tx.snapshot
        reader = self.directory.db.loop_reader()
        if reader is not None:  # SQLite: one indexed read costs less on the loop than a thread hop
            facts, target = self.directory.recipient(reader, address, snap)
        else:
            facts, target = await asyncio.to_thread(self._recipient, address, snap)
        verdict = decide_rcpt(tx.sender, facts, NO_CONVERSATION, snap.trust)
        if not verdict.accept or target is None:
            log.info("rcpt refused", extra={"reason": verdict.reason, "listener": info.listener})
            metrics.refused(info.listener, "rcpt", verdict.reason)
            return verdict
        tx.recipients.append(Rcpt(address, target, *_dsn(params)))
        return verdict

    def _recipient(self, address: Address, snap: Snapshot) -> tuple[RecipientFacts, Target | None]:
        with self.directory.db.direct_read() as direct:
            return self.directory.recipient(direct, address, snap)

    async def data(self, info: SessionInfo, tx: Transaction, message: bytes) -> ReplyLike:
        if tx.sender is None or tx.snapshot is None or not tx.recipients:
            return replies.BAD_SEQUENCE
        sender = tx.sender
        header = parse_headers(message)  # once: DKIM alignment, the From: rules and the pipeline use it
        entry = _dkim_entry(sender, header, tx.snapshot) if info.listener == "mx" else None
        if entry is not None:
            sender = await asyncio.to_thread(self._with_dkim, sender, entry, header.from_addresses[0], message)
        verdict: Verdict = decide_after_data(sender, HeaderFacts(header.from_addresses), tx.snapshot.trust)
        if not verdict.accept:
            log.info("data refused", extra={"reason": verdict.reason, "listener": info.listener})
            metrics.refused(info.listener, "data", verdict.reason)
            return verdict
        origin = sender.address.domain if sender.address else "-"
        inbound = Inbound(
            mail_from=sender.address, recipients=tuple(tx.recipients),
            actor=f"pro:{info.account}" if info.account else f"trusted:{origin}",
            protocol=("ESMTPSA" if info.account else "ESMTPS") if info.tls else "ESMTP",
            # A notice from the null reverse-path (DSN, MDN) is no professional's message: it
            # opens no conversation a patient could answer (to MAILER-DAEMON).
            sender_is_professional=sender.address is not None, peer=info.peer_ip, helo=info.helo,
            ret=tx.mail_params.ret if tx.mail_params else None,
            envid=tx.mail_params.envid if tx.mail_params else None, headers=header,
        )
        try:
            done = await self.pipeline.deliver(inbound, message)
        except Exception:
            log.exception("delivery failed; nothing stored", extra={"listener": info.listener})
            return replies.TEMPORARY_FAILURE
        metrics.accepted(info.listener)
        return replies.stored(done.queue_id)

    def _with_dkim(self, sender: Sender, entry: TrustEntry, author: Address, message: bytes) -> Sender:
        """RFC 6376 verification of the author's domain's signatures, per its trust policy
        (:func:`_dkim_entry`: the pinned key, or DNS); others are listed, not checked."""
        dnsfunc = None
        if entry.dkim_policy == "pinned":
            assert entry.dkim_selector and entry.dkim_public_key
            dnsfunc = pinned_dnsfunc(entry.dkim_selector, entry.domain, dns_txt_record(entry.dkim_public_key))
        results = verify_signatures(message, dnsfunc=dnsfunc, wanted=lambda d: aligned(author.domain, d))
        checks = tuple(DkimCheck(r.domain.lower(), _outcome(r)) for r in results if r.domain)
        for check in checks:
            if check.result != "policy":
                log.info("dkim", extra={"result": check.result, "domain": check.domain})
        return replace(sender, dkim=checks)


def _outcome(result: DkimResult) -> DkimOutcome:
    """RFC 8601 result words as the decision uses them: permerror counts as a failure."""
    word = result.result
    if word in ("pass", "temperror", "policy"):
        return word  # type: ignore[return-value]
    return "fail"


def _dkim_entry(sender: Sender, header: HeaderInfo, snap: Snapshot) -> TrustEntry | None:
    """The trust entry of this message's author when its policy has DKIM checked (dns, pinned)."""
    if len(header.from_addresses) != 1:
        return None
    entry = author_entry(sender, header.from_addresses[0], snap.trust)
    return entry if entry is not None and entry.dkim_checked else None


def _dsn(params: RcptParams) -> tuple[tuple[str, ...], str | None]:
    notify: tuple[str, ...] = ()
    if params.notify is not None:
        notify = tuple(sorted(params.notify)) if params.notify else ("NEVER",)
    orcpt = f"{params.orcpt[0]};{xtext_encode(params.orcpt[1])}" if params.orcpt else None
    return notify, orcpt
