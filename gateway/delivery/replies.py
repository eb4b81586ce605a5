"""A patient's reply from the web inbox, through the same decisions and pipeline (SPEC §4).

Patients never use SMTP: the web inbox calls :func:`send_reply`, which checks the
conversation (opened by that professional, not ended, reply to the Reply-To when
set), composes the message with In-Reply-To/References, and delivers it — to a hosted
professional's mailbox, or through the queue to a trusted domain — keeping a copy in
the patient's Sent folder.
"""

from __future__ import annotations

import email.policy
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy import select

from gateway.accounts.patients import patient_ins
from gateway.delivery.directory import Directory, LocalTarget
from gateway.delivery.headers import new_message_id
from gateway.delivery.pipeline import Delivered, Inbound, Pipeline, Rcpt
from gateway.mailstore import conversations
from gateway.store.keys import KeyService
from gateway.store.models import Patient
from routing.address import Address, parse_address
from routing.decide import Verdict, decide_rcpt
from routing.facts import ConversationFacts, Sender


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


class ReplyRefused(Exception):
    def __init__(self, verdict: Verdict | None, text: str) -> None:
        super().__init__(text)
        self.verdict = verdict


def compose(*, author: Address, to: Address, subject: str, text: str, in_reply_to: str | None,
            references: Sequence[str], hostname: str, attachments: Sequence[Attachment] = ()) -> bytes:
    msg = EmailMessage()
    msg["From"] = str(author)
    msg["To"] = str(to)
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(datetime.now(UTC))
    msg["Message-ID"] = new_message_id(hostname)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    msg.set_content(text)
    for item in attachments:
        maintype, _, subtype = item.content_type.partition("/")
        msg.add_attachment(item.data, maintype=maintype, subtype=subtype, filename=item.filename)
    # A UTF-8 address travels raw in the header (RFC 6532 §3.2; the reply then goes with SMTPUTF8),
    # never as an encoded-word, which RFC 2047 §5 forbids in an address.
    utf8 = not (author.ascii and to.ascii)
    return bytes(msg.as_bytes(policy=email.policy.default.clone(linesep="\r\n", utf8=utf8)))


def send_reply(directory: Directory, pipeline: Pipeline, keys: KeyService, *, mailbox_id: int, patient_id: int,
               conversation_id: int, subject: str, text: str, attachments: Sequence[Attachment] = (),
               peer: str | None = None) -> Delivered:
    """Decide, compose and deliver a patient's reply (the patient by its row's key ``(mailbox_id,
    id)``); raises :class:`ReplyRefused`."""
    snap = directory.snapshot()
    with directory.db.read() as session:
        patient = session.execute(select(Patient).where(Patient.mailbox_id == mailbox_id,
                                                        Patient.id == patient_id)).scalar_one()
        if patient.mailbox_id is None or patient.state != "open":
            raise ReplyRefused(None, "this space cannot send messages")
        conv = conversations.get(session, keys, patient.mailbox_id, conversation_id)
        if conv is None:
            raise ReplyRefused(None, "no such conversation")
        ins = patient_ins(session, keys, patient)
        if ins is None:
            raise ReplyRefused(None, "this space cannot send messages")
        author = Address(ins, snap.patient_domain)
        target_text = conv.parties.reply_to or conv.parties.opened_by
        target = parse_address(target_text)
        facts, where = directory.recipient(session, target, snap)
        conversation = ConversationFacts(
            exists=True, opened_by=parse_address(conv.parties.opened_by),
            reply_to=parse_address(conv.parties.reply_to) if conv.parties.reply_to else None,
            patient=author, ended=conv.row.ended_at is not None)
        sender = Sender(kind="patient", address=author, channel="web")
        verdict = decide_rcpt(sender, facts, conversation, snap.trust)
        if not verdict.accept or where is None:
            raise ReplyRefused(verdict, verdict.text)
        thread = conv.parties.message_ids
        raw = compose(author=author, to=target, subject=subject, text=text,
                      in_reply_to=thread[-1] if thread else None, references=thread[-20:],
                      hostname=pipeline.hostname, attachments=attachments)
    inbound = Inbound(
        mail_from=author, recipients=(Rcpt(target, where),), actor=f"patient:{patient_id}", protocol="HTTP",
        sender_is_professional=False, peer=peer,
        sent_copy=LocalTarget(mailbox_id, "patient", patient_id), reply_conversation=conversation_id)
    return pipeline.deliver_sync(inbound, raw)
