"""``mailstore.messages.insert_sealed``, the delivery pipeline's insert, tested directly on SQLite
and PostgreSQL: contiguous UIDs and MODSEQs, flags, the summary stored sealed, and a failure
leaves nothing half-stored (issue 16)."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from gateway.accounts.patients import provision
from gateway.mailstore import summaries
from gateway.mailstore.folders import find_folder
from gateway.mailstore.messages import FolderNotFound, insert_sealed, read_message, sealed_row
from gateway.mailstore.sealed import SealedCopy, open_summary, seal_copy
from gateway.store.models import Message
from gateway.testing.store import Store, by_id
from routing.ins import synthetic_ins

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _mailbox(store: Store, seed: int = 11) -> int:
    with store.db.write() as s:
        done = provision(s, store.keys, synthetic_ins(random.Random(seed)), email=None, now=AT,
                         opposition_window=timedelta(days=42), code_validity=timedelta(days=42), open_now=True)
        assert done.patient.mailbox_id is not None
        return done.patient.mailbox_id


def _copy(store: Store, mailbox_id: int, n: int) -> SealedCopy:
    raw = f"From: dr@clinic.test\r\nSubject: Résultat {n}\r\nMessage-ID: <i{n}@clinic.test>\r\n\r\nx\r\n".encode()
    with store.db.read() as s:
        key = store.keys.for_mailbox(s, mailbox_id)
    return seal_copy(key, raw, summaries.encode(summaries.compute(raw)))


def _folder(store: Store, mailbox_id: int, name: str = "INBOX") -> tuple[int, int]:
    with store.db.read() as s:
        folder = find_folder(s, mailbox_id, name)
        assert folder is not None
        return folder.uidnext, folder.highestmodseq


def _rows(store: Store) -> int:
    with store.db.read() as s:
        return int(s.execute(select(func.count()).select_from(Message)).scalar_one())


def test_uids_and_modseqs_are_contiguous_within_and_across_transactions(store: Store) -> None:
    mailbox = _mailbox(store)
    uidnext, modseq = _folder(store, mailbox)
    with store.db.write() as s:
        first = [insert_sealed(s, mailbox, "INBOX", _copy(store, mailbox, n), internal_date=AT) for n in range(3)]
    with store.db.write() as s:
        later = [insert_sealed(s, mailbox, "inbox", _copy(store, mailbox, n), internal_date=AT) for n in (3, 4)]
    stored = first + later
    assert [m.uid for m in stored] == list(range(uidnext, uidnext + 5))
    assert [m.modseq for m in stored] == list(range(modseq + 1, modseq + 6))
    assert _folder(store, mailbox) == (uidnext + 5, modseq + 5)
    with store.db.write() as s:  # another folder keeps its own sequence
        sent = insert_sealed(s, mailbox, "Sent", _copy(store, mailbox, 9), internal_date=AT)
    assert sent.uid == 1


def test_flags_dates_conversation_and_a_sealed_summary_are_stored(store: Store) -> None:
    mailbox = _mailbox(store)
    copy = _copy(store, mailbox, 1)
    with store.db.write() as s:
        stored = insert_sealed(s, mailbox, "INBOX", copy, flags=("\\Seen", "$Label"), internal_date=AT)
    with store.db.read() as s:
        row = by_id(s, Message, stored.message_id)
        assert row is not None
        assert (row.flags, row.uuid, row.size, row.uid, row.folder_id) == (
            "\\Seen $Label", copy.uuid, copy.size, stored.uid, stored.folder_id)
        assert row.internal_date.replace(tzinfo=UTC) == AT and row.conversation_id is None
        assert row.summary_sealed is not None and "Résultat".encode() not in row.summary_sealed
        sealed = sealed_row(s, mailbox, stored.message_id)
        assert sealed is not None
        encoded = open_summary(s, store.keys, mailbox, sealed)
        assert encoded is not None
        summary = summaries.decode(encoded)
        assert summary is not None and summary.shown.subject == "Résultat 1"
        assert read_message(s, store.keys, mailbox, stored.message_id).endswith(b"\r\n\r\nx\r\n")


def test_a_failure_after_the_uid_was_taken_leaves_nothing(store: Store) -> None:
    mailbox = _mailbox(store)
    with store.db.write() as s:
        insert_sealed(s, mailbox, "INBOX", _copy(store, mailbox, 1), internal_date=AT)
    before, rows = _folder(store, mailbox), _rows(store)
    again = _copy(store, mailbox, 2)
    # insert_sealed runs at the driver level: the driver's own error comes through
    with pytest.raises((IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError)), store.db.write() as s:
        insert_sealed(s, mailbox, "INBOX", again, internal_date=AT)
        insert_sealed(s, mailbox, "INBOX", again, internal_date=AT)  # the same uuid twice: refused
    assert _folder(store, mailbox) == before and _rows(store) == rows


def test_an_unknown_folder_or_another_mailboxs_copy_writes_nothing(store: Store) -> None:
    mailbox, other = _mailbox(store, 12), _mailbox(store, 13)
    before, rows = _folder(store, mailbox), _rows(store)
    with pytest.raises(FolderNotFound), store.db.write() as s:
        insert_sealed(s, mailbox, "Nowhere", _copy(store, mailbox, 1), internal_date=AT)
    with pytest.raises(ValueError, match="another mailbox"), store.db.write() as s:
        insert_sealed(s, mailbox, "INBOX", _copy(store, other, 1), internal_date=AT)
    assert _folder(store, mailbox) == before and _rows(store) == rows
