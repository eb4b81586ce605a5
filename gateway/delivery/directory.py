"""Gathering routing facts from the store (the impure half of SPEC §4).

Turns addresses into :mod:`routing.facts` values and delivery targets. The trust list
and the hosted domains are read into an immutable snapshot refreshed every few seconds,
so RCPT-time decisions cost one indexed lookup (patients by the keyed index of their INS,
issue 20; accounts by address). The snapshot refresh also notices an index key version the
database records and the key file lacks (a rotation started elsewhere) and re-reads the file.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.accounts import ins_index
from gateway.mailstore.quota import Quota, QuotaDefaults, QuotaLimits, resolve, usage
from gateway.store.db import Database
from gateway.store.index_keys import active_index_version
from gateway.store.keys import IndexKeyMissing, KeyService
from gateway.store.models import HostedDomain, Mailbox, ProAccount, TrustedDomain
from gateway.store.raw import RawStatement, Runner
from routing.address import Address, normalise_domain
from routing.facts import RecipientFacts
from routing.ins import InvalidINS, normalise_ins
from routing.trust import Contacts, TrustEntry, TrustList, parse_networks

log = logging.getLogger("gateway.delivery")


@dataclass(frozen=True)
class LocalTarget:
    """Deliver into a mailbox of ours."""

    mailbox_id: int
    kind: str  # "patient" | "pro"
    owner_id: int  # patients.id or pro_accounts.id
    data_key_id: int | None = None  # the mailbox's data key, read with the recipient (saves a lookup)
    limits: QuotaLimits | None = None  # its quota limits in force, read with the recipient (None: not read)


@dataclass(frozen=True)
class RemoteTarget:
    """Queue for a trusted domain (or, for gateway notifications only, a personal address)."""

    domain: str


Target = LocalTarget | RemoteTarget


@dataclass(frozen=True)
class Snapshot:
    trust: TrustList
    hosted: frozenset[str]
    patient_domain: str


def _networks(value: str | None) -> tuple[str, ...]:
    """The stored networks; one that does not parse is left out (it cannot make the whole entry,
    and so the operator's mail, disappear: it only widens nothing)."""
    found: list[str] = []
    for part in (value or "").split():
        try:
            found.extend(parse_networks(part))
        except ValueError:
            continue
    return tuple(found)


def _entry(row: TrustedDomain) -> TrustEntry | None:
    try:
        return TrustEntry(
            domain=row.name, description=row.description or "", operator_dn=row.operator_dn,
            contacts=Contacts(row.contact_responsable, row.contact_support), updated_at=row.list_updated_at,
            dkim_policy=row.dkim_policy,  # type: ignore[arg-type]
            dkim_selector=row.dkim_selector, dkim_public_key=row.dkim_public_key, dkim_required=row.dkim_required,
            route=row.route,
            tls_required=row.tls_required, max_message_size=row.max_message_size,
            status=row.status,  # type: ignore[arg-type]
            origin=row.origin,  # type: ignore[arg-type]
            max_connections=row.max_connections, networks=_networks(row.networks),
        )
    except ValueError:
        return None  # an entry the model refuses is treated as absent: fail closed


# RCPT-time lookups, driver-level (gateway/store/raw.py): one indexed read each, with the
# mailbox's data key id (KeyService.for_mailbox's rule: the newest) so sealing needs no lookup.
# The mailbox's quota columns come along (RFC 9208 limits; NULL: the configured default).
# Patients: gateway.accounts.ins_index.rcpt_row (the INS directory by keyed index, every held
# version, then the patient by (mailbox_id, id)).
_A = ProAccount.__table__.c
# Professionals: the account (a reference table on Citus) by address, then its mailbox and
# newest data key by the mailbox's id (one shard): a join of the reference table into the
# distributed ones, or a sub-query correlated to it, is what Citus refuses (issue 23).
_ACCOUNT = RawStatement(
    "SELECT a.id, a.status, a.mailbox_id, a.accepts_patient_initiated FROM pro_accounts a WHERE a.address = ?",
    (_A.address,), (None, None, None, _A.accepts_patient_initiated))
_M = Mailbox.__table__.c
_PRO_MAILBOX = RawStatement(
    "SELECT (SELECT max(k.id) FROM data_keys k WHERE k.mailbox_id = m.id), m.quota_storage_kib, m.quota_messages"
    " FROM mailboxes m WHERE m.id = ?", (_M.id,))


class Directory:
    """Read-through view of the trust list, hosted domains, patients and accounts."""

    def __init__(self, db: Database, patient_domain: str, *, keys: KeyService, ttl: float = 2.0,
                 quota: QuotaDefaults | None = None) -> None:
        self.db = db
        self.keys = keys
        self.quota = quota or QuotaDefaults()
        self.patient_domain = normalise_domain(patient_domain)
        self.ttl = ttl
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._loaded_at = 0.0
        self._reloading = False

    def cached(self) -> Snapshot | None:
        """The snapshot if it is fresh (no database access: callable on the event loop)."""
        with self._lock:
            if self._snapshot is not None and time.monotonic() - self._loaded_at < self.ttl:
                return self._snapshot
        return None

    def snapshot(self, *, refresh: bool = False) -> Snapshot:
        now = time.monotonic()
        with self._lock:
            if not refresh and self._snapshot is not None and now - self._loaded_at < self.ttl:
                return self._snapshot
        with self.db.read() as session:
            entries = [e for e in (_entry(r) for r in session.execute(select(TrustedDomain)).scalars()) if e]
            hosted = frozenset(session.execute(select(HostedDomain.name)).scalars())
            active = active_index_version(session)
            index = self.keys.ring.index
            if active is not None and (index is None or not index.has(active)):
                self.keys.index_keys(session, active)  # re-read the key file (rate-limited)
        snap = Snapshot(TrustList(entries), hosted, self.patient_domain)
        with self._lock:
            self._snapshot, self._loaded_at = snap, now
        return snap

    def connection_limit(self, ip: str) -> int | None:
        """A client address's own allowance on the MX (its operator's trust entry), for the
        accept loop: never waits for the database. The last snapshot answers, however old;
        a stale one is reloaded in the background for the next connections."""
        with self._lock:
            snap = self._snapshot
            stale = snap is None or time.monotonic() - self._loaded_at >= self.ttl
            if stale and not self._reloading:
                self._reloading = True
                threading.Thread(target=self._reload, name="directory-reload", daemon=True).start()
        return None if snap is None else snap.trust.connection_limit(ip)

    def _reload(self) -> None:
        try:
            self.snapshot(refresh=True)
        except Exception:  # the database away: the last snapshot keeps answering
            log.warning("trust list reload failed", exc_info=True)
        finally:
            with self._lock:
                self._reloading = False

    def invalidate(self) -> None:
        with self._lock:
            self._snapshot = None

    def sender_kind(self, address: Address | None, snap: Snapshot) -> str:
        if address is None:
            return "untrusted"  # null sender over MX: decided by the peer certificate
        if address.domain == snap.patient_domain:
            return "patient"
        if address.domain in snap.hosted:
            return "hosted_pro"
        if snap.trust.is_trusted(address.domain):
            return "trusted_pro"
        return "untrusted"

    def recipient(self, session: Runner, address: Address, snap: Snapshot,
                  *, notification: bool = False) -> tuple[RecipientFacts, Target | None]:
        """Classify one recipient and find where it would be delivered."""
        if address.domain == snap.patient_domain:
            try:
                ins = normalise_ins(address.local)
            except InvalidINS as exc:
                return RecipientFacts(address, "patient", invalid_ins=exc.reason), None  # type: ignore[arg-type]
            index = self.keys.ring.index
            if index is None:
                raise IndexKeyMissing(f"{self.keys.source} has no index key (index-v<N>)")
            row = ins_index.rcpt_row(session, index, ins)
            if row is None and self._index_changed(session):
                row = ins_index.rcpt_row(session, self.keys.ring.index or index, ins)
            if row is None:
                return RecipientFacts(address, "patient", mailbox_state=None), None
            patient_id, state, mailbox_id, key_id, storage_kib, messages = row
            target = None if mailbox_id is None else LocalTarget(
                mailbox_id, "patient", patient_id, key_id, resolve(storage_kib, messages, self.quota))
            return RecipientFacts(address, "patient", mailbox_state=state), target
        if address.domain in snap.hosted:
            account = _ACCOUNT.first(session, address.key)
            if account is None:
                return RecipientFacts(address, "unknown_local"), None
            account_id, status, mailbox_id, accepts = account
            box = _PRO_MAILBOX.first(session, mailbox_id)
            if box is None:  # as the inner join of one statement did: no mailbox, no recipient
                return RecipientFacts(address, "unknown_local"), None
            key_id, storage_kib, messages = box
            facts = RecipientFacts(address, "hosted_pro", account_active=status == "active",
                                   accepts_patient_initiated=accepts)
            return facts, LocalTarget(mailbox_id, "pro", account_id, key_id,
                                      resolve(storage_kib, messages, self.quota))
        if snap.trust.entry(address.domain) is not None:
            return RecipientFacts(address, "trusted_pro"), RemoteTarget(address.domain)
        return RecipientFacts(address, "untrusted_domain", notification_target=notification), RemoteTarget(
            address.domain)

    def _index_changed(self, runner: Runner) -> bool:
        """After a miss: whether the key file had to be re-read for the database's current index
        key (a rotation from another node); raises :class:`IndexKeyMissing` (a temporary failure,
        never "no such patient") when it still lacks it."""
        if isinstance(runner, Session):
            return ins_index.after_miss(self.keys, runner)
        with self.db.read() as session:
            return ins_index.after_miss(self.keys, session, runner)

    def mailbox_full(self, session: Runner, target: LocalTarget, incoming: int | None) -> bool:
        """Whether the recipient's mailbox is known to be full at RCPT (RFC 3463 X.2.2): at a
        limit already, or unable to take ``incoming`` octets (the declared ``SIZE=``, RFC 1870).
        Only summed when a limit applies; the delivery checks again, exactly, at commit."""
        if target.limits is None or not target.limits.any:
            return False
        found = Quota(target.limits, usage(session, target.mailbox_id))
        return found.full or (incoming is not None and found.exceeded_by(incoming) is not None)
