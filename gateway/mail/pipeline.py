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
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import adoption
from gateway.mail.directory import LocalTarget, RemoteTarget, Target
from gateway.mail.headers import HeaderInfo, parse_headers, trace_headers
from gateway.store import audit, conversations
from gateway.store.changes import ChangeHub, announce
from gateway.store.db import Database
from gateway.store.keys import KeyService
from gateway.store.messages import append_message
from gateway.store.models import Patient
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


@dataclass(frozen=True)
class Delivered:
    queue_id: str
    message_id: str
    local: int
    queued: int
    mailboxes: tuple[int, ...] = field(default=())


class Pipeline:
    def __init__(self, db: Database, keys: KeyService, hub: ChangeHub, *, hostname: str,
                 queue_max_age: timedelta = timedelta(days=5),
                 notification_interval: timedelta | None = timedelta(hours=1),
                 after_commit: Sequence[Callable[[Delivered, Inbound, HeaderInfo], None]] = ()) -> None:
        self.db = db
        self.keys = keys
        self.hub = hub
        self.hostname = hostname
        self.queue_max_age = queue_max_age
        self.notification_interval = notification_interval
        self.after_commit = list(after_commit)

    async def deliver(self, inbound: Inbound, raw: bytes) -> Delivered:
        """Store and queue ``raw`` for every recipient, off the event loop; raises on failure."""
        done = await asyncio.to_thread(self.deliver_sync, inbound, raw)
        return done

    def deliver_sync(self, inbound: Inbound, raw: bytes, *, now: datetime | None = None) -> Delivered:
        at = now or datetime.now(UTC)
        info = parse_headers(raw)
        queue_id = secrets.token_hex(8)
        stamped, message_id = trace_headers(raw, info, hostname=self.hostname, helo=inbound.helo,
                                            peer=inbound.peer, protocol=inbound.protocol, queue_id=queue_id, now=at)
        touched: list[int] = []
        queued = 0
        with self.db.write() as session:
            local = self._store_local(session, inbound, info, stamped, message_id, at, touched)
            queued = self._queue_remote(session, inbound, stamped, at)
            if inbound.kind == "message":
                adoption.record_message(session, at, raw)
        done = Delivered(queue_id, message_id, local, queued, tuple(touched))
        for mailbox_id in touched:
            self.hub.notify(mailbox_id)
        for hook in self.after_commit:
            try:
                hook(done, inbound, info)
            except Exception:  # a hook never undoes a committed delivery
                log.exception("after-commit hook failed", extra={"queue_id": queue_id})
        log.info("delivered", extra={"queue_id": queue_id, "local": local, "queued": queued,
                                     "size": len(stamped), "actor_kind": inbound.actor.split(":")[0]})
        return done

    def _store_local(self, session: Session, inbound: Inbound, info: HeaderInfo, stamped: bytes,
                     message_id: str, at: datetime, touched: list[int]) -> int:
        count = 0
        ends = conversation_effect(info.subject, info.x_mss_mes) == "end"
        author = str(info.from_addresses[0]) if info.from_addresses else (
            str(inbound.mail_from) if inbound.mail_from else "")
        reply_to = str(info.reply_to[0]) if info.reply_to else None
        seen: set[int] = set()
        targets: list[tuple[LocalTarget, str, tuple[str, ...]]] = [
            (r.target, "INBOX", ()) for r in inbound.recipients if isinstance(r.target, LocalTarget)]
        if inbound.sent_copy is not None:
            targets.append((inbound.sent_copy, "Sent", ("\\Seen",)))
        for target, folder, flags in targets:
            if folder == "INBOX":
                if target.mailbox_id in seen:
                    continue  # the same mailbox named twice gets one copy
                seen.add(target.mailbox_id)
            conversation_id = None
            if target.kind == "patient" and folder == "INBOX" and inbound.sender_is_professional:
                conversation_id = conversations.record_professional_message(
                    session, self.keys, target.mailbox_id, author=author, reply_to=reply_to,
                    message_id=message_id, thread_ids=info.thread_ids, ends=ends, now=at)
            elif folder == "Sent" and inbound.reply_conversation is not None:
                conv = conversations.get(session, self.keys, target.mailbox_id, inbound.reply_conversation)
                if conv is not None:
                    conversations.record_patient_reply(session, self.keys, conv, message_id=message_id, now=at)
                    conversation_id = conv.row.id
            stored = append_message(session, self.keys, target.mailbox_id, folder, stamped, flags=flags,
                                    internal_date=at, conversation_id=conversation_id)
            touched.append(target.mailbox_id)
            announce(session, target.mailbox_id)
            if target.kind == "patient" and folder == "INBOX":
                self._notify_patient(session, target.owner_id, at)
            audit.record(session, actor=inbound.actor, action="mail.deliver" if folder == "INBOX" else "mail.sent",
                         subject_ref=f"{target.kind}:{target.owner_id}", peer=inbound.peer, now=at,
                         details={"message": stored.message_id, "size": len(stamped), "folder": folder})
            count += 1
        return count

    def _notify_patient(self, session: Session, patient_id: int, at: datetime) -> None:
        """SPEC §7: one content-free notification to the personal address, rate-limited."""
        if self.notification_interval is None:
            return
        from gateway.outbound.notify import queue_notification

        patient = session.execute(select(Patient).where(Patient.id == patient_id).with_for_update()
                                  .execution_options(populate_existing=True)).scalar_one()
        entry = queue_notification(session, self.keys, patient, hostname=self.hostname, now=at,
                                   interval=self.notification_interval, max_age=self.queue_max_age)
        if entry is not None:
            audit.record(session, actor="system", action="patient.notify", subject_ref=f"patient:{patient_id}",
                         now=at, details={"entry": entry.uuid})

    def _queue_remote(self, session: Session, inbound: Inbound, stamped: bytes, at: datetime) -> int:
        from gateway.outbound.queue import QueuedRecipient, enqueue

        by_domain: dict[str, list[QueuedRecipient]] = defaultdict(list)
        for r in inbound.recipients:
            if isinstance(r.target, RemoteTarget):
                by_domain[r.target.domain].append(QueuedRecipient(str(r.address), r.notify, r.orcpt))
        for domain, rcpts in sorted(by_domain.items()):
            entry = enqueue(session, self.keys, domain=domain,
                            mail_from=str(inbound.mail_from) if inbound.mail_from else None, recipients=rcpts,
                            message=stamped, kind=inbound.kind, ret=inbound.ret, envid=inbound.envid, now=at,
                            max_age=self.queue_max_age)
            audit.record(session, actor=inbound.actor, action="mail.queue", subject_ref=f"domain:{domain}",
                         peer=inbound.peer, now=at,
                         details={"entry": entry.uuid, "recipients": len(rcpts), "size": len(stamped)})
        return len(by_domain)
