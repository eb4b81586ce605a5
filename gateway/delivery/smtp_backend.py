"""The gateway's side of an SMTP session: :mod:`smtp.backend`'s Protocols over the store.

:mod:`smtp.session` runs the protocol (THE state table, parameter syntax, the message size
and recipient limits, the AUTH exchange, the DATA reader); this module only decides and
stores, one instance per connection (:func:`backend_factory`):

- :class:`GatewayPolicy`: MAIL FROM (the address, the null sender on submission, the
  trust list snapshot of :class:`~gateway.delivery.directory.Directory` through
  ``routing.decide.decide_mail_from``: listener MX or submission, authenticated account,
  TLS and the client certificate's DN from ``SessionFacts.tls_info``; a trust entry's own
  size cap on ``SIZE=``; on submission the authenticated account's status, read again at
  every MAIL FROM: an account suspended or removed since AUTH gets ``421 4.7.0``
  ``mail.account_disabled`` and the session closes, audited as ``smtp.session_end``), RCPT
  TO (``routing.decide.decide_rcpt`` with the recipient's facts), after DATA (the headers
  parsed once, DKIM per the author's trust entry, then ``routing.decide.decide_after_data``).
  Each refusal is a ``routing`` verdict with its reason code, logged and counted in
  :mod:`gateway.metrics`.
- :class:`GatewayDelivery`: the pipeline (:class:`~gateway.delivery.pipeline.Pipeline`);
  the session answers ``250`` only once it returned, after the durable commit (SPEC §7).
- :class:`PasswordCheck`: :class:`gateway.accounts.auth.Authenticator` (throttle first,
  argon2id off the loop); a throttled attempt is ``AuthResult(throttled=True)``.
- :class:`CountedHold`: the process's memory budget for bodies (:mod:`gateway.net.bodies`),
  each refusal counted.

Nothing here repeats a rule of the core: if a method is called, its command is valid now.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from crypto.dkim import DkimResult, dns_txt_record, pinned_dnsfunc, verify_signatures
from gateway import metrics
from gateway.accounts.auth import Authenticator
from gateway.accounts.cert_login import CertLogin
from gateway.accounts.pros import session_end_reason, status_by_address
from gateway.accounts.token_login import TokenLogin
from gateway.delivery.directory import Directory, LocalTarget, Snapshot, Target
from gateway.delivery.documents import DocumentsRefused
from gateway.delivery.headers import HeaderInfo, parse_headers
from gateway.delivery.pipeline import Inbound, MailboxFull, Pipeline, Rcpt
from gateway.net.bodies import BodyBudget, Hold
from gateway.store import audit
from routing.address import Address, InvalidAddress, parse_address
from routing.decide import aligned, author_entry, decide_after_data, decide_mail_from, decide_rcpt
from routing.facts import NO_CONVERSATION, DkimCheck, DkimOutcome, HeaderFacts, RecipientFacts, Sender
from routing.trust import TrustEntry
from smtp import replies
from smtp.backend import (
    AuthResult,
    Backend,
    Credentials,
    DeliveryRefused,
    Envelope,
    ExternalCredentials,
    Recipient,
    SessionFacts,
    TokenCredentials,
)
from smtp.params import RcptParams, xtext_encode
from smtp.replies import ReplyLike

log = logging.getLogger("gateway.smtp")


def metrics_label(listener: str) -> str:
    """The ``listener`` label of the SMTP counters: ``mx`` or ``submission`` (both ports)."""
    return "mx" if listener == "mx" else "submission"


@dataclass
class _Transaction:
    """What the policy learnt in the current mail transaction (RFC 5321 §3.3)."""

    sender: Sender | None = None
    snapshot: Snapshot | None = None
    recipients: list[Rcpt] = field(default_factory=list)
    headers: HeaderInfo | None = None  # after DATA: parsed once, handed to the pipeline
    checked: Sender | None = None  # after DATA: the sender with its DKIM results


_PARSE_ON_LOOP = 256 * 1024  # smaller messages parse in well under a millisecond


def _account(facts: SessionFacts) -> Address | None:
    return parse_address(facts.account) if facts.account else None


class GatewayPolicy:
    """One connection's decisions (:class:`smtp.backend.Policy`)."""

    def __init__(self, directory: Directory, label: str) -> None:
        self.directory = directory
        self.label = label  # the metrics label
        self.tx = _Transaction()

    def _refused(self, phase: str, verdict: ReplyLike, reason: str) -> ReplyLike:
        log.info(f"{phase} refused", extra={"reason": reason, "listener": self.label})
        metrics.refused(self.label, phase, reason)
        return verdict

    async def helo(self, facts: SessionFacts) -> ReplyLike | None:
        return None  # any EHLO/HELO name: the MX peers are recognised by certificate and trust list

    async def mail(self, facts: SessionFacts, envelope: Envelope) -> ReplyLike:
        address: Address | None = None
        if envelope.sender:
            try:
                address = parse_address(envelope.sender)
            except InvalidAddress:
                return replies.MALFORMED_ADDRESS
        elif facts.listener != "mx":
            return replies.NULL_SENDER_NOT_ALLOWED  # DSNs and MDNs come in over the MX only
        snap = self.directory.cached()
        if snap is None:
            snap = await asyncio.to_thread(self.directory.snapshot)
        tls = facts.tls_info
        ended = await self._account_ended(facts)
        sender = Sender(kind=self.directory.sender_kind(address, snap),  # type: ignore[arg-type]
                        address=address, channel="mx" if facts.listener == "mx" else "submission",
                        account=_account(facts), account_active=ended is None, tls=facts.tls,
                        tls_peer_dn=tls.peer_dn if tls else None, tls_peer_problem=tls.peer_problem if tls else None)
        verdict = decide_mail_from(sender, snap.trust)
        if not verdict.accept:
            if ended is not None and facts.account:
                await asyncio.to_thread(self._audit_end, facts.account, facts.peer_ip, ended)
            return self._refused("mail", verdict, verdict.reason)
        entry = snap.trust.lookup(address.domain) if address else None
        size = envelope.params.size
        if entry and entry.max_message_size and size and size > entry.max_message_size:
            return replies.MESSAGE_TOO_BIG  # the operator's own cap, below the listener's (RFC 1870 §6)
        self.tx = _Transaction(sender, snap)
        return replies.SENDER_OK

    async def _account_ended(self, facts: SessionFacts) -> str | None:
        """Why the account this submission session authenticated may no longer send (suspended,
        removed: a reason code), or None. One indexed read per MAIL FROM, on every node the same
        answer (Postfix re-checks on each use too); nothing to read on the MX."""
        if facts.listener == "mx" or not facts.account:
            return None
        account = facts.account
        reader = self.directory.db.loop_reader()
        if reader is not None:  # SQLite: one indexed read costs less on the loop than a thread hop
            return session_end_reason(status_by_address(reader, account))

        def read() -> str | None:
            with self.directory.db.direct_read() as direct:
                return session_end_reason(status_by_address(direct, account))

        return await asyncio.to_thread(read)

    def _audit_end(self, account: str, peer: str, reason: str) -> None:
        with self.directory.db.write() as session:
            audit.record(session, actor=f"pro:{account}", action="smtp.session_end", subject_ref=f"pro:{account}",
                         peer=peer, details={"reason": reason})

    async def rcpt(self, facts: SessionFacts, envelope: Envelope, recipient: Recipient) -> ReplyLike:
        tx = self.tx
        assert tx.sender is not None and tx.snapshot is not None  # MAIL was accepted
        try:
            address = parse_address(recipient.address)
        except InvalidAddress:
            return replies.MALFORMED_ADDRESS
        snap = tx.snapshot
        reader = self.directory.db.loop_reader()
        if reader is not None:  # SQLite: one indexed read costs less on the loop than a thread hop
            found, target = self.directory.recipient(reader, address, snap)
        else:
            found, target = await asyncio.to_thread(self._recipient, address, snap)
        verdict = decide_rcpt(tx.sender, found, NO_CONVERSATION, snap.trust)
        if not verdict.accept or target is None:
            return self._refused("rcpt", verdict, verdict.reason)
        if isinstance(target, LocalTarget) and target.limits is not None and target.limits.any \
                and await asyncio.to_thread(self._full, target, envelope.params.size):
            # RFC 9208 quota, RFC 3463 X.2.2: temporary, so a patient's mail is never lost: the
            # sending server keeps it and retries until the mailbox has room or it gives up.
            return self._refused("rcpt", replies.MAILBOX_FULL, "rcpt.mailbox_full")
        tx.recipients.append(Rcpt(address, target, *_dsn(recipient.params)))
        return verdict

    def _full(self, target: LocalTarget, size: int | None) -> bool:
        with self.directory.db.direct_read() as direct:
            return self.directory.mailbox_full(direct, target, size)

    def _recipient(self, address: Address, snap: Snapshot) -> tuple[RecipientFacts, Target | None]:
        with self.directory.db.direct_read() as direct:
            return self.directory.recipient(direct, address, snap)

    async def data(self, facts: SessionFacts, envelope: Envelope, message: bytes) -> ReplyLike:
        tx = self.tx
        assert tx.sender is not None and tx.snapshot is not None and tx.recipients
        sender = tx.sender
        # The one parse: DKIM alignment, the From: rules and the pipeline use it. A large
        # message is parsed off the loop (20 MiB: ~60 ms that would stall every session).
        header = (parse_headers(message) if len(message) < _PARSE_ON_LOOP
                  else await asyncio.to_thread(parse_headers, message))
        entry = _dkim_entry(sender, header, tx.snapshot) if facts.listener == "mx" else None
        if entry is not None:
            sender = await asyncio.to_thread(_with_dkim, sender, entry, header.from_addresses[0], message)
        verdict = decide_after_data(sender, HeaderFacts(header.from_addresses), tx.snapshot.trust)
        if not verdict.accept:
            return self._refused("data", verdict, verdict.reason)
        tx.headers, tx.checked = header, sender
        return verdict

    def reset(self) -> None:
        self.tx = _Transaction()


class GatewayDelivery:
    """The pipeline (:class:`smtp.backend.Delivery`) for the transaction ``policy`` accepted."""

    def __init__(self, pipeline: Pipeline, policy: GatewayPolicy) -> None:
        self.pipeline = pipeline
        self.policy = policy

    async def deliver(self, facts: SessionFacts, envelope: Envelope, message: bytes) -> str:
        tx = self.policy.tx
        sender = tx.checked
        assert sender is not None and tx.headers is not None  # the policy accepted the data
        account = _account(facts)
        origin = sender.address.domain if sender.address else "-"
        inbound = Inbound(
            mail_from=sender.address, recipients=tuple(tx.recipients),
            actor=f"pro:{account}" if account else f"trusted:{origin}",
            protocol=_with_type(facts, account, envelope),
            # A notice from the null reverse-path (DSN, MDN) is no professional's message: it
            # opens no conversation a patient could answer (to MAILER-DAEMON).
            sender_is_professional=sender.address is not None, peer=facts.peer_ip, helo=facts.helo,
            ret=envelope.params.ret, envid=envelope.params.envid, headers=tx.headers,
        )
        try:
            done = await self.pipeline.deliver(inbound, message)
        except MailboxFull as full:  # no recipient has room: nothing stored, the sender retries
            log.info("data refused", extra={"reason": "data.mailbox_full", "listener": self.policy.label,
                                            "mailboxes": len(full.mailboxes)})
            metrics.refused(self.policy.label, "data", "data.mailbox_full")
            raise DeliveryRefused(replies.MAILBOX_FULL) from None
        except DocumentsRefused as refusal:  # every recipient refused for a document: nothing stored
            raise DeliveryRefused(self.policy._refused("data", refusal.verdict, refusal.verdict.reason)) from None
        except Exception:  # the session answers 451 4.3.0 and logs it
            log.warning("delivery failed; nothing stored", extra={"listener": self.policy.label})
            raise
        metrics.accepted(self.policy.label)
        return done.queue_id


def _with_type(facts: SessionFacts, account: Address | None, envelope: Envelope) -> str:
    """The Received: ``with`` protocol type (RFC 3848; RFC 6531 §4.3 for the UTF8 forms)."""
    kind = ("ESMTPSA" if account else "ESMTPS") if facts.tls else ("ESMTPA" if account else "ESMTP")
    return "UTF8" + kind[1:] if envelope.params.smtputf8 else kind


class PasswordCheck:
    """SMTP AUTH (:class:`smtp.backend.Authenticator`) by the accounts' authenticator, shared with
    IMAP; access tokens (OAUTHBEARER, XOAUTH2) by :class:`~gateway.accounts.token_login.TokenLogin`;
    client certificates (EXTERNAL) by :class:`~gateway.accounts.cert_login.CertLogin`."""

    def __init__(self, accounts: Authenticator, tokens: TokenLogin | None = None) -> None:
        self.accounts = accounts
        self.tokens = tokens
        self.certificates = CertLogin(accounts.db, accounts.throttle)

    async def authenticate(self, facts: SessionFacts, credentials: Credentials) -> AuthResult:
        if isinstance(credentials, ExternalCredentials):  # offered only with a verified certificate
            der = facts.tls_info.peer_certificate if facts.tls and facts.tls_info is not None else None
            cert = await self.certificates.authenticate(der, credentials.authzid, facts.peer_ip, "smtp")
            return AuthResult(cert.account if cert.ok else None, throttled=cert.throttled)
        if isinstance(credentials, TokenCredentials):
            if self.tokens is None or not facts.tls:  # not offered then (RFC 7628 §5: TLS only)
                return AuthResult(None)
            token = await self.tokens.authenticate(credentials.mechanism, credentials.authzid, credentials.token,
                                                   facts.peer_ip, "smtp")
            if token.ok and token.account:
                return AuthResult(token.account)
            return AuthResult(None, throttled=token.throttled, challenge=token.challenge, temporary=token.temporary)
        outcome = await self.accounts.authenticate(credentials.username, credentials.password, facts.peer_ip, "smtp")
        if outcome.ok and outcome.account:
            return AuthResult(outcome.account)
        return AuthResult(None, throttled=outcome.throttled)


class CountedHold:
    """A session's :class:`~gateway.net.bodies.Hold` (:class:`smtp.backend.BodyHold`), each refusal counted."""

    def __init__(self, label: str, hold: Hold) -> None:
        self.label = label
        self.hold = hold

    def _counted(self, room: bool) -> bool:
        if not room:
            metrics.limit_refused(self.label, "memory")
        return room

    async def room_for(self, size: int) -> bool:
        return self._counted(await self.hold.room_for(size))

    async def ensure(self, size: int) -> bool:
        return self._counted(await self.hold.ensure(size))

    def release(self) -> None:
        self.hold.release()


def backend_factory(listener: str, directory: Directory, pipeline: Pipeline, authenticator: Authenticator | None,
                    bodies: BodyBudget | None, *, tokens: TokenLogin | None = None) -> Callable[[str], Backend]:
    """The client address -> that connection's :class:`~smtp.backend.Backend`. Without an
    ``authenticator`` (the MX) AUTH is not offered."""
    label = metrics_label(listener)
    check = PasswordCheck(authenticator, tokens) if authenticator is not None else None

    def backend(peer: str) -> Backend:
        policy = GatewayPolicy(directory, label)
        hold = CountedHold(label, bodies.hold(peer)) if bodies is not None else None
        return Backend(policy, GatewayDelivery(pipeline, policy), check, hold)

    return backend


def _with_dkim(sender: Sender, entry: TrustEntry, author: Address, message: bytes) -> Sender:
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
    """RFC 3461 NOTIFY and ORCPT as the queue keeps them."""
    notify: tuple[str, ...] = ()
    if params.notify is not None:
        notify = tuple(sorted(params.notify)) if params.notify else ("NEVER",)
    orcpt = f"{params.orcpt[0]};{xtext_encode(params.orcpt[1])}" if params.orcpt else None
    return notify, orcpt
