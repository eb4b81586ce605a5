"""Health documents at delivery (issue 21; the rules: :mod:`healthdocs.decide`).

The pipeline reads the message's IHE XDM archives once (:func:`gateway.mailstore.xdm.found_in`,
within :class:`DocumentPolicy` limits) when the check is on; what is found goes into the
summary sealed with every copy. Then, for each recipient that is a patient's mailbox of ours
(never a professional's: their mail is unchanged), :func:`refusals` compares every
identifier under an INS root with the recipient's INS, which is the local part of the
recipient address as routing accepted it (never a column of the patients table), and looks
for ``INVISIBLE_PATIENT``. A refused recipient gets no copy; its refusal is the reply
catalogue's (``routing.reasons``: ``data.document_other_patient``,
``data.document_invisible_patient``), audited (``mail.refuse_document``) and counted
(``gateway_health_documents``).

SMTP has one reply after DATA for all recipients (RFC 5321 §3.3): when every recipient is
refused, nothing is stored and the delivery raises :class:`DocumentsRefused` (the session
answers the catalogue's ``550 5.7.1``; the sending server sends its sender the DSN; from the
queue, the bounce is ours). When others take the message, it is stored for them and the
sender gets a DSN (RFC 3464, action ``failed``) for the refused ones, queued in the same
transaction (:func:`queue_dsn`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from gateway import metrics
from gateway.delivery.directory import LocalTarget
from gateway.outbound.dsn import build_dsn, notices
from gateway.outbound.queue import QueuedRecipient, enqueue
from gateway.outbound.values import Envelope, RecipientResult, domain_of
from gateway.settings import HealthDocumentsSettings
from gateway.store import audit
from gateway.store.keys import KeyService
from healthdocs import decide
from healthdocs.model import Found
from healthdocs.safezip import DEFAULT_LIMITS, ZipLimits
from routing import reasons
from routing.decide import Verdict, verdict
from routing.ins import InvalidINS, normalise_ins


@dataclass(frozen=True)
class DocumentPolicy:
    """``[health_documents]`` of the config."""

    check: bool = True
    limits: ZipLimits = DEFAULT_LIMITS


def document_policy(settings: HealthDocumentsSettings) -> DocumentPolicy:
    return DocumentPolicy(settings.check, ZipLimits(max_entries=settings.max_entries,
                                                    max_entry_size=settings.max_entry_bytes,
                                                    max_total_size=settings.max_total_bytes,
                                                    max_ratio=settings.max_ratio))


class DocumentsRefused(Exception):
    """Every recipient of the delivery was refused for the documents it carries; nothing was stored.

    ``permanent``: the queue bounces instead of retrying (gateway.outbound.process)."""

    permanent = True

    def __init__(self, refusal: Verdict) -> None:
        super().__init__(refusal.reason)
        self.verdict = refusal
        self.enhanced = refusal.enhanced
        self.text = refusal.text


@dataclass(frozen=True)
class Refusal:
    address: str  # the recipient as routed
    target: LocalTarget
    notify: tuple[str, ...]
    orcpt: str | None
    verdict: Verdict


def recipient_ins(local_part: str) -> str | None:
    try:
        return normalise_ins(local_part)
    except InvalidINS:
        return None


def decide_for(found: Found, local_part: str) -> Verdict | None:
    """The refusal for a patient recipient whose address's local part is ``local_part``, or None."""
    ins = recipient_ins(local_part)
    if ins is None:  # routing accepted no such address; refuse nothing it did not check
        return None
    decision = decide.for_patient(found, ins)
    if decision.accept:
        return None
    return verdict(reasons.CATALOGUE[decision.reason])


def count_notes(found: Found) -> None:
    for note in found.notes:
        metrics.health_documents(note)


def record_refusals(session: Session, keys: KeyService, refused: Sequence[Refusal], *, actor: str,
                    peer: str | None, queue_id: str, now: datetime) -> None:
    """Audited about the patient: the link is sealed under the patient's data key (issue 20)."""
    for r in refused:
        audit.record(session, actor=actor, action="mail.refuse_document", subject_ref=f"patient:{r.target.owner_id}",
                     peer=peer, now=now, details={"reason": r.verdict.reason, "queue_id": queue_id}, keys=keys,
                     patient_mailbox=r.target.mailbox_id)


def queue_dsn(session: Session, keys: KeyService, refused: Sequence[Refusal], *, mail_from: str | None,
              ret: str | None, envid: str | None, original: bytes, hostname: str, now: datetime,
              max_age: timedelta) -> bool:
    """The sender's DSN for recipients refused while others took the message (RFC 3461 NOTIFY
    honoured: none for NEVER, none for the null reverse-path)."""
    if not mail_from or not refused:
        return False
    rcpts = tuple(QueuedRecipient(r.address, r.notify, r.orcpt) for r in refused)
    results = [RecipientResult(q, "permanent", r.verdict.code, r.verdict.enhanced,
                               f"smtp; {r.verdict.code} {r.verdict.enhanced} {r.verdict.text}")
               for q, r in zip(rcpts, refused, strict=True)]
    wanted = notices(Envelope(mail_from, rcpts, ret, envid), results, "failed", now=now)
    if not wanted:
        return False
    message = build_dsn(reporting_mta=hostname, to=mail_from, recipients=wanted, original=original, now=now,
                        envid=envid, ret=ret, arrival=now)
    enqueue(session, keys, domain=domain_of(mail_from), mail_from=None,
            recipients=[QueuedRecipient(mail_from, ("NEVER",))], message=message, kind="dsn", now=now,
            max_age=max_age)
    return True
