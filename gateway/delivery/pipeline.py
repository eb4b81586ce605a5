"""The delivery pipeline (SPEC §7): one transaction, then ``250``.

Every accepted message, whatever way it came in (MX, submission, the web inbox, the
gateway itself), goes through :meth:`Pipeline.deliver`: trace headers, conversation
bookkeeping, one sealed copy per local recipient mailbox, one queue entry per remote
domain, audit entries, all committed in a single transaction. The caller answers
``250`` only after it returns; if it raises, nothing was stored.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import metrics
from gateway.delivery.directory import LocalTarget, RemoteTarget, Target
from gateway.delivery.documents import (
    DocumentPolicy,
    DocumentsRefused,
    Refusal,
    count_notes,
    decide_for,
    queue_dsn,
    record_refusals,
)
from gateway.delivery.headers import HeaderInfo, parse_headers, trace_prefix
from gateway.mailstore import adoption, chunks, conversations, parsing, summaries, xdm
from gateway.mailstore.messages import insert_sealed
from gateway.mailstore.quota import QuotaDefaults, QuotaExceeded, reserve
from gateway.mailstore.sealed import SealedCopy, seal_copy
from gateway.outbound.notify import notification_due, queue_notification
from gateway.outbound.queue import QueuedRecipient, enqueue
from gateway.store import audit
from gateway.store.changes import ChangeHub, announce
from gateway.store.db import Database
from gateway.store.group_commit import GroupWriter
from gateway.store.keys import KeyService, MailboxKey
from gateway.store.models import Patient
from gateway.store.raw import RawStatement, dialect_name
from healthdocs.model import Found
from routing.address import Address
from routing.decide import conversation_effect

log = logging.getLogger("gateway.delivery")


@dataclass(frozen=True)
class Rcpt:
    address: Address
    target: Target
    notify: tuple[str, ...] = ()  # RFC 3461 NOTIFY
    orcpt: str | None = None  # RFC 3461 ORCPT as "type;address"


@dataclass(frozen=True)
class Inbound:
    """One accepted transaction, as the SMTP session (or the web inbox) established it."""

    mail_from: Address | None
    recipients: tuple[Rcpt, ...]
    actor: str  # audit actor: "pro:<address>", "trusted:<domain>", "patient:<id>", "system"
    protocol: str  # Received "with": ESMTPS, ESMTPSA, ESMTP, local
    sender_is_professional: bool
    peer: str | None = None
    helo: str | None = None
    ret: str | None = None  # RFC 3461 RET
    envid: str | None = None  # RFC 3461 ENVID
    kind: str = "message"  # queue kind for remote copies: message | dsn | mdn | notification
    sent_copy: LocalTarget | None = None  # the sender's own Sent folder (web inbox)
    reply_conversation: int | None = None  # a patient's reply: its conversation id
    headers: HeaderInfo | None = None  # already parsed by the caller (SMTP flow); else parsed here

    @property
    def actor_mailbox(self) -> int | None:
        """The mailbox of the patient sending (a web reply: its Sent copy's), for the audit
        entries about that patient (their key is read on that mailbox's shard)."""
        own = self.sent_copy
        if own is not None and own.kind == "patient" and self.actor == f"patient:{own.owner_id}":
            return own.mailbox_id
        return None


class MailboxFull(Exception):
    """No recipient of the delivery can take the message: each is a mailbox of ours that it
    would take over its quota (RFC 9208 limits). Nothing was stored; SMTP answers
    ``452 4.2.2`` so the sender keeps the message and retries (RFC 3463 X.2.2)."""

    enhanced = "4.2.2"  # RFC 3463 X.2.2, temporary (the queue's local delivery retries on it too)

    def __init__(self, mailboxes: Sequence[int]) -> None:
        super().__init__(f"{len(mailboxes)} mailbox(es) over quota")
        self.mailboxes = tuple(mailboxes)


@dataclass(frozen=True)
class Delivered:
    queue_id: str
    message_id: str
    local: int
    queued: int
    mailboxes: tuple[int, ...] = field(default=())


@dataclass(frozen=True)
class _Copy:
    target: LocalTarget
    folder: str
    flags: tuple[str, ...]
    sealed: SealedCopy


@dataclass
class _Job:
    """One delivery prepared outside the write transaction, waiting for the group writer."""

    inbound: Inbound
    info: HeaderInfo
    prefix: bytes  # the trace headers put in front of ``raw`` (headers.trace_prefix)
    raw: bytes  # the message as received
    message_id: str
    queue_id: str
    at: datetime
    copies: tuple[_Copy, ...]
    documents: int
    refused: tuple[Refusal, ...] = ()  # patient recipients refused for the documents (others took it)
    done: threading.Event = field(default_factory=threading.Event)
    result: Delivered | None = None
    error: BaseException | None = None

    @property
    def size(self) -> int:
        return len(self.prefix) + len(self.raw)

    @property
    def stamped(self) -> bytes:
        """The message as stored, in one piece: only for a queue entry (remote copy, DSN). The
        local copies are sealed from the two parts without joining them."""
        return self.prefix + self.raw


_P = Patient.__table__.c
_NOTIFY_STATE_SQL = ("SELECT notifications_enabled, state, email_sealed IS NOT NULL, last_notified_at"
                     " FROM patients WHERE mailbox_id = ? AND id = ?")
_NOTIFY_TYPES = (_P.notifications_enabled, _P.state, None, _P.last_notified_at)
_NOTIFY_STATE = RawStatement(_NOTIFY_STATE_SQL, (_P.mailbox_id, _P.id), _NOTIFY_TYPES)
_NOTIFY_STATE_PG = RawStatement(_NOTIFY_STATE_SQL + " FOR UPDATE", (_P.mailbox_id, _P.id), _NOTIFY_TYPES)


def _fail_jobs(group: list[_Job], error: BaseException) -> None:
    for job in group:
        if not job.done.is_set():
            job.error = error
            job.done.set()


def _stamped_summary(parsed: parsing.Parsed, raw: bytes, prefix: bytes, *, added: str | None,
                     health: Found | None) -> summaries.Summary:
    """The summary of the stored (stamped) bytes from the parse of the received ones.

    ``trace_prefix`` only puts header lines in front (``Received:``, and ``Message-ID:`` when
    there was none, given as ``added``): the parts, their sizes and every other header are
    unchanged. A message whose first line is folded white space would fold into the line put
    in front of it; only such a message is parsed again, as stored.
    """
    if raw[:1] in (b" ", b"\t"):
        return summaries.summarise(parsing.parse(prefix + raw), health=health, examine=False)
    return summaries.summarise(parsed, message_id=added, health=health, examine=False)


_NO_QUOTA = QuotaDefaults()


class Pipeline:
    def __init__(self, db: Database, keys: KeyService, hub: ChangeHub, *, hostname: str,
                 queue_max_age: timedelta = timedelta(days=5),
                 notification_interval: timedelta | None = timedelta(hours=1),
                 after_commit: Sequence[Callable[[Delivered, Inbound, HeaderInfo], None]] = (),
                 quota: QuotaDefaults | None = None, documents: DocumentPolicy | None = None) -> None:
        self.db = db
        self.documents = documents or DocumentPolicy()  # [health_documents]: XDM archives read, checked
        self.quota = quota or _NO_QUOTA  # [quota] of the config: each mailbox's default limits
        self.keys = keys
        self.hub = hub
        self.hostname = hostname
        self.queue_max_age = queue_max_age
        self.notification_interval = notification_interval
        self.after_commit = list(after_commit)
        # Group commit: deliveries waiting at the same moment share one transaction and one
        # fsync; each caller waits for the commit that holds its message, so 250 still follows
        # durability. A failed group is retried one job at a time (_commit_group).
        self._writer: GroupWriter[_Job] = GroupWriter(self._commit_group, _fail_jobs, name="delivery-writer")

    async def deliver(self, inbound: Inbound, raw: bytes) -> Delivered:
        """Store and queue ``raw`` for every recipient, off the event loop; raises on failure."""
        done = await asyncio.to_thread(self.deliver_sync, inbound, raw)
        return done

    def deliver_sync(self, inbound: Inbound, raw: bytes, *, now: datetime | None = None) -> Delivered:
        """Prepare (parse, count, seal) in this thread, then wait for the commit that holds it."""
        job = self._prepare(inbound, raw, now or datetime.now(UTC))
        self._store_large(job)
        self._writer.put(job)
        job.done.wait()
        if job.error is not None:
            self._discard_pieces(job.copies)
            raise job.error
        assert job.result is not None
        done = job.result
        for mailbox_id in done.mailboxes:
            self.hub.notify(mailbox_id)
        for hook in self.after_commit:
            try:
                hook(done, inbound, job.info)
            except Exception:  # a hook never undoes a committed delivery
                log.exception("after-commit hook failed", extra={"queue_id": job.queue_id})
        log.info("delivered", extra={"queue_id": job.queue_id, "local": done.local, "queued": done.queued,
                                     "size": job.size, "actor_kind": inbound.actor.split(":")[0]})
        return done

    def _prepare(self, inbound: Inbound, raw: bytes, at: datetime) -> _Job:
        """Everything that needs no lock, from the message's one parse (the SMTP session's, or
        made here): headers, trace, summary, document count, one sealed copy per mailbox."""
        info = inbound.headers if inbound.headers is not None and inbound.headers.parsed is not None \
            else parse_headers(raw)
        assert info.parsed is not None
        queue_id = secrets.token_hex(8)
        prefix, message_id = trace_prefix(info, hostname=self.hostname, helo=inbound.helo, peer=inbound.peer,
                                          protocol=inbound.protocol, queue_id=queue_id, now=at)
        found = xdm.found_in(info.parsed, self.documents.limits) if self.documents.check else None
        summary = _stamped_summary(info.parsed, raw, prefix, added=None if info.message_id else message_id,
                                   health=found)
        refused = self._refusals(inbound, found, queue_id)
        seen: set[int] = {r.target.mailbox_id for r in refused}  # a refused mailbox gets no copy
        if refused and all(isinstance(r.target, LocalTarget) and r.target.mailbox_id in seen
                           for r in inbound.recipients):
            self._refuse_all(inbound, refused, queue_id, at)
        targets: list[tuple[LocalTarget, str, tuple[str, ...]]] = []
        for r in inbound.recipients:
            if isinstance(r.target, LocalTarget) and r.target.mailbox_id not in seen:
                seen.add(r.target.mailbox_id)  # the same mailbox named twice gets one copy
                targets.append((r.target, "INBOX", ()))
        if inbound.sent_copy is not None:
            targets.append((inbound.sent_copy, "Sent", ("\\Seen",)))
        copies: list[_Copy] = []
        if targets:
            keys = self._keys([t for t, _, _ in targets])
            encoded = summaries.encode(summary)
            copies = [_Copy(t, folder, flags, seal_copy(keys[t.mailbox_id], (prefix, raw), encoded))
                      for t, folder, flags in targets]
        documents = summary.shown.documents if inbound.kind == "message" else 0
        return _Job(inbound, info, prefix, raw, message_id, queue_id, at, tuple(copies), documents, tuple(refused))

    def _refusals(self, inbound: Inbound, found: Found | None, queue_id: str) -> list[Refusal]:
        """Patient recipients refused for the documents (:mod:`gateway.delivery.documents`)."""
        if found is None:
            return []
        count_notes(found)
        if not found.archives:
            return []
        refused: list[Refusal] = []
        for r in inbound.recipients:
            if isinstance(r.target, LocalTarget) and r.target.kind == "patient":
                refusal = decide_for(found, r.address.local)
                if refusal is not None:
                    refused.append(Refusal(str(r.address), r.target, r.notify, r.orcpt, refusal))
                    metrics.health_documents(refusal.reason)
                    log.info("recipient refused for a document", extra={"queue_id": queue_id,
                                                                         "reason": refusal.reason})
        return refused

    def _refuse_all(self, inbound: Inbound, refused: Sequence[Refusal], queue_id: str, at: datetime) -> None:
        """Every recipient refused: their audit entries, and nothing else stored."""
        with self.db.write() as session:
            record_refusals(session, self.keys, refused, actor=inbound.actor, peer=inbound.peer, queue_id=queue_id,
                            now=at)
        raise DocumentsRefused(refused[0].verdict)

    def _store_large(self, job: _Job) -> None:
        """Large copies' sealed bytes in pieces, each in its own short transaction, before the
        group commit: no commit holds the write lock for the whole of a big message."""
        stored: list[_Copy] = []
        try:
            for copy in job.copies:
                stored.append(replace(copy, sealed=chunks.store(self.db, copy.sealed, job.at)))
        except BaseException:
            self._discard_pieces(stored)
            raise
        job.copies = tuple(stored)

    def _discard_pieces(self, copies: Sequence[_Copy]) -> None:
        """The pieces of copies whose row will never be written (best effort)."""
        for copy in copies:
            if copy.sealed.sealed == chunks.CHUNKED:
                chunks.discard(self.db, copy.sealed.key.mailbox_id, copy.sealed.uuid)

    def _keys(self, targets: list[LocalTarget]) -> dict[int, MailboxKey]:
        """Each target mailbox's data key: from this process's cache when the RCPT lookup named it."""
        found: dict[int, MailboxKey] = {}
        for t in targets:
            mk = self.keys.cached(t.data_key_id) if t.data_key_id is not None else None
            if mk is not None and mk.mailbox_id == t.mailbox_id:
                found[t.mailbox_id] = mk
        missing = [t.mailbox_id for t in targets if t.mailbox_id not in found]
        if missing:
            with self.db.read() as session:
                found.update({m: self.keys.for_mailbox(session, m) for m in missing})
        return found

    def _commit_group(self, group: list[_Job]) -> None:
        try:
            with self.db.write() as session:
                session.connection()  # the write lock first (BEGIN IMMEDIATE on SQLite), then the group:
                self._writer.take_more(group)  # deliveries queued while it waited join this commit
                results = [self._write_or_full(session, job) for job in group]
                stored = [j for j, r in zip(group, results, strict=True) if isinstance(r, Delivered)]
                messages = sum(1 for job in stored if job.inbound.kind == "message")
                adoption.record_counts(session, group[0].at, messages, sum(j.documents for j in stored))
        except Exception as exc:
            if len(group) == 1:
                _fail_jobs(group, exc)
                return
            log.warning("group commit failed; retrying its %d deliveries one by one", len(group), exc_info=True)
        else:
            for job, result in zip(group, results, strict=True):
                if isinstance(result, Delivered):
                    job.result = result
                else:
                    job.error = result
                job.done.set()
            return
        for job in group:
            try:
                with self.db.write() as session:
                    result = self._write(session, job)
                    if job.inbound.kind == "message":
                        adoption.record_counts(session, job.at, 1, job.documents)
                job.result = result
            except BaseException as exc:
                job.error = exc
            job.done.set()

    def _write_or_full(self, session: Session, job: _Job) -> Delivered | MailboxFull:
        """:meth:`_write`, or the refusal of a delivery no mailbox has room for: it wrote
        nothing, so the others of the group commit without it."""
        try:
            return self._write(session, job)
        except MailboxFull as exc:
            return exc

    def _check_quota(self, session: Session, job: _Job) -> None:
        """RFC 9208 limits, exactly, in the write transaction and before any row of the job
        (each mailbox row locked first on PostgreSQL, :func:`~gateway.mailstore.quota.reserve`).

        SMTP has one reply after DATA for all the recipients (RFC 5321 §3.3), and the
        delivery is one transaction. So: when every recipient is a mailbox of ours this
        message would take over its limit, nothing is stored and the sender is told to retry
        (:class:`MailboxFull`, ``452 4.2.2``); when others take it, it is stored for all:
        each such mailbox was below its limit at RCPT (a full one is refused there with
        ``452 4.2.2``), so it goes over only by the messages accepted for it before it
        filled (usually this one), and no one's mail is lost or delayed because another
        mailbox is full. The sender's own Sent copy (a
        patient's reply) is never held back: the message has left."""
        over: list[int] = []
        for copy in job.copies:
            if copy.folder != "INBOX":
                continue
            try:
                reserve(session, copy.target.mailbox_id, self.quota, copy.sealed.size)
            except QuotaExceeded:
                over.append(copy.target.mailbox_id)
        if not over:
            return
        recipients = job.inbound.recipients
        if all(isinstance(r.target, LocalTarget) and r.target.mailbox_id in over for r in recipients):
            raise MailboxFull(over)
        log.info("stored over quota", extra={"queue_id": job.queue_id, "mailboxes": len(over)})

    def _write(self, session: Session, job: _Job) -> Delivered:
        """One delivery's rows, in the (possibly shared) write transaction."""
        self._check_quota(session, job)
        touched: list[int] = []
        local = self._store_local(session, job, touched)
        queued = self._queue_remote(session, job)
        if job.refused:
            inbound = job.inbound
            record_refusals(session, self.keys, job.refused, actor=inbound.actor, peer=inbound.peer,
                            queue_id=job.queue_id, now=job.at)
            queue_dsn(session, self.keys, job.refused, mail_from=str(inbound.mail_from) if inbound.mail_from else None,
                      ret=inbound.ret, envid=inbound.envid, original=job.stamped, hostname=self.hostname, now=job.at,
                      max_age=self.queue_max_age)
        return Delivered(job.queue_id, job.message_id, local, queued, tuple(touched))

    def _store_local(self, session: Session, job: _Job, touched: list[int]) -> int:
        inbound, info, at = job.inbound, job.info, job.at
        ends = conversation_effect(info.subject, info.x_mss_mes) == "end"
        author = str(info.from_addresses[0]) if info.from_addresses else (
            str(inbound.mail_from) if inbound.mail_from else "")
        reply_to = str(info.reply_to[0]) if info.reply_to else None
        for copy in job.copies:
            target, folder = copy.target, copy.folder
            conversation_id = None
            if target.kind == "patient" and folder == "INBOX" and inbound.sender_is_professional:
                conversation_id = conversations.record_professional_message(
                    session, self.keys, target.mailbox_id, author=author, reply_to=reply_to,
                    message_id=job.message_id, thread_ids=info.thread_ids, ends=ends, now=at, key=copy.sealed.key)
            elif folder == "Sent" and inbound.reply_conversation is not None:
                conv = conversations.get(session, self.keys, target.mailbox_id, inbound.reply_conversation)
                if conv is not None:
                    conversations.record_patient_reply(session, self.keys, conv, message_id=job.message_id, now=at)
                    conversation_id = conv.row.id
            stored = insert_sealed(session, target.mailbox_id, folder, copy.sealed, flags=copy.flags,
                                   internal_date=at, conversation_id=conversation_id)
            touched.append(target.mailbox_id)
            announce(session, target.mailbox_id)
            if target.kind == "patient" and folder == "INBOX":
                self._notify_patient(session, target.mailbox_id, target.owner_id, at)
            audit.record(session, actor=inbound.actor, action="mail.deliver" if folder == "INBOX" else "mail.sent",
                         subject_ref=f"{target.kind}:{target.owner_id}", peer=inbound.peer, now=at,
                         details={"message": stored.message_id, "size": copy.sealed.size, "folder": folder},
                         keys=self.keys, patient_key=copy.sealed.key if target.kind == "patient" else None,
                         patient_mailbox=None if target.kind == "patient" else inbound.actor_mailbox)
        return len(job.copies)

    def _notify_patient(self, session: Session, mailbox_id: int, patient_id: int, at: datetime) -> None:
        """SPEC §7: one content-free notification to the personal address, rate-limited."""
        if self.notification_interval is None:
            return
        # The row lock first (PostgreSQL FOR UPDATE), with a driver-level look at the few columns
        # that decide; the ORM row is loaded only when a notification is actually due.
        lock = _NOTIFY_STATE_PG if dialect_name(session) == "postgresql" else _NOTIFY_STATE
        enabled, state, has_email, last = lock.one(session, mailbox_id, patient_id)
        if not (enabled and state == "open" and has_email
                and notification_due(last, at, self.notification_interval)):
            return
        patient = session.execute(select(Patient).where(Patient.mailbox_id == mailbox_id, Patient.id == patient_id)
                                  .with_for_update()
                                  .execution_options(populate_existing=True)).scalar_one()
        entry = queue_notification(session, self.keys, patient, hostname=self.hostname, now=at,
                                   interval=self.notification_interval, max_age=self.queue_max_age)
        session.flush()
        if entry is not None:
            audit.record(session, actor="system", action="patient.notify", subject_ref=f"patient:{patient_id}",
                         now=at, details={"entry": entry.uuid}, keys=self.keys)

    def _queue_remote(self, session: Session, job: _Job) -> int:
        inbound, at = job.inbound, job.at
        by_domain: dict[str, list[QueuedRecipient]] = defaultdict(list)
        for r in inbound.recipients:
            if isinstance(r.target, RemoteTarget):
                by_domain[r.target.domain].append(QueuedRecipient(str(r.address), r.notify, r.orcpt))
        stamped = job.stamped if by_domain else b""  # joined only for a queue entry
        for domain, rcpts in sorted(by_domain.items()):
            entry = enqueue(session, self.keys, domain=domain,
                            mail_from=str(inbound.mail_from) if inbound.mail_from else None, recipients=rcpts,
                            message=stamped, kind=inbound.kind, ret=inbound.ret, envid=inbound.envid, now=at,
                            max_age=self.queue_max_age)
            audit.record(session, actor=inbound.actor, action="mail.queue", subject_ref=f"domain:{domain}",
                         peer=inbound.peer, now=at,
                         details={"entry": entry.uuid, "recipients": len(rcpts), "size": len(stamped)}, keys=self.keys,
                         patient_mailbox=inbound.actor_mailbox)
        return len(by_domain)
