"""Group commit (issue 8): concurrent deliveries share one transaction, each answered after its commit."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.accounts.patients import provision
from gateway.delivery.directory import LocalTarget
from gateway.delivery.pipeline import Delivered, Inbound, Pipeline, Rcpt
from gateway.mailstore import adoption
from gateway.store import audit
from gateway.store.changes import ChangeHub
from gateway.store.models import AuditEntry, DailyStat, Folder, Message
from gateway.testing.store import Store, open_store
from routing.address import parse_address
from routing.ins import synthetic_ins

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ATTACHED = (b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
            b'--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n'
            b'--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="r.pdf"\r\n\r\n%PDF\r\n'
            b"--b--\r\n")


def patient_inbound(store: Store) -> Inbound:
    with store.db.write() as s:
        done = provision(s, store.keys, synthetic_ins(random.Random(7)), email=None, now=NOW,
                         opposition_window=timedelta(days=7), code_validity=timedelta(days=30), open_now=True)
        target = LocalTarget(done.patient.mailbox_id, "patient", done.patient.id)
    return Inbound(mail_from=parse_address("dr@clinic.test"), recipients=(Rcpt(parse_address("p@x.test"), target),),
                   actor="trusted:clinic.test", protocol="ESMTP", sender_is_professional=True, peer="127.0.0.1")


def message(n: int, extra: bytes = b"") -> bytes:
    return (f"From: dr@clinic.test\r\nSubject: n{n}\r\nMessage-ID: <m{n}@clinic.test>\r\n").encode() + ATTACHED + extra


def stored(store: Store) -> list[tuple[int, int]]:
    with store.db.read() as s:
        return [(int(u), int(m)) for u, m in s.execute(select(Message.uid, Message.id).order_by(Message.id))]


class Slowed:
    """Holds the writer on its first group until every sender has queued, so the rest form one group."""

    def __init__(self, pipeline: Pipeline, waiting: int) -> None:
        self.inner = pipeline._commit_group
        self.groups: list[int] = []
        self.waiting = waiting
        self.pipeline = pipeline

    def __call__(self, group: list[Any]) -> None:
        if not self.groups:
            deadline = time.monotonic() + 10
            while len(self.pipeline._writer._jobs) < self.waiting and time.monotonic() < deadline:
                time.sleep(0.005)
        self.inner(group)
        self.groups.append(len(group))  # after: jobs queued while the lock was awaited join in place


def run_concurrently(pipeline: Pipeline, inbound: Inbound, raws: list[bytes]) -> list[Delivered | BaseException]:
    results: list[Delivered | BaseException] = [RuntimeError("not run")] * len(raws)

    def one(i: int) -> None:
        try:
            results[i] = pipeline.deliver_sync(inbound, raws[i], now=NOW)
        except BaseException as exc:
            results[i] = exc
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(raws))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_concurrent_deliveries_share_a_commit_and_each_returns_after_it(store: Store) -> None:
    inbound = patient_inbound(store)
    pipeline = Pipeline(store.db, store.keys, ChangeHub(), hostname="mx.test", notification_interval=None)
    slowed = Slowed(pipeline, waiting=7)
    pipeline._writer._commit = slowed
    visible_at_return: list[bool] = []

    def check(done: Delivered, inbound: Inbound, info: object) -> None:  # runs in the caller, after return
        with store.db.read() as s:  # another connection: only committed rows are visible
            n = s.execute(select(func.count()).select_from(Message).where(
                Message.uuid.is_not(None), Message.folder_id.in_(select(Folder.id).where(
                    Folder.mailbox_id == done.mailboxes[0])))).scalar_one()
            visible_at_return.append(n >= 1)
    pipeline.after_commit.append(check)
    results = run_concurrently(pipeline, inbound, [message(i) for i in range(8)])
    assert all(isinstance(r, Delivered) for r in results), results
    assert max(slowed.groups) > 1, slowed.groups  # at least one shared transaction
    assert sum(slowed.groups) == 8
    assert all(visible_at_return) and len(visible_at_return) == 8
    rows = stored(store)
    uids = [u for u, _ in rows]
    assert uids == sorted(uids) and len(set(uids)) == 8  # unique, increasing with insertion order
    with store.db.read() as s:
        assert audit.verify(s).ok
        assert s.execute(select(func.count()).select_from(AuditEntry)
                         .where(AuditEntry.action == "mail.deliver")).scalar_one() == 8
        stats = dict(s.execute(select(DailyStat.metric, DailyStat.value)).tuples().all())
    assert stats == {adoption.MESSAGES: 8, adoption.DOCUMENTS: 8}


def test_a_failing_message_does_not_fail_the_others_in_its_group(store: Store,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    inbound = patient_inbound(store)
    pipeline = Pipeline(store.db, store.keys, ChangeHub(), hostname="mx.test", notification_interval=None)
    slowed = Slowed(pipeline, waiting=5)
    pipeline._writer._commit = slowed
    write = pipeline._write

    def poisoned(session: Any, job: Any) -> Delivered:
        result = write(session, job)  # rows written, then the failure: the rollback must undo them
        if b"POISON" in job.stamped:
            raise RuntimeError("bad message")
        return result
    monkeypatch.setattr(pipeline, "_write", poisoned)
    raws = [message(i, b"POISON" if i == 3 else b"") for i in range(6)]
    results = run_concurrently(pipeline, inbound, raws)
    assert isinstance(results[3], RuntimeError)
    assert all(isinstance(r, Delivered) for i, r in enumerate(results) if i != 3), results
    assert max(slowed.groups) > 1
    rows = stored(store)
    assert len(rows) == 5  # nothing of the failed one
    uids = [u for u, _ in rows]
    assert uids == sorted(uids) and len(set(uids)) == 5
    with store.db.read() as s:
        assert audit.verify(s).ok
        assert s.execute(select(func.count()).select_from(AuditEntry)).scalar_one() == 5
        stats = dict(s.execute(select(DailyStat.metric, DailyStat.value)).tuples().all())
    assert stats == {adoption.MESSAGES: 5, adoption.DOCUMENTS: 5}


def test_a_failing_commit_answers_every_waiter_with_the_error(store: Store) -> None:
    inbound = patient_inbound(store)
    pipeline = Pipeline(store.db, store.keys, ChangeHub(), hostname="mx.test", notification_interval=None)

    def broken(session: Any, job: Any) -> Delivered:
        raise OSError("disk gone")
    pipeline._write = broken  # type: ignore[method-assign]
    results = run_concurrently(pipeline, inbound, [message(i) for i in range(4)])
    assert all(isinstance(r, OSError) for r in results), results
    assert stored(store) == []


def test_deliveries_queued_while_the_write_lock_is_awaited_join_that_commit(tmp_path: Path) -> None:
    """SQLite: another process holds the write lock; the writer's group grows while it waits."""
    store = open_store(f"sqlite:///{tmp_path / 'gateway.db'}")
    try:
        inbound = patient_inbound(store)
        pipeline = Pipeline(store.db, store.keys, ChangeHub(), hostname="mx.test", notification_interval=None)
        groups: list[int] = []
        inner = pipeline._commit_group

        def counted(group: list[Any]) -> None:
            inner(group)
            groups.append(len(group))
        pipeline._writer._commit = counted
        other = sqlite3.connect(tmp_path / "gateway.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # as another gateway process committing
        results: list[Delivered | BaseException] = []
        first = threading.Thread(target=lambda: results.extend(run_concurrently(pipeline, inbound, [message(0)])))
        first.start()
        deadline = time.monotonic() + 10
        while (not pipeline._writer._running or pipeline._writer._jobs) and time.monotonic() < deadline:
            # until the writer has taken the first delivery and waits for the lock
            time.sleep(0.005)
        rest = threading.Thread(target=lambda: results.extend(
            run_concurrently(pipeline, inbound, [message(i) for i in range(1, 5)])))
        rest.start()
        while len(pipeline._writer._jobs) < 4 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert groups == []  # nothing committed while the lock is held elsewhere
        other.execute("COMMIT")
        first.join(30)
        rest.join(30)
        other.close()
        assert all(isinstance(r, Delivered) for r in results) and len(results) == 5, results
        assert groups == [5]
        assert len(stored(store)) == 5
    finally:
        store.close()


@pytest.mark.parametrize("raw,expected", [
    (b"Subject: plain\r\n\r\nno documents\r\n", 0),
    (ATTACHED, 1),
    (b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n--o\r\nContent-Type: message/rfc822\r\n\r\n'
     + ATTACHED + b'\r\n--o\r\nContent-Type: image/png; name="a.png"\r\n\r\nPNG\r\n'
     b"--oX\r\nnot a delimiter\r\n--o--\r\n", 2),
    (b'Content-Type: multipart/mixed; boundary="u"\r\n\r\n--u\r\nContent-Disposition: attachment\r\n\r\nx', 1),
    (b"Content-Type: multipart/mixed\r\n\r\nno boundary\r\n", 0),
    (b"\x00\xff garbage", 0),
])
def test_count_attachments_from_part_headers(raw: bytes, expected: int) -> None:
    assert adoption.count_attachments(raw) == expected
