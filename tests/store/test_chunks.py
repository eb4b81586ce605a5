"""Large messages in pieces (``gateway/mailstore/chunks.py``), on SQLite and PostgreSQL.

A large delivery's pieces are committed before its row; every reader joins them; a missing
or reordered piece fails to open; a failed delivery leaves no piece; the orphan job
removes pieces without a row once past the grace period, and only those.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from crypto.envelope import DecryptionError
from gateway.accounts.jobs import JobConfig, run_job
from gateway.delivery.pipeline import Pipeline
from gateway.mailstore import chunks, message_ops, summaries
from gateway.mailstore.folders import find_folder
from gateway.mailstore.messages import read_message
from gateway.mailstore.sealed import seal_copy
from gateway.settings import JobSettings, PatientSettings
from gateway.store.changes import ChangeHub
from gateway.store.models import Message, MessageChunk
from gateway.testing.store import Store
from tests.mail.test_group_commit import NOW, patient_inbound

BIG = chunks.CHUNK_ABOVE + 2 * chunks.CHUNK_SIZE + 12345
PIECES = 7  # BIG sealed, in CHUNK_SIZE pieces


def big_message(n: int = 0) -> bytes:
    head = f"From: dr@clinic.test\r\nSubject: scan {n}\r\nMessage-ID: <big{n}@clinic.test>\r\n\r\n".encode()
    rng = random.Random(n)
    return head + b"".join(rng.randbytes(38).hex().encode() + b"\r\n" for _ in range(BIG // 78))


def pieces(store: Store) -> list[tuple[str, int, int]]:
    with store.db.read() as s:
        return [(u, q, len(d)) for u, q, d in s.execute(
            select(MessageChunk.message_uuid, MessageChunk.seq, MessageChunk.data).order_by(MessageChunk.seq))]


def only_message(store: Store) -> Message:
    with store.db.read() as s:
        return s.execute(select(Message)).scalar_one()


def test_large_delivery_is_stored_in_pieces_and_reads_back_everywhere(store: Store) -> None:
    inbound = patient_inbound(store)
    pipeline = Pipeline(store.db, store.keys, ChangeHub(), hostname="mx.gateway.test", notification_interval=None)
    raw = big_message()
    pipeline.deliver_sync(inbound, raw, now=NOW)
    row = only_message(store)
    assert row.sealed == chunks.CHUNKED
    got = pieces(store)
    assert [q for _, q, _ in got] == list(range(len(got))) and len(got) == PIECES
    assert {u for u, _, _ in got} == {row.uuid}
    assert all(size == chunks.CHUNK_SIZE for _, _, size in got[:-1])

    mailbox_id = inbound.recipients[0].target.mailbox_id  # type: ignore[union-attr]
    with store.db.read() as s:
        whole = read_message(s, store.keys, mailbox_id, row.id)
        assert whole.endswith(raw)  # trace headers are added in front
        assert message_ops.fetch_raws(s, store.keys, mailbox_id, row.folder_id, [row.uid]) == {row.uid: whole}
        assert message_ops.fetch_raw(s, store.keys, mailbox_id, row.folder_id, row.uid) == whole
        found, _ = message_ops.fetch_summaries(s, store.keys, mailbox_id, row.folder_id, [row.uid])
        assert found[row.uid] == summaries.compute(whole).imap
    with store.db.write() as s:  # IMAP COPY re-seals the joined bytes under a new uuid
        folder = find_folder(s, mailbox_id, "INBOX")
        assert folder is not None
        message_ops.copy(s, store.keys, mailbox_id, "INBOX", [row.uid], "INBOX", remove=False)
    with store.db.read() as s:
        copies = s.execute(select(Message.id).where(Message.id != row.id)).scalars().all()
        assert [read_message(s, store.keys, mailbox_id, m) for m in copies] == [whole]


def test_a_missing_or_reordered_piece_fails_to_open(store: Store) -> None:
    pipeline = Pipeline(store.db, store.keys, ChangeHub(), hostname="mx.gateway.test", notification_interval=None)
    inbound = patient_inbound(store)
    mailbox_id = inbound.recipients[0].target.mailbox_id  # type: ignore[union-attr]
    pipeline.deliver_sync(inbound, big_message(), now=NOW)
    row = only_message(store)
    with store.db.write() as s:  # swap two pieces
        s.execute(update(MessageChunk).where(MessageChunk.seq == 1).values(seq=99))
        s.execute(update(MessageChunk).where(MessageChunk.seq == 2).values(seq=1))
        s.execute(update(MessageChunk).where(MessageChunk.seq == 99).values(seq=2))
    with store.db.read() as s, pytest.raises(DecryptionError):
        read_message(s, store.keys, mailbox_id, row.id)
    with store.db.write() as s:
        s.query(MessageChunk).filter(MessageChunk.seq == 3).delete()
    with store.db.read() as s, pytest.raises(DecryptionError):
        read_message(s, store.keys, mailbox_id, row.id)


def test_small_messages_keep_their_bytes_in_the_row(store: Store) -> None:
    pipeline = Pipeline(store.db, store.keys, ChangeHub(), hostname="mx.gateway.test", notification_interval=None)
    pipeline.deliver_sync(patient_inbound(store), b"Subject: small\r\n\r\nbody\r\n", now=NOW)
    assert only_message(store).sealed != chunks.CHUNKED
    assert pieces(store) == []


def test_a_failed_delivery_leaves_no_piece(store: Store) -> None:
    pipeline = Pipeline(store.db, store.keys, ChangeHub(), hostname="mx.gateway.test", notification_interval=None)
    inbound = patient_inbound(store)

    def fail(group: list[object]) -> None:
        for job in group:
            job.error = RuntimeError("disk full")  # type: ignore[attr-defined]
            job.done.set()  # type: ignore[attr-defined]

    pipeline._writer._commit = fail  # type: ignore[assignment]  # the row's transaction fails after the pieces were written
    with pytest.raises(RuntimeError, match="disk full"):
        pipeline.deliver_sync(inbound, big_message(), now=NOW)
    assert pieces(store) == []
    with store.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0


def test_orphan_job_removes_only_old_pieces_without_a_row(store: Store) -> None:
    pipeline = Pipeline(store.db, store.keys, ChangeHub(), hostname="mx.gateway.test", notification_interval=None)
    inbound = patient_inbound(store)
    pipeline.deliver_sync(inbound, big_message(1), now=NOW)  # has its row: kept
    kept = only_message(store).uuid
    with store.db.read() as s:
        mailbox_id = inbound.recipients[0].target.mailbox_id  # type: ignore[union-attr]
        key = store.keys.for_mailbox(s, mailbox_id)
    old = chunks.store(store.db, seal_copy(key, big_message(2)), NOW)  # a crash before its row
    fresh = chunks.store(store.db, seal_copy(key, big_message(3)), NOW + timedelta(minutes=10))
    assert {old.uuid, fresh.uuid, kept} == {u for u, _, _ in pieces(store)}

    cfg = JobConfig(PatientSettings(), JobSettings())
    result = run_job(store.db, store.keys, cfg, "orphan-chunks", NOW + chunks.ORPHAN_GRACE + timedelta(minutes=1))
    assert result.counts == {"removed": PIECES}
    assert {u for u, _, _ in pieces(store)} == {fresh.uuid, kept}
    with store.db.read() as s:  # the delivered one still opens
        assert read_message(s, store.keys, mailbox_id, only_message(store).id).endswith(big_message(1)[-100:])
