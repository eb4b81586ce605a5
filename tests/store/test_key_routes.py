"""Data keys are looked up in their mailbox (issue 23): one shard on a distributed store.

``KeyService.by_id`` needs the mailbox the key belongs to and finds nothing elsewhere, cached or
not; the system mailbox's keys (queue entries, DKIM keys, staff TOTP secrets) go through
``system_by_id``, and the system mailbox's id, found by a statement that names no mailbox, is
looked up once per process and database, never remembered from a transaction that may roll back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from gateway.store.keys import KeyService, KeyUnavailable
from gateway.store.models import Mailbox
from gateway.testing.store import Store, open_store


@contextmanager
def _statements(store: Store) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(store.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.db.engine, "before_cursor_execute", record)


def test_a_key_is_found_in_its_mailbox_only_cached_or_not(store: Store) -> None:
    with store.db.write() as s:
        a = store.keys.create_mailbox(s, "pro")
        b = store.keys.create_mailbox(s, "pro")
    fresh = KeyService(store.ring)
    with _statements(store) as seen, store.db.read() as s:
        assert fresh.by_id(s, a.data_key_id, mailbox_id=a.mailbox_id).key == a.key
        with pytest.raises(KeyUnavailable):
            KeyService(store.ring).by_id(s, a.data_key_id, mailbox_id=b.mailbox_id)
        with pytest.raises(KeyUnavailable):  # held by this process, still not B's
            fresh.by_id(s, a.data_key_id, mailbox_id=b.mailbox_id)
    key_reads = [q for q in seen if "FROM data_keys" in q]
    assert len(key_reads) == 2 and all("data_keys.mailbox_id = " in q for q in key_reads), key_reads


def test_the_system_mailbox_is_looked_up_once(store: Store) -> None:
    with store.db.write() as s:
        first = store.keys.system_key(s)  # created here: not remembered (the transaction may roll back)
    with _statements(store) as seen:
        for _ in range(3):
            with store.db.write() as s:
                assert store.keys.system_key(s).data_key_id == first.data_key_id
            with store.db.read() as s:
                assert store.keys.system_by_id(s, first.data_key_id).key == first.key
    assert len([q for q in seen if "mailboxes.kind" in q]) == 1, seen


def test_a_system_key_of_another_mailbox_is_refused(store: Store) -> None:
    with store.db.write() as s:
        store.keys.system_key(s)
        pro = store.keys.create_mailbox(s, "pro")
    with store.db.read() as s, pytest.raises(KeyUnavailable):
        KeyService(store.ring).system_by_id(s, pro.data_key_id)


def test_a_system_mailbox_rolled_back_is_not_remembered(store: Store) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.db.write() as s:
        gone = store.keys.system_key(s)
        assert store.keys.system_key(s).mailbox_id == gone.mailbox_id  # found again in its transaction
        raise Boom
    with store.db.write() as s:
        made = store.keys.system_key(s)
        assert s.get(Mailbox, made.mailbox_id) is not None
    with store.db.read() as s:
        assert store.keys.system_key(s).mailbox_id == made.mailbox_id
        assert s.execute(select(Mailbox.id).where(Mailbox.kind == "system")).scalars().all() == [made.mailbox_id]


def test_one_key_service_over_two_databases_keeps_each_ones_system_mailbox(tmp_path: Path) -> None:
    one, two = open_store(f"sqlite:///{tmp_path / 'one.db'}"), open_store(f"sqlite:///{tmp_path / 'two.db'}")
    try:
        keys = KeyService(one.ring)
        with two.db.write() as s:
            keys.create_mailbox(s, "pro")  # the system mailboxes get different ids
        found: dict[int, int] = {}
        for store in (one, two, one, two):
            with store.db.write() as s:
                mk = keys.system_key(s)
                system = s.execute(select(Mailbox.id).where(Mailbox.kind == "system")).scalar_one()
                assert mk.mailbox_id == system
                found.setdefault(id(store), mk.mailbox_id)
                assert found[id(store)] == mk.mailbox_id
        assert len(set(found.values())) == 2
    finally:
        one.close()
        two.close()


def test_a_key_of_a_second_system_mailbox_is_found_and_remembered(store: Store) -> None:
    """Two nodes may each make a system mailbox at their first start: the lowest id is the
    one used from then on, and what the other sealed still opens (found once by its id)."""
    with store.db.write() as s:
        first = store.keys.system_key(s)
        second = store.keys.create_mailbox(s, "system")  # the other node's
    keys = KeyService(store.ring)
    with store.db.read() as s:
        assert keys.system_key(s).mailbox_id == first.mailbox_id
        assert keys.system_by_id(s, second.data_key_id).key == second.key
    with _statements(store) as seen, store.db.read() as s:
        assert keys.system_by_id(s, second.data_key_id).key == second.key
        assert keys.system_by_id(s, first.data_key_id).key == first.key
    assert seen == []
