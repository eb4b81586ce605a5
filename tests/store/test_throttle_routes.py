"""The login throttle's statements on ``login_counters`` each go to one Citus shard (issue 23).

``login_counters`` is distributed by ``key`` (gateway/store/distribution.py). The throttle runs on
PostgreSQL through a whole life (reservations, successes, releases, lockouts, an index key rotation
carrying counters over, an admin reset, the sweep) while every statement it sends is captured; each
must analyse clean (tests/dist_statements.py: an equality on ``key``, an IN list only in a read; no
update of ``key``), but for the listed fan-outs (``FANOUTS``: reads only). And within one transaction
the keys are taken one per statement in sorted order, so two transactions never wait on each other
in a cycle.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from gateway.accounts import throttle as throttle_module
from gateway.accounts.throttle import _CLEANUP_EVERY, LoginThrottle, ThrottleConfig, clear_account, counter_keys
from gateway.store.index_keys import record_index_checks
from gateway.store.keys import KeyService
from gateway.store.models import LoginCounter
from gateway.testing import pg
from gateway.testing.store import Store, open_store
from tests.dist_plugin import allowance
from tests.dist_statements import analyse

pytestmark = pytest.mark.postgres

NOW = 1_800_000_000.0
CONFIG = ThrottleConfig(window=600, delay_after=2, lockout_after=4, ip_delay_after=50, ip_lockout_after=6,
                        account_slow_after=3, account_max_spacing=30, base_delay=1.0, max_delay=8.0, lockout=300)
THROTTLE_FILE = os.path.abspath(throttle_module.__file__)
KEY_PARAMS = ("key", "key_1", "key_2")


@pytest.fixture
def pg_store(pg_admin: str) -> Iterator[Store]:
    with pg.temporary_database() as url:
        opened = open_store(url)
        try:
            yield opened
        finally:
            opened.close()


def _sender() -> str:
    """``module:function`` of the throttle's innermost frame that sent the statement."""
    frame = sys._getframe(1)
    while frame is not None:
        if os.path.abspath(frame.f_code.co_filename) == THROTTLE_FILE:
            return f"{frame.f_globals['__name__']}:{frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return ""


class Statements:
    """Every statement on ``login_counters`` (text, parameters, sender), in transactions."""

    def __init__(self, store: Store) -> None:
        self.engine = store.db.engine
        self.transactions: list[list[tuple[str, dict[str, Any], str]]] = [[]]

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._record)
        event.listen(self.engine, "commit", self._end)
        event.listen(self.engine, "rollback", self._end)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)
        event.remove(self.engine, "commit", self._end)
        event.remove(self.engine, "rollback", self._end)

    def _record(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if "login_counters" in statement:
            rows = parameters if isinstance(parameters, list | tuple) else [parameters]  # executemany: ORM DELETEs
            for params in rows:
                self.transactions[-1].append((" ".join(statement.split()), params if isinstance(params, dict) else {},
                                              _sender()))

    def _end(self, _conn: Any) -> None:
        if self.transactions[-1]:
            self.transactions.append([])

    @property
    def all(self) -> list[tuple[str, dict[str, Any], str]]:
        return [s for t in self.transactions for s in t]


def _locked_keys(transaction: list[tuple[str, dict[str, Any], str]]) -> list[str]:
    """The keys a transaction takes, in the order it first asks for each: row locks, inserts,
    deletes (one key each; a later statement on a key it holds waits for nothing)."""
    keys: list[str] = []
    for sql, params, _ in transaction:
        if "FOR UPDATE" in sql or sql.startswith(("INSERT", "DELETE")):
            named = [params[p] for p in KEY_PARAMS if p in params]
            assert len(named) == 1, f"one key per locking statement: {sql} {sorted(params)}"
            keys += [k for k in named if k not in keys]
    return keys


def _life(store: Store) -> KeyService:
    """The throttle through reservations, lockouts, a rotation, an admin reset and the sweep."""
    assert store.ring.index is not None
    with store.db.write() as session:
        record_index_checks(session, store.ring.index, [1])
    before = LoginThrottle(store.db, store.keys, CONFIG)
    owner = before.reserve("dr@clinic.test", "192.0.2.1", NOW)
    before.succeeded(owner, NOW)
    before.released(before.reserve("dr@clinic.test", "192.0.2.2", NOW), NOW)
    for i in range(6):  # the pair locked, the network locked, the account spaced out
        before.failed(before.reserve(f"user{i % 2}@clinic.test" if i > 3 else "dr@clinic.test", "198.51.100.7",
                                     NOW + i), NOW + i)
    rotated = KeyService(store.ring.with_index(store.ring.index.with_new_version()))
    assert rotated.ring.index is not None
    with store.db.write() as session:
        record_index_checks(session, rotated.ring.index, [2])
    after = LoginThrottle(store.db, rotated, CONFIG)
    assert not after.reserve("dr@clinic.test", "198.51.100.7", NOW + 7).allowed  # carried over, still locked
    again = after.reserve("dr@clinic.test", "192.0.2.1", NOW + 8)  # carried over: the network is still known
    assert again.allowed and not again.counted_account
    after.succeeded(again, NOW + 8)
    with store.db.write() as session:
        clear_account(session, rotated, "DR@clinic.test")
    after._calls = itertools.count(_CLEANUP_EVERY)  # the next reservation sweeps expired counters first
    after.reserve("late@clinic.test", "192.0.2.3", NOW + 10_000)
    return rotated


def test_every_throttle_statement_on_login_counters_goes_to_one_shard(pg_store: Store) -> None:
    with Statements(pg_store) as seen:
        _life(pg_store)
    assert any("FOR UPDATE" in sql for sql, _, _ in seen.all)
    problems = [(sql, sender, p) for sql, _, sender in seen.all for p in analyse(sql)
                if p.table == "login_counters" and allowance(p.rule, p.table, sender) is None]
    assert problems == []
    fanouts = {sender for sql, _, sender in seen.all if analyse(sql)}
    assert fanouts == {"gateway.accounts.throttle:_pair_keys", "gateway.accounts.throttle:_expired_keys"}
    assert not [sql for sql, _, sender in seen.all if sender in fanouts and "FOR UPDATE" in sql]


def test_keys_are_taken_in_sorted_order_within_each_transaction(pg_store: Store) -> None:
    with Statements(pg_store) as seen:
        _life(pg_store)
    carried = False
    for transaction in seen.transactions:
        keys = _locked_keys(transaction)
        assert keys == sorted(keys), [sql for sql, _, _ in transaction]
        carried = carried or any(sql.startswith("DELETE") for sql, _, s in transaction if s.endswith(":reserve"))
    assert carried  # a carry-over happened: its older row deleted in the same ordered transaction


def test_the_former_statements_were_refused() -> None:
    """What the throttle sent before (issue 23): a row lock over several shards, a key renamed."""
    locked = ("SELECT login_counters.key FROM login_counters WHERE login_counters.key IN "
              "(%(key_1_1)s, %(key_1_2)s, %(key_1_3)s) ORDER BY login_counters.key FOR UPDATE")
    renamed = "UPDATE login_counters SET key=%(key)s WHERE login_counters.key = %(login_counters_key)s"
    assert {p.rule for p in analyse(locked)} == {"unrouted"}
    assert {p.rule for p in analyse(renamed)} == {"moved"}


def test_a_carry_over_moves_every_field_and_leaves_no_older_row(pg_store: Store) -> None:
    rotated = _life(pg_store)
    with pg_store.db.read() as session:
        index, version = rotated.index_version(session)
        rows = {row.key: row for row in session.query(LoginCounter)}
    assert version == 2
    old_pair, old_net, _ = counter_keys(index, 1, "pro", "dr@clinic.test", "192.0.2.1")
    new_pair, _, _ = counter_keys(index, 2, "pro", "dr@clinic.test", "192.0.2.1")
    assert old_pair not in rows and old_net not in rows
    assert rows[new_pair].succeeded_at == NOW + 8 and rows[new_pair].failures == 0

