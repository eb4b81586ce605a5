"""Login-failure lockouts are shared by every node through the database (issue 7)."""

from __future__ import annotations

from gateway.store.throttle import SharedThrottle
from gateway.testing.store import Store
from smtp.throttle import ThrottleConfig

CONFIG = ThrottleConfig(window=600, account_delay_after=2, account_lockout_after=4, ip_delay_after=50,
                        ip_lockout_after=100, base_delay=1.0, max_delay=8.0, lockout=300)


def test_failures_on_one_node_lock_the_account_on_another(store: Store) -> None:
    node_a, node_b = SharedThrottle(store.db, CONFIG), SharedThrottle(store.db, CONFIG)
    now = 1_800_000_000.0
    assert node_a.verdict("dr@clinic.test", "192.0.2.1", now).reason == "auth.ok"
    node_a.record_failure("dr@clinic.test", "192.0.2.1", now)
    delayed = node_b.record_failure("dr@clinic.test", "192.0.2.2", now + 1)
    assert delayed.allowed and delayed.delay == 1.0
    node_a.record_failure("dr@clinic.test", "192.0.2.3", now + 2)
    node_b.record_failure("dr@clinic.test", "192.0.2.4", now + 3)
    locked = node_a.verdict("DR@clinic.test", "198.51.100.1", now + 4)
    assert not locked.allowed and locked.reason == "auth.account_locked" and locked.locked_until == now + 303
    assert node_b.verdict("dr@clinic.test", "198.51.100.1", now + 304).allowed  # the lockout ends


def test_success_clears_the_account_but_not_the_address(store: Store) -> None:
    node = SharedThrottle(store.db, ThrottleConfig(ip_delay_after=2, account_delay_after=2))
    now = 1_800_000_000.0
    for i in range(3):
        node.record_failure("dr@clinic.test", "2001:db8::1", now + i)
    node.record_success("dr@clinic.test", "2001:db8::1", now + 3)
    after = node.verdict("dr@clinic.test", "2001:db8::99", now + 4)  # same /64
    assert after.allowed and after.delay > 0  # the address keeps its failures
    assert node.verdict("dr@clinic.test", "192.0.2.9", now + 4).delay == 0  # the account was cleared


def test_old_failures_fall_out_of_the_window(store: Store) -> None:
    node = SharedThrottle(store.db, CONFIG)
    now = 1_800_000_000.0
    for i in range(3):
        node.record_failure("dr@clinic.test", "192.0.2.1", now + i)
    assert node.verdict("dr@clinic.test", "192.0.2.1", now + 10).delay > 0
    assert node.verdict("dr@clinic.test", "192.0.2.1", now + 700).delay == 0
