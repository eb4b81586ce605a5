"""Mailboxes and their data keys: creation, unwrapping (cached), rotation, shredding (SPEC §8).

A data key is wrapped by a master key version with associated data naming its mailbox,
so a wrapped key copied onto another mailbox does not unwrap.
Shredding deletes the wrapped keys: the mailbox's ciphertexts become unreadable.

Master key versions and running processes (issue 14):

- ``key_checks`` holds one key-check value per master key version the database uses
  (:func:`check_ring` compares a key file with it; :func:`record_checks` writes it). The
  highest recorded version is the *active* one: new data keys are wrapped with it, so a
  version added to the key file ahead of time (``gateway keys rotate --prepare``) is not used
  before ``gateway keys rotate`` records it.
- :class:`KeyService` re-reads the key file (``reader``) when a data key names a version its
  ring lacks (at most once per :data:`RELOAD_MIN_INTERVAL_S`, one thread at a time) and when
  asked (SIGHUP). A re-read file that does not open every version the database uses is not
  taken: the old ring stays, one line is logged.
- Rotation re-wraps in small batches (:func:`gateway.store.rewrap.rewrap_batch`).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from crypto.blind_index import IndexKeyring
from crypto.envelope import DecryptionError, aad, new_data_key, open_sealed, seal
from crypto.keyring import MasterKeyring, WrappedKey
from gateway.store.index_keys import (
    IndexCheckReport,
    active_index_version,
    add_check_values,
    check_index,
    recorded_index_checks,
)
from gateway.store.models import DataKey, KeyCheck, Mailbox, QueueEntry

log = logging.getLogger("gateway.keys")

_SYSTEM_CREATED = "system_mailbox_created"  # ``session.info``: the system mailbox this transaction made
RELOAD_MIN_INTERVAL_S = 2.0
# ``session.info`` key of what one transaction remembers about keys (the active index version,
# patients' current data keys: gateway.store.audit_links); forgotten when a key is shredded.
TRANSACTION_KEYS = "transaction_keys"
"""On-demand re-reads of the key file: at most one per interval (a missing version costs one
file read and a few indexed queries per interval, not one per request)."""


def _dk_aad(mailbox_uid: str) -> bytes:
    return aad("dk", mailbox_uid, "data-key")


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _versions(values: Iterable[int]) -> str:
    return ", ".join(f"v{v}" for v in sorted(values)) or "none"


class KeyUnavailable(Exception):
    """The data key is gone (shredded) or cannot be unwrapped with the configured master keys."""


class KeyNotFound(KeyUnavailable):
    """The mailbox holds no data key by that id (shredded, or the reference names another mailbox's)."""


class IndexKeyMissing(KeyUnavailable):
    """The key file holds no index key (``index-v<N>``) or not the one needed."""


@dataclass(frozen=True)
class MailboxKey:
    mailbox_id: int
    mailbox_uid: str
    data_key_id: int
    key: bytes

    def seal(self, purpose: str, item: str, plaintext: bytes | Sequence[bytes]) -> bytes:
        return seal(self.key, plaintext, aad(purpose, self.mailbox_uid, item))

    def open(self, purpose: str, item: str, blob: bytes) -> bytes:
        return open_sealed(self.key, blob, aad(purpose, self.mailbox_uid, item))


# --------------------------------------------------------------------------- key-check values

def versions_in_use(session: Session) -> list[int]:
    """Master key versions some data key is wrapped with (one index probe per version)."""
    found: list[int] = []
    last = 0
    while True:
        version = session.execute(
            select(func.min(DataKey.master_version)).where(DataKey.master_version > last)
        ).scalar()
        if version is None:
            return found
        found.append(int(version))
        last = int(version)


def recorded_checks(session: Session) -> dict[int, bytes]:
    return {int(v): bytes(c) for v, c in session.execute(select(KeyCheck.version, KeyCheck.check_value)).all()}


def active_version(session: Session) -> int | None:
    """The highest recorded version (the one new data keys are wrapped with), None before any."""
    value = session.execute(select(func.max(KeyCheck.version))).scalar()
    return None if value is None else int(value)


def count_under(session: Session, version: int) -> int:
    return int(session.execute(select(func.count()).select_from(DataKey)
                               .where(DataKey.master_version == version)).scalar_one())


def sample_opens(session: Session, ring: MasterKeyring, version: int) -> bool:
    """Whether ``ring`` unwraps the first data key wrapped with ``version``."""
    row = session.execute(
        select(DataKey.wrapped, Mailbox.uid).join(Mailbox, Mailbox.id == DataKey.mailbox_id)
        .where(DataKey.master_version == version).order_by(DataKey.id).limit(1)
    ).first()
    if row is None:
        return True
    try:
        ring.unwrap(WrappedKey(version, row[0]), _dk_aad(row[1]))
    except DecryptionError:
        return False
    return True


@dataclass(frozen=True)
class KeyCheckReport:
    """How a key file compares with what the database uses."""

    missing: tuple[int, ...] = ()
    """Versions the database uses that the file does not hold."""
    wrong: tuple[int, ...] = ()
    """Versions the file holds with another key than the database's."""
    unrecorded: tuple[int, ...] = ()
    """Versions in use without a check value yet, opened by a sample data key (to record)."""
    recorded: tuple[int, ...] = ()
    index: IndexCheckReport = field(default_factory=IndexCheckReport)
    """The file's index keys against ``index_key_checks`` (issue 20)."""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.wrong and self.index.ok

    @property
    def bad(self) -> tuple[int, ...]:
        return tuple(sorted({*self.missing, *self.wrong}))

    def problem(self) -> str:
        if not self.bad:
            return self.index.problem()
        parts = []
        if self.missing:
            parts.append(f"{_versions(self.missing)} not in the file")
        if self.wrong:
            parts.append(f"{_versions(self.wrong)} with a different key")
        text = (f"does not open master key version(s) {_versions(self.bad)} that the database uses "
                f"({'; '.join(parts)})")
        return text if self.index.ok else f"{text}, and {self.index.problem()}"


def check_ring(session: Session, ring: MasterKeyring, *, with_table: bool = True,
               with_index_table: bool = True) -> KeyCheckReport:
    """Compare ``ring`` with the database: its check values, and a sample data key per version
    in use without one (databases from before the ``key_checks`` table), and its index keys
    with ``index_key_checks`` (databases from before migration 0013 have none). Reads only."""
    checks = recorded_checks(session) if with_table else {}
    index = check_index(recorded_index_checks(session) if with_index_table else {}, ring.index)
    in_use = versions_in_use(session)
    missing = sorted(v for v in {*checks, *in_use} if not ring.has(v))
    wrong = [v for v, c in checks.items() if ring.has(v) and not ring.verify_key_check(v, c)]
    unrecorded = []
    for version in in_use:
        if version in checks or not ring.has(version):
            continue
        if sample_opens(session, ring, version):
            unrecorded.append(version)
        else:
            wrong.append(version)
    return KeyCheckReport(tuple(missing), tuple(sorted(wrong)), tuple(unrecorded), tuple(sorted(checks)), index)


def record_checks(session: Session, ring: MasterKeyring, versions: Iterable[int], *,
                  now: datetime | None = None) -> list[int]:
    """Record the check value of each of ``versions`` not recorded yet; returns those added."""
    return add_check_values(session, KeyCheck, ring.key_check, versions, now)


def forget_check(session: Session, version: int) -> None:
    session.execute(delete(KeyCheck).where(KeyCheck.version == version))


# --------------------------------------------------------------------------- fan-outs of the service
# Statements with no equality on the distribution column, each on distribution.py's allow-list.

def find_system_mailbox(session: Session) -> int | None:
    """The system mailbox's id (the first one: two nodes may have made one each), None before any."""
    found = session.execute(select(Mailbox.id).where(Mailbox.kind == "system").order_by(Mailbox.id).limit(1)).scalar()
    return None if found is None else int(found)


def find_system_key_owner(session: Session, data_key_id: int) -> int | None:
    """The system mailbox holding the data key ``data_key_id``, if one does."""
    found = session.execute(select(DataKey.mailbox_id).join(Mailbox, Mailbox.id == DataKey.mailbox_id)
                            .where(DataKey.id == data_key_id, Mailbox.kind == "system")).scalar()
    return None if found is None else int(found)


def not_under(session: Session, version: int, limit: int) -> Sequence[tuple[DataKey, str]]:
    """Up to ``limit`` data keys (with their mailbox's uid) not wrapped with ``version``."""
    return session.execute(
        select(DataKey, Mailbox.uid).join(Mailbox, Mailbox.id == DataKey.mailbox_id)
        .where(DataKey.master_version != version).order_by(DataKey.id).limit(limit)
    ).tuples().all()


def unlink_queue_entries(session: Session, data_key_ids: Sequence[int]) -> None:
    """Null the key reference of the queue entries sealed under ``data_key_ids`` (no foreign key
    does it, issue 23)."""
    session.execute(update(QueueEntry).where(QueueEntry.data_key_id.in_(data_key_ids)).values(data_key_id=None)
                    .execution_options(synchronize_session=False))


# --------------------------------------------------------------------------- the service

Reader = Callable[[], MasterKeyring]


class KeyService:
    """Creates mailboxes with data keys and hands out unwrapped keys (small LRU cache).

    ``reader`` re-reads the key file (``gateway.store.keyfile.load_keyring``); without one (tests,
    tools) the ring never changes.
    """

    def __init__(self, ring: MasterKeyring, *, cache_size: int = 4096, reader: Reader | None = None,
                 source: str = "the master key file") -> None:
        self.ring = ring
        self._cache: OrderedDict[int, MailboxKey] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._reader = reader
        self.source = source
        self._reload_lock = threading.Lock()
        self._last_reload = float("-inf")
        self._system: WeakKeyDictionary[Engine, int] = WeakKeyDictionary()  # the system mailbox, per database
        self._other_systems: WeakKeyDictionary[Engine, set[int]] = WeakKeyDictionary()  # see system_by_id
        self.reloads = 0

    # -- the key file, re-read

    def reload(self, session: Session, *, reason: str = "asked") -> bool:
        """Re-read the key file now; take it only if it opens every version the database uses."""
        if self._reader is None:
            return False
        with self._reload_lock:
            self._last_reload = time.monotonic()
            return self._reload_locked(session, reason)

    def _reload_locked(self, session: Session, reason: str) -> bool:
        assert self._reader is not None
        old = self.ring
        try:
            new = self._reader()
        except Exception as exc:  # unreadable, malformed, insecure mode: keep serving with what we have
            log.error(f"master key file not re-read ({reason}): {exc}; keeping {_versions(old.versions)}")
            return False
        try:
            report = check_ring(session, new)
        except Exception as exc:
            log.error(f"master key file not re-read ({reason}): cannot compare it with the database "
                      f"({type(exc).__name__}); keeping {_versions(old.versions)}")
            return False
        if not report.ok:
            log.error(f"master key file not re-read ({reason}): {self.source} {report.problem()}; "
                      f"keeping {_versions(old.versions)}")
            return False
        self.ring = new
        self.reloads += 1
        if new != old:
            log.info(f"master key file re-read ({reason}): {_versions(new.versions)} "
                     f"(was {_versions(old.versions)})")
        return True

    def _ring_with(self, session: Session, version: int) -> MasterKeyring:
        """The ring, re-read first when it lacks ``version`` (rate-limited, one thread at a time)."""
        ring = self.ring
        if ring.has(version) or self._reader is None:
            return ring
        with self._reload_lock:
            if self.ring.has(version):  # another thread has just re-read it
                return self.ring
            now = time.monotonic()
            if now - self._last_reload >= RELOAD_MIN_INTERVAL_S:
                self._last_reload = now
                self._reload_locked(session, f"a data key is wrapped with v{version}")
            return self.ring

    def index_keys(self, session: Session, version: int | None = None) -> IndexKeyring:
        """The key file's index keys, re-read first (rate-limited) when they lack ``version``;
        :class:`IndexKeyMissing` when the file has none."""
        if version is not None and (self.ring.index is None or not self.ring.index.has(version)) \
                and self._reader is not None:
            with self._reload_lock:
                index = self.ring.index
                now = time.monotonic()
                if (index is None or not index.has(version)) and now - self._last_reload >= RELOAD_MIN_INTERVAL_S:
                    self._last_reload = now
                    self._reload_locked(session, f"the database uses index key index-v{version}")
        index = self.ring.index
        if index is None:
            raise IndexKeyMissing(f"{self.source} has no index key (index-v<N>); the gateway adds one at "
                                  "start ('gateway db upgrade' or 'gateway serve')")
        return index

    def index_version(self, session: Session) -> tuple[IndexKeyring, int]:
        """The index keys and the version to index new rows with: the database's active one."""
        active = active_index_version(session)
        index = self.index_keys(session, active)
        if active is None:
            return index, index.current_version
        if index.has(active):
            return index, active
        raise IndexKeyMissing(f"{self.source} lacks index-v{active}, the database's current index key "
                              "(copy the current key file here; it is re-read on demand and on SIGHUP)")

    def wrap_version(self, session: Session) -> tuple[MasterKeyring, int]:
        """The ring and the version to wrap new data keys with: the database's active version."""
        active = active_version(session)
        if active is None:
            return self.ring, self.ring.current_version
        ring = self._ring_with(session, active)
        if ring.has(active):
            return ring, active
        older = [v for v in ring.versions if v < active]
        version = older[-1] if older else ring.current_version
        log.warning(f"{self.source} lacks v{active}, the database's current master key version: "
                    f"wrapping a new data key with v{version}")
        return ring, version

    # -- mailboxes and their keys

    def create_mailbox(self, session: Session, kind: str, *, now: datetime | None = None) -> MailboxKey:
        at = now or datetime.now(UTC)
        mailbox = Mailbox(uid=secrets.token_hex(16), kind=kind, created_at=at)
        session.add(mailbox)
        session.flush()
        key = new_data_key()
        ring, version = self.wrap_version(session)
        wrapped = ring.wrap(key, _dk_aad(mailbox.uid), version=version)
        row = DataKey(mailbox_id=mailbox.id, master_version=wrapped.version, wrapped=wrapped.blob, created_at=at)
        session.add(row)
        session.flush()
        mk = MailboxKey(mailbox.id, mailbox.uid, row.id, key)
        self._remember(mk)
        return mk

    def _remember(self, mk: MailboxKey) -> None:
        with self._lock:
            self._cache[mk.data_key_id] = mk
            self._cache.move_to_end(mk.data_key_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def forget(self, data_key_ids: list[int] | None = None) -> None:
        with self._lock:
            if data_key_ids is None:
                self._cache.clear()
            else:
                for key_id in data_key_ids:
                    self._cache.pop(key_id, None)

    def cached(self, data_key_id: int) -> MailboxKey | None:
        """The unwrapped key if this process holds it (no database access)."""
        with self._lock:
            return self._cache.get(data_key_id)

    def by_id(self, session: Session, data_key_id: int, *, mailbox_id: int) -> MailboxKey:
        """A data key of the mailbox ``mailbox_id`` by its id: one shard on a distributed store
        (issue 23). :class:`KeyNotFound` when the mailbox holds no such key (shredded, or a key
        reference swapped in from another mailbox)."""
        with self._lock:
            cached = self._cache.get(data_key_id)
        if cached is not None:
            if cached.mailbox_id != mailbox_id:
                raise KeyNotFound("data key not found in this mailbox")
            return cached
        row = session.execute(
            select(DataKey, Mailbox.uid).join(Mailbox, Mailbox.id == DataKey.mailbox_id)
            .where(DataKey.mailbox_id == mailbox_id, DataKey.id == data_key_id)
        ).first()
        if row is None:
            raise KeyNotFound("data key not found in this mailbox (purged?)")
        data_key, mailbox_uid = row
        ring = self._ring_with(session, data_key.master_version)
        if not ring.has(data_key.master_version):
            raise KeyUnavailable(f"data key wrapped with master key v{data_key.master_version}, which "
                                 f"{self.source} lacks (copy the current key file here; it is re-read "
                                 "on demand and on SIGHUP)")
        try:
            key = ring.unwrap(WrappedKey(data_key.master_version, data_key.wrapped), _dk_aad(mailbox_uid))
        except DecryptionError:
            raise KeyUnavailable("data key cannot be unwrapped with the configured master keys") from None
        mk = MailboxKey(data_key.mailbox_id, mailbox_uid, data_key.id, key)
        self._remember(mk)
        return mk

    # -- the gateway's own mailbox

    def system_mailbox_id(self, session: Session) -> int | None:
        """The system mailbox's id (None before it exists), looked up once per process and
        database: it never changes once created (issue 23: the lookup names no mailbox, so it
        reaches every shard). An id this transaction created is not remembered (it may roll back)."""
        engine = _engine(session)
        with self._lock:
            known = self._system.get(engine)
        if known is not None:
            return known
        mailbox_id = find_system_mailbox(session)
        if mailbox_id is None:
            return None
        if session.info.get(_SYSTEM_CREATED) != mailbox_id:
            with self._lock:
                self._system[engine] = mailbox_id
        return mailbox_id

    def system_key(self, session: Session, *, again: bool = True) -> MailboxKey:
        """The gateway's own data key (DKIM private keys, queue entries, staff TOTP secrets),
        created on first use."""
        mailbox_id = self.system_mailbox_id(session)
        if mailbox_id is None:
            mk = self.create_mailbox(session, "system")
            session.info[_SYSTEM_CREATED] = mk.mailbox_id
            return mk
        try:
            return self.for_mailbox(session, mailbox_id)
        except KeyUnavailable:  # a remembered id that is gone (a store emptied under a running process)
            if not (again and self._forget_system(session, mailbox_id)):
                raise
            return self.system_key(session, again=False)

    def system_by_id(self, session: Session, data_key_id: int) -> MailboxKey:
        """A data key of a system mailbox by its id (what queue entries, DKIM keys and staff TOTP
        secrets are sealed under); :class:`KeyNotFound` if it is no system mailbox's.

        Looked up in the system mailbox (one shard); else (two nodes made one each at their first
        start, or the remembered one is gone) by its id among every system mailbox's keys, the
        mailbox then remembered as a system one."""
        engine = _engine(session)
        main = self.system_mailbox_id(session)
        held = self.cached(data_key_id)
        with self._lock:
            others = set(self._other_systems.get(engine, ()))
        if held is not None and (held.mailbox_id == main or held.mailbox_id in others):
            return held
        if main is not None:
            try:
                return self.by_id(session, data_key_id, mailbox_id=main)
            except KeyNotFound:
                pass
        owner = find_system_key_owner(session, data_key_id)
        if owner is None:
            raise KeyNotFound("no system mailbox holds this data key")
        with self._lock:
            self._other_systems.setdefault(engine, set()).add(owner)
        return self.by_id(session, data_key_id, mailbox_id=owner)

    def _forget_system(self, session: Session, mailbox_id: int) -> bool:
        """Drop a remembered system mailbox id; whether it was remembered (then look again)."""
        engine = _engine(session)
        with self._lock:
            if self._system.get(engine) != mailbox_id:
                return False
            del self._system[engine]
            return True

    def for_mailbox(self, session: Session, mailbox_id: int) -> MailboxKey:
        """The mailbox's current data key (the newest one)."""
        key_id = session.execute(
            select(DataKey.id).where(DataKey.mailbox_id == mailbox_id).order_by(DataKey.id.desc()).limit(1)
        ).scalar()
        if key_id is None:
            raise KeyUnavailable("mailbox has no data key (purged?)")
        return self.by_id(session, key_id, mailbox_id=mailbox_id)

    def rewrap_all(self, session: Session, *, batch: int = 1000) -> int:
        """Re-wrap, in the caller's transaction, every data key not under the current master version.

        For tests and small stores; ``gateway keys rotate`` uses :func:`rewrap_batch` instead.
        """
        current = self.ring.current_version
        done = 0
        while True:
            rows = not_under(session, current, batch)
            if not rows:
                return done
            for data_key, mailbox_uid in rows:
                new = self.ring.rewrap(WrappedKey(data_key.master_version, data_key.wrapped), _dk_aad(mailbox_uid))
                session.execute(
                    update(DataKey).where(DataKey.mailbox_id == data_key.mailbox_id, DataKey.id == data_key.id)
                    .values(master_version=new.version, wrapped=new.blob)
                )
                done += 1
            session.flush()
            session.expunge_all()

    def shred(self, session: Session, mailbox_id: int) -> int:
        """Crypto-shredding: destroy the mailbox's wrapped data keys. Returns how many."""
        ids = list(session.execute(select(DataKey.id).where(DataKey.mailbox_id == mailbox_id)).scalars())
        if ids:  # no foreign key does it (issue 23): queue entries sealed under these keys lose the reference
            unlink_queue_entries(session, ids)
        session.execute(delete(DataKey).where(DataKey.mailbox_id == mailbox_id))
        self.forget(ids)
        session.info.pop(TRANSACTION_KEYS, None)  # keys remembered for this transaction may be among them
        return len(ids)
