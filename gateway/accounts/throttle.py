"""Login throttling shared by every node through the database (SPEC §6; issue 15).

Every login path (SMTP AUTH, IMAP LOGIN/AUTHENTICATE, the patient web, the admin console)
asks :meth:`LoginThrottle.admit` (:meth:`LoginThrottle.reserve`, waiting) *before* it checks a
secret. The reservation counts the attempt as *pending* atomically (one write transaction, rows
locked), and the limits apply to judged failures plus pending attempts, so concurrent attempts
beyond a limit are never checked; the check's verdict then turns the reservation into a failure
(:meth:`LoginThrottle.failed`) or gives it back (:meth:`LoginThrottle.succeeded`,
:meth:`LoginThrottle.released`). Checking first and counting afterwards, as before issue 15, let
40 concurrent wrong logins all be checked against a limit of 10.

Only judged failures lock (issue 22's defect: when a reservation counted as a failure at once,
50 concurrent *right* logins of one account from one network reached the lockout before any of
them was judged, and 20 of 50 IMAP clients were refused for 15 minutes). An attempt that finds
the limit reached by pending attempts alone is answered ``auth.busy`` by :meth:`reserve`;
:meth:`admit` waits for the verdicts (up to ``config.pending_wait`` seconds, polling the shared
counters with a growing pause) and reserves again.

A reservation never judged (a node stopped between reserving and checking, an error on a path
that does not give it back) still counts, as a failure, between one and two leases
(``config.pending_lease``) after it was made, however busy the counter: pending attempts are kept
in two generations by lease period (*epoch*: ``now // pending_lease``), ``pending`` for the
current one and ``pending_prev`` for the one before; when the epoch moves on, the older
generation becomes failures (:func:`_roll`). A verdict finds its attempt by the epoch it was
reserved in (:attr:`Reservation.epoch`); one that comes after its attempt was counted that way
changes nothing more (a failure is not counted twice; a success gives the network's back).
A verdict is applied to the counters of the active index key version (reserved before a rotation,
judged after it: the carried-over row).

Three counters per attempt, over a window (``config.window`` seconds, restarted when it
has passed):

- the account *from this client network* (``p:``): progressive delays, then a lockout of
  that pair only, so that an attacker elsewhere cannot lock the account's owner out;
- the client network across accounts (``i:``; IPv4 address or IPv6 /64): password spraying
  from one network is delayed, then locked;
- the account from networks it has never logged in from (``a:``): a looser ceiling that
  spaces attempts out (one per growing interval) instead of locking; networks the account
  logged in from recently (``config.known_network_days``) are not slowed by it.

Keys never hold what was typed nor the client's address (issue 20): they are
``<scope>/p:<A>|<N>``, ``<scope>/i:<N>`` and ``<scope>/a:<A>`` where ``A`` and ``N`` are keyed
indexes (:mod:`crypto.blind_index`, hex) of the normalised account name as typed (purpose
:data:`ACCOUNT_PURPOSE`) and of the client network (:data:`NETWORK_PURPOSE`), under the index key
version the database records as active, so every node computes the same keys. A password typed
into the login field thus leaves only an HMAC in ``login_counters``; without the index key
(kept in the key file, outside the database) nothing can be confirmed against it.

Index key rotation: while the key file holds more than one index key version, a reservation
also looks for the three counters under the other versions and carries an existing one over to
the active version's key (a row under the active key takes its counters, the older row is deleted:
on Citus the distribution column ``key`` is never updated) before counting. A lockout,
a delay or a known network thus survives the rotation; nothing resets but rows nobody touches,
which the sweep forgets once expired as before. :func:`clear_account` clears every version.

Every statement on ``login_counters`` has an equality on ``key`` (one Citus shard; issue 23),
but the reads of keys by the sweep and :func:`clear_account` (listed fan-outs); locks are taken
one key per statement, a transaction's keys in sorted order (:meth:`LoginThrottle._rows`).

Times are seconds since the epoch (every node shares the clock). Pure arithmetic lives in
:func:`_step`; the rest is bookkeeping.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from crypto.blind_index import IndexKeyring
from gateway.store import audit
from gateway.store.db import Database
from gateway.store.keys import IndexKeyMissing
from gateway.store.models import AdminAccount, LoginCounter, Mediator, ProAccount
from smtp.throttle import client_key

#: Reasons for which an attempt was refused without checking its secret.
REFUSED = frozenset({"auth.account_locked", "auth.ip_locked", "auth.account_slowed", "auth.busy"})
BUSY_FIRST_PAUSE = 0.05  # seconds admit() waits before reserving again; doubles up to BUSY_MAX_PAUSE
BUSY_MAX_PAUSE = 1.0
Runner = Callable[..., Awaitable[Any]]
"""How a caller runs a blocking function off the event loop (``asyncio.to_thread``, an executor)."""
_CLEANUP_EVERY = 500  # reservations between two sweeps of expired rows (per process)
ACCOUNT_PURPOSE = "login-name"
"""Keyed-index purpose of the account name as typed (normalised: stripped, case-folded)."""
NETWORK_PURPOSE = "network"
"""Keyed-index purpose of the client network (IPv4 address or IPv6 /64, :func:`client_key`)."""


class IndexKeys(Protocol):
    """Where the index keys come from (:class:`gateway.store.keys.KeyService`)."""

    def index_version(self, session: Session) -> tuple[IndexKeyring, int]: ...

    def index_keys(self, session: Session, version: int | None = None) -> IndexKeyring: ...


def account_label(account: str | None) -> str:
    """The account name as counted: stripped and case-folded; ``-`` when none was given."""
    return "-" if account is None else account.strip().casefold()


def counter_keys(index: IndexKeyring, version: int, scope: str, account: str | None, ip: str
                 ) -> tuple[str, str, str]:
    """The pair, network and account counter keys of an attempt under index key ``version``."""
    who = _account_hex(index, version, account)
    net = index.digest(NETWORK_PURPOSE, client_key(ip), version).hex()
    return f"{scope}/p:{who}|{net}", f"{scope}/i:{net}", f"{scope}/a:{who}"


def _account_hex(index: IndexKeyring, version: int, account: str | None) -> str:
    return index.digest(ACCOUNT_PURPOSE, account_label(account), version).hex()


def pair_prefix(index: IndexKeyring, version: int, scope: str, account: str) -> str:
    """What the keys of an account's pair counters (every network) start with (hex: no ``LIKE`` wildcard)."""
    return f"{scope}/p:{_account_hex(index, version, account)}|"


@dataclass(frozen=True)
class ThrottleConfig:
    window: float = 900.0  # seconds over which failures count
    delay_after: int = 3  # failures of one account from one network before answers are delayed
    lockout_after: int = 10  # ... before that account is locked out for that network
    ip_delay_after: int = 5  # failures from one network (any account) before answers are delayed
    ip_lockout_after: int = 30  # ... before the network is locked out
    account_slow_after: int = 30  # failures of one account from unknown networks before spacing
    account_max_spacing: float = 60.0  # longest interval between two such attempts
    base_delay: float = 1.0  # first delay; doubles with each further failure
    max_delay: float = 30.0
    lockout: float = 900.0  # seconds a lockout lasts
    known_network_days: float = 30.0  # a success from a network makes it known this long
    pending_lease: float = 120.0  # a reservation neither judged nor given back 1-2 leases is a failure
    pending_wait: float = 20.0  # admit() waits so long for pending attempts' verdicts, then auth.busy


@dataclass(frozen=True)
class Reservation:
    """What :meth:`LoginThrottle.reserve` decided. When ``allowed`` is false the secret must
    not be checked: answer ``reason`` at once (``retry_after``: when to try again)."""

    allowed: bool
    # auth.ok | auth.delayed | auth.account_locked | auth.ip_locked | auth.account_slowed | auth.busy
    reason: str
    delay: float = 0.0  # seconds to wait before answering if the check fails
    retry_after: float | None = None
    counted_account: bool = False
    account: str | None = None  # as given to reserve (the verdict finds the counters again from it)
    ip: str = ""
    # the lease periods the attempt is pending in, in the pair's and the network's counters (see
    # the module's docstring; a row never rolls back, so a node whose clock is behind uses the row's)
    epochs: tuple[int, int] = (0, 0)


def _step(failures: int, after: int, base: float, cap: float) -> float:
    """Doubling delay once ``failures`` reaches ``after``: base, 2*base, 4*base ... at most ``cap``."""
    if failures < after:
        return 0.0
    return min(base * 2.0 ** min(failures - after, 32), cap)


class LoginThrottle:
    """One login population's throttle; ``scope`` keeps its counters apart from the others'
    (professionals, patients, administrators each have their own limits)."""

    def __init__(self, db: Database, keys: IndexKeys, config: ThrottleConfig | None = None, *,
                 scope: str = "pro") -> None:
        self.db = db
        self.keys = keys
        self.config = config or ThrottleConfig()
        self.scope = scope
        self._calls = itertools.count(1)

    def _names(self, session: Session, account: str | None, ip: str
               ) -> tuple[tuple[str, str, str], list[tuple[str, str, str]]]:
        """The counter keys under the active index key version, and under every other version
        the key file holds (newest first; empty unless a rotation is under way)."""
        try:
            index, active = self.keys.index_version(session)
        except IndexKeyMissing:
            # This node's key file lacks the database's newest index key (a rotation started on
            # another node; the file is re-read on demand): keep serving under the newest version
            # it holds; the nodes holding both versions carry such counters over.
            index = self.keys.index_keys(session)
            active = index.current_version
        others = [counter_keys(index, v, self.scope, account, ip)
                  for v in sorted(index.versions, reverse=True) if v != active]
        return counter_keys(index, active, self.scope, account, ip), others

    def _rows(self, session: Session, keys: tuple[str, ...], now: float,
              others: list[tuple[str, str, str]] | None = None) -> dict[str, LoginCounter]:
        """The counters, created if missing and locked, each carried over from another index key
        version when it was missing (``others``: :meth:`_names`), so that a rotation resets no
        lockout, delay or known network.

        One key per statement, every key of the transaction (the active version's and the other
        versions') in sorted order: on PostgreSQL a transaction waits for a key (``FOR UPDATE``, or
        an ``INSERT`` meeting a row another transaction inserted, changed or deleted) only while it
        holds smaller keys, so two never wait on each other in a cycle; on Citus (``login_counters``
        distributed by ``key``) each statement goes to one shard, where a row lock over several
        shards is refused. On SQLite the write lock already serialises them."""
        older = {k for group in others or () for k in group}
        found: dict[str, LoginCounter] = {}
        created: set[str] = set()
        for key in sorted({*keys, *older}):
            row = _locked(session, key)
            while row is None and key in keys:  # again only if it was deleted since another node created it
                row = insert_counter(session, self.db, key, now)  # held by this transaction until it ends
                if row is not None:
                    created.add(key)
                else:
                    row = _locked(session, key)  # another transaction created it meanwhile
            if row is not None:
                found[key] = row
        for i, key in enumerate(keys):  # a counter new under the active version takes over an older one
            previous = next((found[group[i]] for group in others or () if group[i] in found), None)
            if key in created and previous is not None:
                _take_over(found[key], previous)
                session.delete(previous)  # the distribution column is never updated (Citus): moved, not renamed
        rows = {key: found[key] for key in keys}
        for row in rows.values():
            _fresh(row, self.config, now)
        return rows

    def reserve(self, account: str | None, ip: str, now: float) -> Reservation:
        """Count this attempt as pending before the secret is checked, or refuse it (``auth.busy``:
        the limit is reached by attempts not judged yet; :meth:`admit` waits for them)."""
        c = self.config
        if next(self._calls) % _CLEANUP_EVERY == 0:
            self._sweep(now)
        with self.db.write() as session:
            keys, others = self._names(session, account, ip)
            rows = self._rows(session, keys, now, others)
            pair, net, acct = (rows[k] for k in keys)
            # Attempts never judged, counted by _roll, may have reached a limit. A network's lockout
            # started so is not this caller's doing: its audit names no account.
            if _lock_due(pair, c.lockout_after, c.lockout, now):
                self._audit_lockout(session, "account", account, ip, now)
            if _lock_due(net, c.ip_lockout_after, c.lockout, now):
                self._audit_lockout(session, "network", None, ip, now)
            if (pair.locked_until or 0.0) > now:
                return Reservation(False, "auth.account_locked", retry_after=pair.locked_until)
            if (net.locked_until or 0.0) > now:
                return Reservation(False, "auth.ip_locked", retry_after=net.locked_until)
            known = pair.succeeded_at is not None and pair.succeeded_at > now - c.known_network_days * 86400
            if not known and (acct.next_allowed or 0.0) > now:
                return Reservation(False, "auth.account_slowed", retry_after=acct.next_allowed)
            if _counted(pair) >= c.lockout_after or _counted(net) >= c.ip_lockout_after:
                return Reservation(False, "auth.busy", retry_after=now + BUSY_FIRST_PAUSE)
            # The delay is due for the failures and pending attempts before this one (the first cost nothing).
            delay = max(_step(_counted(pair), c.delay_after, c.base_delay, c.max_delay),
                        _step(_counted(net), c.ip_delay_after, c.base_delay, c.max_delay))
            pair.pending += 1  # in the rows' current epochs (_rows rolled them)
            net.pending += 1
            epochs = (pair.pending_epoch or 0, net.pending_epoch or 0)
            if not known:
                acct.failures += 1
                spacing = _step(acct.failures, c.account_slow_after, c.base_delay, c.account_max_spacing)
                if spacing:
                    acct.next_allowed = now + spacing
        return Reservation(True, "auth.delayed" if delay else "auth.ok", delay, None, not known, account, ip, epochs)

    async def admit(self, account: str | None, ip: str, run: Runner = asyncio.to_thread) -> Reservation:
        """:meth:`reserve`, waiting while the limit is reached only by attempts not judged yet
        (concurrent logins of one account, or from one network, beyond the limits): reserved
        again after a growing pause until ``config.pending_wait`` has passed, then ``auth.busy``.
        ``run`` runs :meth:`reserve` off the event loop; the waits are the loop's, holding no
        thread (the verdicts that end them need threads)."""
        deadline = time.monotonic() + self.config.pending_wait
        pause = BUSY_FIRST_PAUSE
        while True:
            reservation: Reservation = await run(self.reserve, account, ip, time.time())
            if reservation.reason != "auth.busy" or time.monotonic() + pause > deadline:
                return reservation
            await asyncio.sleep(pause * random.uniform(0.5, 1.0))  # jitter, not a secret
            pause = min(pause * 2, BUSY_MAX_PAUSE)

    def _audit_lockout(self, session: Session, kind: str, account: str | None, ip: str, now: float) -> None:
        """A lockout starts: in the audit trail (who and from where). The account is named only when
        it exists (issue 20: a password typed into the user-name field must not land in the trail);
        a patient's typed INS never."""
        subject = _known_account(session, self.scope, account)
        details: dict[str, object] = {"scope": self.scope, "kind": kind, "minutes": round(self.config.lockout / 60)}
        if subject is None and account is not None and self.scope != "patient":
            details["account"] = "unknown"
        audit.record(session, actor="system:throttle", action="login.lockout", subject_ref=subject, peer=ip,
                     now=datetime.fromtimestamp(now, UTC), details=details)

    def failed(self, reservation: Reservation, now: float) -> None:
        """The secret was wrong (or the account may not log in): the pending attempt becomes a
        failure (unless it was counted as one already, its lease having passed); the lockout
        starts when failures reach the limit."""
        if not reservation.allowed:
            return
        c = self.config
        with self.db.write() as session:
            pair, net, _acct = self._judged_rows(session, reservation, now)
            for row, epoch, limit, kind in ((pair, reservation.epochs[0], c.lockout_after, "account"),
                                            (net, reservation.epochs[1], c.ip_lockout_after, "network")):
                if _take_pending(row, epoch):
                    row.failures += 1
                if _lock_due(row, limit, c.lockout, now):
                    self._audit_lockout(session, kind, reservation.account, reservation.ip, now)

    def _judged_rows(self, session: Session, reservation: Reservation, now: float
                     ) -> tuple[LoginCounter, LoginCounter, LoginCounter]:
        """The counters a verdict goes to: those of the reservation's account and network under the
        active index key version (carried over if a rotation happened since it was made)."""
        keys, others = self._names(session, reservation.account, reservation.ip)
        rows = self._rows(session, keys, now, others)
        pair, net, acct = (rows[k] for k in keys)
        return pair, net, acct

    def succeeded(self, reservation: Reservation, now: float) -> None:
        """The secret was right: give the reservation back; the network becomes known."""
        self._give_back(reservation, now, known=True)

    def released(self, reservation: Reservation, now: float) -> None:
        """Nothing was judged (an identity provider that cannot be asked, issue 19): give the
        reservation back as if the attempt had not been made; the network does not become known.
        An outage then never leaves professionals locked out once it is over."""
        self._give_back(reservation, now, known=False)

    def _give_back(self, reservation: Reservation, now: float, *, known: bool) -> None:
        if not reservation.allowed:
            return
        with self.db.write() as session:
            pair, net, acct = self._judged_rows(session, reservation, now)
            for row, epoch in zip((pair, net), reservation.epochs, strict=True):
                if not _take_pending(row, epoch):  # counted as a failure meanwhile: given back
                    row.failures = max(row.failures - 1, 0)
            if known:  # the right secret from this network: its failures (and a lockout meanwhile) end
                pair.failures, pair.succeeded_at, pair.locked_until = 0, now, None
            if reservation.counted_account:
                acct.failures = max(acct.failures - 1, 0)
                if not known and acct.failures < self.config.account_slow_after:
                    acct.next_allowed = None  # this very attempt had set it

    def _sweep(self, now: float) -> None:
        """Forget counters whose window, lockout, spacing and known-network mark have all passed:
        in a transaction of its own, one key per statement in key order (see :meth:`_rows`), each
        deleted only if it is still expired then."""
        with self.db.write() as session:
            for key in sorted(_expired_keys(session, self.config, now)):
                session.execute(delete(LoginCounter).where(LoginCounter.key == key, _expired(self.config, now)))


def _fresh(row: LoginCounter, config: ThrottleConfig, now: float) -> None:
    """A lockout that has ended, or a window that has passed, starts afresh; attempts pending since
    two epochs become failures (:func:`_roll`)."""
    lock_over = row.locked_until is not None and row.locked_until <= now
    if lock_over or (row.locked_until is None and row.window_start <= now - config.window):
        row.failures, row.window_start, row.locked_until = 0, now, None
    _roll(row, config.pending_lease, now)


def _epoch(now: float, lease: float) -> int:
    """The lease period ``now`` falls in (every node shares the clock)."""
    return int(now // lease)


def _roll(row: LoginCounter, lease: float, now: float) -> None:
    """Bring the pending generations to the current epoch: attempts pending since two epochs or
    more (reserved at least one lease ago, never judged) become failures."""
    epoch = _epoch(now, lease)
    if row.pending_epoch is None or not (row.pending or row.pending_prev):
        row.pending_epoch = epoch
        return
    moved = epoch - row.pending_epoch
    if moved <= 0:  # this epoch (or a node whose clock is behind: nothing moves back)
        return
    if moved == 1:
        row.failures += row.pending_prev
        row.pending_prev, row.pending = row.pending, 0
    else:
        row.failures += row.pending_prev + row.pending
        row.pending_prev = row.pending = 0
    row.pending_epoch = epoch


def _counted(row: LoginCounter) -> int:
    """Judged failures and attempts in flight: what the limits apply to."""
    return row.failures + row.pending + row.pending_prev


def _take_pending(row: LoginCounter, epoch: int) -> bool:
    """A verdict for an attempt reserved in ``epoch``: its pending count taken back; False when it
    was counted as a failure already (its lease passed, :func:`_roll`)."""
    if epoch == row.pending_epoch and row.pending:
        row.pending -= 1
        return True
    if row.pending_epoch is not None and epoch == row.pending_epoch - 1 and row.pending_prev:
        row.pending_prev -= 1
        return True
    return False


def _lock_due(row: LoginCounter, limit: int, lockout: float, now: float) -> bool:
    """Start a lockout when the failures have reached the limit and none is under way: True if so."""
    if row.failures >= limit and (row.locked_until or 0.0) <= now:
        row.locked_until = now + lockout
        return True
    return False


def _expired(config: ThrottleConfig, now: float) -> ColumnElement[bool]:
    c = LoginCounter
    return and_(c.window_start <= now - config.window,
                or_(and_(c.pending == 0, c.pending_prev == 0),  # or attempts never judged, long ago
                    c.pending_epoch <= _epoch(now - config.window, config.pending_lease) - 2),
                or_(c.locked_until.is_(None), c.locked_until <= now),
                or_(c.next_allowed.is_(None), c.next_allowed <= now),
                or_(c.succeeded_at.is_(None), c.succeeded_at <= now - config.known_network_days * 86400))


def _expired_keys(session: Session, config: ThrottleConfig, now: float) -> list[str]:
    """The keys of the counters the sweep forgets (on Citus a read of every shard: a listed fan-out)."""
    return list(session.execute(select(LoginCounter.key).where(_expired(config, now))).scalars())


def insert_counter(session: Session, db: Database, key: str, now: float) -> LoginCounter | None:
    """Create one counter unless it exists (then nothing, no error): the new counter, or None."""
    insert = sqlite_insert if db.is_sqlite else pg_insert
    return session.scalars(insert(LoginCounter).values(key=key, window_start=now, failures=0)
                           .on_conflict_do_nothing(index_elements=["key"]).returning(LoginCounter)).first()


def locked_counter(session: Session, db: Database, key: str, now: float) -> LoginCounter:
    """One counter, locked, created if missing (one key per statement: one Citus shard)."""
    while True:
        row = _locked(session, key)
        if row is None:
            row = insert_counter(session, db, key, now)  # None: another transaction created it meanwhile
        if row is not None:
            return row


def _locked(session: Session, key: str) -> LoginCounter | None:
    """One counter, locked (``FOR UPDATE`` with an equality on ``key``: one Citus shard), as stored now."""
    return session.execute(select(LoginCounter).where(LoginCounter.key == key).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one_or_none()


def _take_over(row: LoginCounter, previous: LoginCounter) -> None:
    """Give a counter just created under the active index key version an older version's state."""
    row.window_start, row.failures = previous.window_start, previous.failures
    row.locked_until, row.next_allowed, row.succeeded_at = (previous.locked_until, previous.next_allowed,
                                                            previous.succeeded_at)
    row.pending, row.pending_prev, row.pending_epoch = previous.pending, previous.pending_prev, previous.pending_epoch


def _known_account(session: Session, scope: str, account: str | None) -> str | None:
    """``<scope>:<name>`` of an existing professional or console account, else None."""
    if account is None or scope == "patient":
        return None
    name = account.strip()
    if scope == "pro":
        found = session.execute(select(ProAccount.address).where(ProAccount.address == name.lower())).first()
    elif scope == "admin":  # administrators and mediators share the console's throttle
        found = (session.execute(select(AdminAccount.name).where(AdminAccount.name == name)).first()
                 or session.execute(select(Mediator.name).where(Mediator.name == name)).first())
    else:
        found = None
    return f"{scope}:{found[0]}"[:64] if found is not None else None


def clear_account(session: Session, keys: IndexKeys, account: str, *, scope: str = "pro") -> None:
    """Forget an account's failures and lockouts from every network (an admin just reset its
    password), under every index key version held; the networks it is known from stay known.
    One key per statement in key order (see :meth:`LoginThrottle._rows`)."""
    index = keys.index_keys(session)
    accounts = {f"{scope}/a:{_account_hex(index, v, account)}" for v in index.versions}
    pairs = _pair_keys(session, [pair_prefix(index, v, scope, account) for v in index.versions])
    for key in sorted({*accounts, *pairs}):
        if key in accounts:
            session.execute(delete(LoginCounter).where(LoginCounter.key == key))
        elif (row := _locked(session, key)) is not None:
            row.failures, row.locked_until = 0, None


def _pair_keys(session: Session, prefixes: list[str]) -> list[str]:
    """The keys of an account's pair counters, one per network it was tried from, under the given
    key prefixes (the network is not known: on Citus a read of every shard, a listed fan-out)."""
    c = LoginCounter
    return list(session.execute(select(c.key).where(or_(*(c.key.like(p + "%") for p in prefixes)))).scalars())
