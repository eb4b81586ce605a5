"""Encryption at rest through the store (SPEC §8), on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from crypto.envelope import DecryptionError
from crypto.keyring import MasterKeyring
from gateway.accounts.patients import personal_email, provision
from gateway.accounts.pros import add_hosted_domain, add_pro
from gateway.mailstore.folders import find_folder
from gateway.mailstore.messages import append_message, read_message
from gateway.store.keys import KeyService, KeyUnavailable
from gateway.store.models import DataKey, Message
from gateway.testing.store import Store, by_id
from routing.ins import synthetic_ins

SUBJECT = "Résultats de biopsie confidentiels"
BODY = "Le compte rendu anatomopathologique montre une tumeur maligne."
EMAIL = "personne.privee@perso.example"


def _message(n: int = 0) -> bytes:
    return (
        f"From: dr.a@clinic.test\r\nTo: x@patients.gateway.test\r\nSubject: {SUBJECT} {n}\r\n"
        f"Message-ID: <m{n}@clinic.test>\r\n\r\n{BODY}\r\n"
    ).encode()


def _patient(store: Store, rng_seed: int = 1, email: str | None = EMAIL) -> int:
    import random

    with store.db.write() as s:
        done = provision(s, store.keys, synthetic_ins(random.Random(rng_seed)), email=email,
                         now=datetime.now(UTC), opposition_window=timedelta(days=42),
                         code_validity=timedelta(days=42), open_now=True)
        assert done.patient.mailbox_id is not None
        return done.patient.mailbox_id


def test_sealed_message_round_trips(store: Store) -> None:
    mailbox = _patient(store)
    with store.db.write() as s:
        stored = append_message(s, store.keys, mailbox, "INBOX", _message(), flags=("\\Seen",))
    assert stored.uid == 1
    fresh = KeyService(store.ring)  # no cache: unwraps from the database
    with store.db.read() as s:
        assert read_message(s, fresh, mailbox, stored.message_id) == _message()


def test_uids_increase_per_folder(store: Store) -> None:
    mailbox = _patient(store)
    with store.db.write() as s:
        uids = [append_message(s, store.keys, mailbox, "INBOX", _message(i)).uid for i in range(3)]
        sent = append_message(s, store.keys, mailbox, "Sent", _message(9)).uid
    assert uids == [1, 2, 3] and sent == 1
    with store.db.read() as s:
        folder = find_folder(s, mailbox, "inbox")
        assert folder is not None and folder.uidnext == 4 and folder.highestmodseq == 4


def test_tampered_ciphertext_fails(store: Store) -> None:
    mailbox = _patient(store)
    with store.db.write() as s:
        stored = append_message(s, store.keys, mailbox, "INBOX", _message())
        row = by_id(s, Message, stored.message_id)
        assert row is not None
        blob = bytearray(row.sealed)
        blob[len(blob) // 2] ^= 0x01
        row.sealed = bytes(blob)
    with store.db.read() as s, pytest.raises(DecryptionError):
        read_message(s, KeyService(store.ring), mailbox, stored.message_id)


def test_swapped_rows_fail(store: Store) -> None:
    first, second = _patient(store, 1), _patient(store, 2)
    with store.db.write() as s:
        a = append_message(s, store.keys, first, "INBOX", _message(1))
        b = append_message(s, store.keys, first, "INBOX", _message(2))
        c = append_message(s, store.keys, second, "INBOX", _message(3))
    with store.db.write() as s:
        # Another message id: move a's ciphertext onto b's row.
        sealed_a = s.execute(select(Message.sealed).where(Message.id == a.message_id)).scalar_one()
        s.execute(update(Message).where(Message.id == b.message_id).values(sealed=sealed_a))
        # Another mailbox: c's ciphertext and key reference onto a row of the first mailbox.
        row_c = by_id(s, Message, c.message_id)
        assert row_c is not None
        s.execute(update(Message).where(Message.id == a.message_id)
                  .values(sealed=row_c.sealed, data_key_id=row_c.data_key_id, uuid=row_c.uuid[:-1] + "x"))
        # And c's row moved into the first mailbox's folder with its own key: the owner check refuses.
        inbox_first = find_folder(s, first, "INBOX")
        assert inbox_first is not None
        s.execute(update(Message).where(Message.id == c.message_id)
                  .values(mailbox_id=first, folder_id=inbox_first.id, uid=99))
    keys = KeyService(store.ring)
    for message_id in (a.message_id, b.message_id, c.message_id):
        with store.db.read() as s, pytest.raises(DecryptionError):
            read_message(s, keys, first, message_id)


def test_wrong_master_key_fails(store: Store) -> None:
    mailbox = _patient(store)
    with store.db.write() as s:
        stored = append_message(s, store.keys, mailbox, "INBOX", _message())
    stranger = KeyService(MasterKeyring({1: os.urandom(32)}))
    with store.db.read() as s, pytest.raises(KeyUnavailable):
        read_message(s, stranger, mailbox, stored.message_id)


def test_rotation_rewraps_data_keys_only(store: Store) -> None:
    mailbox = _patient(store)
    with store.db.write() as s:
        stored = append_message(s, store.keys, mailbox, "INBOX", _message())
        sealed_before = by_id(s, Message, stored.message_id).sealed  # type: ignore[union-attr]
    rotated = store.ring.with_new_version()
    service = KeyService(rotated)
    with store.db.write() as s:
        assert service.rewrap_all(s) >= 1
    with store.db.read() as s:
        versions = set(s.execute(select(DataKey.master_version)).scalars())
        assert versions == {2}
        assert by_id(s, Message, stored.message_id).sealed == sealed_before  # type: ignore[union-attr]
        assert read_message(s, KeyService(rotated), mailbox, stored.message_id) == _message()
    old_only = KeyService(MasterKeyring({1: store.ring._keys[1]}))
    with store.db.read() as s, pytest.raises(KeyUnavailable):
        read_message(s, old_only, mailbox, stored.message_id)


def test_shredded_mailbox_no_longer_opens(store: Store) -> None:
    mailbox = _patient(store)
    with store.db.write() as s:
        stored = append_message(s, store.keys, mailbox, "INBOX", _message())
    with store.db.write() as s:
        assert store.keys.shred(s, mailbox) == 1
    with store.db.read() as s:
        row = by_id(s, Message, stored.message_id)
        assert row is not None and row.sealed  # the ciphertext is still there...
        with pytest.raises(KeyUnavailable):  # ...but nothing can open it
            read_message(s, KeyService(store.ring), mailbox, stored.message_id)


def test_personal_email_sealed_and_readable(store: Store) -> None:
    mailbox = _patient(store)
    with store.db.read() as s:
        from gateway.store.models import Patient

        patient = s.execute(select(Patient).where(Patient.mailbox_id == mailbox)).scalar_one()
        assert personal_email(s, store.keys, patient) == EMAIL


def test_raw_database_holds_no_content_in_clear(store: Store, db_url: str) -> None:
    mailbox = _patient(store)
    with store.db.write() as s:
        domain = add_hosted_domain(s, "clinic.test")
        add_pro(s, store.keys, "dr.secret@clinic.test", domain, name="Docteur Confidentiel", password="x" * 12)
        for i in range(3):
            append_message(s, store.keys, mailbox, "INBOX", _message(i))
    dump = _raw_dump(store, db_url)
    for needle in (SUBJECT, BODY, EMAIL, "Docteur Confidentiel", "anatomopathologique"):
        for encoding in ("utf-8", "latin-1", "utf-16-le"):
            assert needle.encode(encoding, "ignore") not in dump, f"{needle!r} found in clear"


def _raw_dump(store: Store, db_url: str) -> bytes:
    if db_url.startswith("sqlite"):
        store.db.dispose()  # checkpoint the WAL into the file
        path = db_url.removeprefix("sqlite:///")
        data = open(path, "rb").read()
        for extra in ("-wal", "-shm"):
            if os.path.exists(path + extra):
                data += open(path + extra, "rb").read()
        return data
    # PostgreSQL: what pg_dump would show, every column of every table as text.
    import subprocess

    url = db_url.replace("postgresql+psycopg://", "postgresql://")
    result = subprocess.run(["pg_dump", "--data-only", "--inserts", url], capture_output=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"pg_dump failed: {result.stderr.decode(errors='replace')[:200]}")
    return result.stdout


def test_direct_single_fetch_bounds_size_and_mailbox(store: Store) -> None:
    """The driver-level single fetch (IMAP): opens a small message, leaves big ones and
    unknown keys to the ORM path (None), answers {} for a missing UID."""
    from gateway.mailstore.message_ops import fetch_one_direct

    mailbox = _patient(store)
    other = _patient(store, rng_seed=2)
    big = _message() + b"x" * 5000 + b"\r\n"
    with store.db.write() as s:
        small_uid = append_message(s, store.keys, mailbox, "INBOX", _message()).uid
        big_uid = append_message(s, store.keys, mailbox, "INBOX", big).uid
    with store.db.direct_read() as conn:
        assert fetch_one_direct(conn, store.keys, mailbox, "inbox", small_uid, max_size=4096) == {small_uid: _message()}
        assert fetch_one_direct(conn, store.keys, mailbox, "INBOX", big_uid, max_size=4096) is None
        assert fetch_one_direct(conn, store.keys, mailbox, "INBOX", big_uid) == {big_uid: big}
        assert fetch_one_direct(conn, store.keys, mailbox, "INBOX", 99) == {}
        assert fetch_one_direct(conn, store.keys, mailbox, "Nowhere", 1) is None
        assert fetch_one_direct(conn, KeyService(store.ring), mailbox, "INBOX", small_uid) is None  # key not cached
        assert fetch_one_direct(conn, store.keys, other, "INBOX", small_uid) == {}  # another mailbox's folder
    reader = store.db.loop_reader()
    if store.db.is_sqlite:
        assert reader is not None
        assert fetch_one_direct(reader, store.keys, mailbox, "INBOX", small_uid) == {small_uid: _message()}
    else:
        assert reader is None
