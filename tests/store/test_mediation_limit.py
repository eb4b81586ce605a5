"""A mediator's lookups by INS and new codes, limited per account on every node (the INS sweep).

Runs on SQLite and PostgreSQL (``store`` fixture); two :class:`Database` handles stand for two
nodes sharing the database."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from gateway.accounts import mediators
from gateway.accounts.mediation_limit import MediationLimiter, MediationLimits, Rate, gcra
from gateway.accounts.throttle import LoginThrottle
from gateway.store.db import Database
from gateway.store.models import AuditEntry, LoginCounter
from gateway.testing.store import Store

NOW = 1_800_000_000.0
LIMITS = MediationLimits(lookup=Rate(60, 3), code=Rate(30, 2))  # one lookup a minute, 3 at once


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def second(store: Store, db_url: str) -> Iterator[Database]:
    """Another node's handle on the same database."""
    db = Database(db_url, pool_size=5)
    try:
        yield db
    finally:
        db.dispose()


def _mediator(store: Store, name: str) -> None:
    with store.db.write() as s:
        mediators.add_mediator(s, store.keys, name, "une phrase de médiation", organisation=None,
                               now=datetime.now(UTC))


def _entries(store: Store, action: str) -> list[AuditEntry]:
    with store.db.read() as s:
        return list(s.query(AuditEntry).filter(AuditEntry.action == action).order_by(AuditEntry.id))


def test_gcra_admits_the_burst_then_one_per_interval() -> None:
    rate, tat, admitted = Rate(60, 3), None, []
    for t in (0, 0, 0, 0, 59, 60, 61):
        ok, new_tat, wait = gcra(tat, NOW + t, rate)
        admitted.append((ok, round(wait)))
        tat = new_tat if ok else tat
    assert admitted == [(True, 0), (True, 0), (True, 0), (False, 60), (False, 1), (True, 0), (False, 59)]


def test_the_limit_is_shared_by_two_nodes_and_ends_as_the_window_passes(store: Store, second: Database) -> None:
    _mediator(store, "desk-a")
    clock = Clock()
    node_a, node_b = MediationLimiter(store.db, LIMITS, clock), MediationLimiter(second, LIMITS, clock)
    nodes = [node_a, node_b, node_a, node_b]
    verdicts = [n.admit("mediator", "desk-a", "lookup", via="console", peer="192.0.2.1") for n in nodes]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert (verdicts[3].limit, verdicts[3].retry_after) == ("lookup", 60)
    clock.now = NOW + 30
    assert not node_a.admit("mediator", "desk-a", "lookup", via="api", peer=None).allowed
    clock.now = NOW + 60  # one interval later: one more, not two
    assert node_b.admit("mediator", "desk-a", "lookup", via="api", peer=None).allowed
    assert not node_a.admit("mediator", "desk-a", "lookup", via="api", peer=None).allowed
    clock.now = NOW + 60 + 180  # the whole burst again once the bucket has refilled
    assert [node_a.admit("mediator", "desk-a", "lookup", via="api", peer=None).allowed
            for _ in range(4)] == [True, True, True, False]


def test_another_mediator_and_administrators_are_unaffected(store: Store, second: Database) -> None:
    _mediator(store, "desk-a")
    _mediator(store, "desk-b")
    clock = Clock()
    node_a, node_b = MediationLimiter(store.db, LIMITS, clock), MediationLimiter(second, LIMITS, clock)
    for _ in range(4):
        node_a.admit("mediator", "desk-a", "lookup", via="console", peer=None)
    assert not node_b.admit("mediator", "desk-a", "lookup", via="console", peer=None).allowed
    assert node_b.admit("mediator", "desk-b", "lookup", via="console", peer=None).allowed
    # an administrator named like a mediator is not counted at all (administrators are not limited)
    assert all(node_a.admit("admin", "desk-a", "lookup", via="api", peer=None).allowed for _ in range(50))
    with store.db.read() as s:
        keys = sorted(s.execute(select(LoginCounter.key)).scalars())
    assert len(keys) == 2 and all(k.startswith("mediation/lookup:") for k in keys)


def test_refusals_and_the_first_crossing_are_audited_without_any_ins(store: Store) -> None:
    _mediator(store, "desk-a")
    clock = Clock()
    node = MediationLimiter(store.db, LIMITS, clock)
    for _ in range(6):
        node.admit("mediator", "desk-a", "lookup", via="console", peer="192.0.2.7")
    (reached,) = _entries(store, "mediator.rate_limit_reached")
    refused = _entries(store, "mediator.rate_limited")
    assert len(refused) == 3
    for entry in (reached, *refused):
        assert (entry.actor, entry.subject_ref, entry.peer) == ("mediator:desk-a", "mediator:desk-a", "192.0.2.7")
        assert json.loads(entry.details) == {"via": "console", "limit": "lookup", "per_hour": 60, "burst": 3,
                                             "retry_after_s": 60}
    clock.now = NOW + 60  # admitted again, then refused again: a second crossing
    assert node.admit("mediator", "desk-a", "lookup", via="console", peer=None).allowed
    assert not node.admit("mediator", "desk-a", "lookup", via="console", peer=None).allowed
    assert len(_entries(store, "mediator.rate_limit_reached")) == 2
    assert len(_entries(store, "mediator.rate_limited")) == 4


def test_a_new_code_counts_as_a_lookup_and_a_refused_one_counts_nothing(store: Store) -> None:
    _mediator(store, "desk-a")
    node = MediationLimiter(store.db, LIMITS, Clock())
    codes = [node.admit("mediator", "desk-a", "code", via="api", peer=None) for _ in range(3)]
    assert [c.allowed for c in codes] == [True, True, False] and codes[2].limit == "code"
    assert codes[2].retry_after == 120
    # two codes used two of the three lookups; the refused third code used none
    lookups = [node.admit("mediator", "desk-a", "lookup", via="api", peer=None).allowed for _ in range(2)]
    assert lookups == [True, False]
    (entry, *_) = _entries(store, "mediator.rate_limited")
    assert json.loads(entry.details)["limit"] == "code"


def test_concurrent_lookups_from_two_nodes_never_exceed_the_burst(store: Store, second: Database) -> None:
    _mediator(store, "desk-a")
    limits = MediationLimits(lookup=Rate(1, 5), code=Rate(1, 1))
    nodes = [MediationLimiter(store.db, limits, Clock()), MediationLimiter(second, limits, Clock())]
    admitted: list[bool] = []
    lock = threading.Lock()

    def sweep(node: MediationLimiter) -> None:
        for _ in range(8):
            ok = node.admit("mediator", "desk-a", "lookup", via="api", peer=None).allowed
            with lock:
                admitted.append(ok)

    threads = [threading.Thread(target=sweep, args=(nodes[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 32 and admitted.count(True) == 5


def test_the_login_throttle_sweep_keeps_a_counter_until_its_bucket_is_full(store: Store) -> None:
    _mediator(store, "desk-a")
    limits = MediationLimits(lookup=Rate(1, 3), code=Rate(1, 1))  # one an hour: full again 3 hours later
    node = MediationLimiter(store.db, limits, Clock())
    for _ in range(4):
        node.admit("mediator", "desk-a", "lookup", via="api", peer=None)
    sweeper = LoginThrottle(store.db, store.keys)  # its window (900 s) has long passed, the bucket is not full
    sweeper._sweep(NOW + 3 * 3600 - 1)
    with store.db.read() as s:
        assert s.query(LoginCounter).count() == 1
    assert not MediationLimiter(store.db, limits, lambda: NOW + 3599).admit(
        "mediator", "desk-a", "lookup", via="api", peer=None).allowed
    sweeper._sweep(NOW + 3 * 3600)  # full again: forgotten, the same state as no counter
    with store.db.read() as s:
        assert s.query(LoginCounter).count() == 0
