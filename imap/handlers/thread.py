"""THREAD and UID THREAD (RFC 5256 §3): ORDEREDSUBJECT from the sealed ENVELOPE summaries;
REFERENCES also needs the References header, which no summary holds, so the messages found
are read (decrypted per bounded batch, as SEARCH does for such headers) and only their
header is parsed. The threading itself is :mod:`imap.message.threads`."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Mapping

from imap.backend import MessageMeta, MessageSummary
from imap.handlers.fetch import CHUNK, batches
from imap.handlers.search import searched
from imap.message.sortkeys import sent_date, subject_info
from imap.message.threads import ThreadInput, message_ids, ordered_subject, references
from imap.proto import commands as c
from imap.proto import encoder, replies
from imap.proto.replies import Reply
from imap.proto.structure import Envelope
from imap.session import Session

_HEADER_END = b"\r\n\r\n"


def _from_envelope(number: int, meta: MessageMeta, env: Envelope) -> ThreadInput:
    base, reply = subject_info(env.subject)
    ids = message_ids(env.message_id)
    return ThreadInput(number, sent_date(env.date, meta.internal_date), base, reply, ids[0] if ids else None,
                       tuple(message_ids(env.in_reply_to)[:1]))


def _from_header(number: int, meta: MessageMeta, raw: bytes) -> ThreadInput:
    end = raw.find(_HEADER_END)
    headers = email.message_from_bytes(raw[: end + 4] if end >= 0 else raw, policy=email.policy.compat32)

    def value(name: str) -> str | None:
        found = headers.get(name)
        return None if found is None else str(found)

    base, reply = subject_info(value("Subject"))
    ids = message_ids(value("Message-ID"))
    refs = message_ids(value("References")) or message_ids(value("In-Reply-To"))[:1]  # RFC 5256 §2.2 (A)
    return ThreadInput(number, sent_date(value("Date"), meta.internal_date), base, reply, ids[0] if ids else None,
                       tuple(refs))


async def thread(s: Session, cmd: c.Thread) -> Reply:
    view = s.selected
    result = await searched(s, cmd.criteria)
    found, left_out = result.found, result.left_out
    inputs: list[ThreadInput] = []
    if cmd.algorithm == "ORDEREDSUBJECT":
        for start in range(0, len(found), CHUNK):
            chunk = found[start : start + CHUNK]
            got: Mapping[int, MessageSummary] = await s.boxes.fetch_summaries(view.name, [m.uid for _, m in chunk])
            inputs += [_from_envelope(meta.uid if cmd.uid else seq, meta, got[meta.uid].envelope)
                       for seq, meta in chunk if meta.uid in got]
            left_out = left_out or len(got) < len(chunk)  # expunged meanwhile
        text = ordered_subject(inputs)
    else:
        metas = {meta.uid: (seq, meta) for seq, meta in found}
        for chunk_pairs in batches([(seq, meta.uid) for seq, meta in found],
                                   {meta.uid: meta.size for _, meta in found}, True):
            raws = await s.boxes.fetch_raws(view.name, [uid for _, uid in chunk_pairs])
            for seq, uid in chunk_pairs:
                if uid in raws:
                    inputs.append(_from_header(uid if cmd.uid else seq, metas[uid][1], raws[uid]))
                else:  # expunged meanwhile: left out
                    left_out = True
        text = references(inputs)
    await s.send(encoder.untagged(("THREAD " + text).strip().encode("ascii")))
    return replies.THREAD_COMPLETED.expunge_issued() if left_out else replies.THREAD_COMPLETED
