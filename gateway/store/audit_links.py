"""Audit entries about a patient without the patient in clear (issue 20).

An entry concerns a patient when its subject or its actor is ``patient:<id>``. Such an entry
is stored with:

- in clear: the actor when it is a professional, an administrator, a mediator, the system or
  ``anonymous`` (their actions stay searchable), the action and the time; a patient actor
  becomes ``patient`` and the subject its kind only (``patient``, ``domain``, ``pro``...);
  the peer and the details are left empty;
- ``patient_sealed``: the original actor, subject, peer and details, sealed under the
  patient's mailbox data key (``patient_data_key_id``, the key the sealed INS uses). Purging
  the space destroys that key (:func:`gateway.accounts.purge.empty_mailbox`): the link is
  crypto-shredded with the rest; views then show :data:`SHREDDED`;
- ``patient_index``: ``HMAC-SHA256(index key, "audit-patient", "<patient id>")``
  (:mod:`crypto.blind_index`, version ``patient_index_version``), so the patient's history,
  the admin's patient page and the audit search by patient stay indexed equalities. In a
  dump, entries of the same patient link together through it, but not to a patient (the
  index key is outside the database);
- ``hash_form`` = 2: the entry's hash covers what is stored (:func:`canonical`), the sealed
  bytes and their key id included; the keyed index is not covered (an index key rotation
  re-computes it) and is never trusted alone: a view keeps a row only when its sealed part,
  once opened, names the patient asked for.

Entries written before this change (``hash_form`` NULL) keep their original form and hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from crypto.blind_index import IndexKeyring
from crypto.envelope import DecryptionError
from gateway.store.keys import TRANSACTION_KEYS, KeyService, KeyUnavailable, MailboxKey
from gateway.store.models import AuditEntry, DataKey, Patient
from gateway.store.partitions import SYSTEM_PARTITION, audit_partition

PURPOSE = "audit-patient"
FORM = 2
SHREDDED = "[shredded]"
"""Shown for a sealed part whose key was destroyed (the patient's space was purged)."""

_SEAL_PURPOSE, _SEAL_ITEM = "audit", "links"
_PATIENT_KEY = tuple(c.key for c in sa_inspect(Patient).primary_key)  # ("mailbox_id", "id")
_PATIENT = re.compile(r"patient:([0-9]{1,18})")


def patient_of(actor: str, subject_ref: str | None) -> int | None:
    """The patient an entry concerns (its subject first, else its actor), or None."""
    for value in (subject_ref, actor):
        found = _PATIENT.fullmatch(value or "")
        if found:
            return int(found.group(1))
    return None


def clear_actor(actor: str) -> str:
    """What stays of the actor in clear: a patient's own actions say ``patient`` only."""
    return "patient" if _PATIENT.fullmatch(actor) else actor


def clear_subject(subject_ref: str | None) -> str | None:
    """What stays of the subject in clear: its kind (``patient``, ``domain``...)."""
    return None if subject_ref is None else subject_ref.partition(":")[0][:64]


def index_of(index: IndexKeyring, patient_id: int, version: int | None = None) -> bytes:
    return index.digest(PURPOSE, str(patient_id), version)


def index_digests(index: IndexKeyring, patient_id: int) -> list[bytes]:
    """The patient's index under every version the key file holds (a rotation is under way)."""
    return [d.digest for d in index.digests(PURPOSE, str(patient_id))]


@dataclass(frozen=True)
class SealedEntry:
    """How one entry about a patient is stored."""

    actor: str
    subject_ref: str | None
    peer: None
    details: str
    sealed: bytes | None  # None: the patient's keys are already shredded (a purged space)
    data_key_id: int | None
    index: bytes
    index_version: int


def _payload(actor: str, subject_ref: str | None, peer: str | None, details: str) -> bytes:
    return json.dumps({"actor": actor, "subject": subject_ref, "peer": peer, "details": details},
                      sort_keys=True, separators=(",", ":")).encode()


def _loaded_mailbox(session: Session, patient_id: int) -> int | None:
    """The mailbox of the patient when the session already holds its row (the usual case: the
    action being audited worked on it), from the row's identity key (no statement, even for an
    expired row)."""
    mailbox_at, id_at = _PATIENT_KEY.index("mailbox_id"), _PATIENT_KEY.index("id")
    for key in session.identity_map.keys():
        if key[0] is Patient and key[1][id_at] == patient_id:
            return int(key[1][mailbox_at])
    return None


def _patient_key(session: Session, keys: KeyService, patient_id: int,
                 mailbox_id: int | None = None) -> MailboxKey | None:
    """The patient's current data key, in its mailbox: the one the caller gave, else that of the
    row the session holds, else (a writer that neither gave it nor loaded the patient) read by
    the patient id alone, which is not routed to one shard on a distributed store."""
    if mailbox_id is None:
        mailbox_id = _loaded_mailbox(session, patient_id)
    if mailbox_id is None:
        mailbox_id = session.execute(select(Patient.mailbox_id).where(Patient.id == patient_id)).scalar()
    if mailbox_id is None:
        return None
    try:
        return keys.for_mailbox(session, mailbox_id)
    except KeyUnavailable:
        return None


@dataclass
class _Remembered:
    """What one transaction looked up once for its entries about patients: a group commit of
    deliveries writes several (issue 22: three small queries per entry were 40 % of a 10 KiB
    delivery's samples). The index version cannot change under a transaction that uses it (a
    rotation keeps the older version until no row uses it); a patient's key is remembered only
    when found, and forgotten if a key is shredded (``KeyService.shred``)."""

    transaction: object
    index: IndexKeyring
    version: int
    patient_keys: dict[int, MailboxKey]


def _remembered(session: Session, keys: KeyService) -> _Remembered:
    txn = session.get_transaction()
    found = session.info.get(TRANSACTION_KEYS)
    if isinstance(found, _Remembered) and txn is not None and found.transaction is txn:
        return found
    index, version = keys.index_version(session)
    txn = session.get_transaction()  # begun by that query if it was the transaction's first
    found = _Remembered(txn, index, version, {})
    if txn is not None:
        session.info[TRANSACTION_KEYS] = found
    return found


def seal(session: Session, keys: KeyService, patient_id: int, *, actor: str, subject_ref: str | None,
         peer: str | None, details: str, key: MailboxKey | None = None, mailbox_id: int | None = None) -> SealedEntry:
    """The stored form of an entry about ``patient_id`` (``details``: its JSON text); ``key``: the
    patient's current data key when the caller holds it, else ``mailbox_id``: the patient's mailbox."""
    known = _remembered(session, keys)
    index, version = known.index, known.version
    mk = key or known.patient_keys.get(patient_id) or _patient_key(session, keys, patient_id, mailbox_id)
    if mk is not None:
        known.patient_keys[patient_id] = mk
    sealed = None if mk is None else mk.seal(_SEAL_PURPOSE, _SEAL_ITEM, _payload(actor, subject_ref, peer, details))
    return SealedEntry(clear_actor(actor), clear_subject(subject_ref), None, "{}", sealed,
                  None if mk is None else mk.data_key_id, index_of(index, patient_id, version), version)


def canonical(at: datetime, actor: str, action: str, subject_ref: str | None, peer: str | None, details: str,
              sealed: bytes | None, data_key_id: int | None) -> bytes:
    """Form 2: what is stored, sealed bytes and key id included (not the keyed index)."""
    record = {
        "form": FORM,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "subject": subject_ref,
        "peer": peer,
        "details": details,
        "sealed": None if sealed is None else base64.b64encode(sealed).decode("ascii"),
        "key": data_key_id,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class Opened:
    """An entry as an authorised view shows it: the sealed part opened, or marked shredded."""

    actor: str
    subject_ref: str | None
    peer: str | None
    details: str
    sealed: bool = False
    shredded: bool = False

    def concerns(self, patient_id: int) -> bool:
        return patient_of(self.actor, self.subject_ref) == patient_id

    def details_dict(self) -> dict[str, Any]:
        try:
            found = json.loads(self.details)
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}


def _key_owner(session: Session, data_key_id: int) -> int | None:
    """The mailbox a data key belongs to: the entry names its key, not its mailbox (a lookup
    by key id on every shard; distribution.py's allow-list says when)."""
    found = session.execute(select(DataKey.mailbox_id).where(DataKey.id == data_key_id)).scalar()
    return None if found is None else int(found)


def _entry_key(session: Session, keys: KeyService, data_key_id: int, mailbox_id: int | None) -> MailboxKey:
    """The key of an entry's sealed part: in ``mailbox_id`` (the patient's, when the caller knows
    it: one shard), else held by this process, else found by its id alone."""
    if mailbox_id is None:
        held = keys.cached(data_key_id)
        if held is not None:
            return held
        mailbox_id = _key_owner(session, data_key_id)
        if mailbox_id is None:
            raise KeyUnavailable("data key not found (mailbox purged?)")
    return keys.by_id(session, data_key_id, mailbox_id=mailbox_id)


def open_entry(session: Session, keys: KeyService, entry: AuditEntry, *, mailbox_id: int | None = None) -> Opened:
    """The entry as a view shows it; ``mailbox_id``: the patient's mailbox when the entries are
    about one patient (a key of another mailbox then does not open: shown as shredded)."""
    if entry.hash_form not in (FORM, CONVERTED_FORM):
        return Opened(entry.actor, entry.subject_ref, entry.peer, entry.details)
    shredded = Opened(entry.actor, f"{entry.subject_ref or 'patient'}:{SHREDDED}", None, "{}", True, True)
    if entry.patient_sealed is None or entry.patient_data_key_id is None:
        return shredded
    try:
        mk = _entry_key(session, keys, entry.patient_data_key_id, mailbox_id)
        payload = json.loads(mk.open(_SEAL_PURPOSE, _SEAL_ITEM, entry.patient_sealed))
    except (KeyUnavailable, DecryptionError, ValueError):
        return shredded
    return Opened(str(payload["actor"]), payload["subject"], payload["peer"], str(payload["details"]), True)


def open_many(session: Session, keys: KeyService, entries: Iterable[AuditEntry], *,
              mailbox_id: int | None = None) -> list[tuple[AuditEntry, Opened]]:
    return [(e, open_entry(session, keys, e, mailbox_id=mailbox_id)) for e in entries]


def about_clause(session: Session, keys: KeyService, patient_id: int) -> ColumnElement[bool]:
    """Entries about ``patient_id``: by the keyed index, or the clear subject of an older entry."""
    return or_(AuditEntry.patient_index.in_(index_digests(keys.index_keys(session), patient_id)),
               AuditEntry.subject_ref == f"patient:{patient_id}")


def partitions_about(index: IndexKeyring, patient_id: int) -> list[int] | None:
    """The audit partitions that can hold entries about the patient, or None when they cannot be
    known: an entry lies in the partition of its keyed index under the index key version of its
    day (:func:`gateway.store.partitions.audit_partition`, fixed when written), an entry of an
    older release in the system partition (migration 0018). The key file holds every version
    since the first (1) unless one was retired (``gateway keys retire index-vN``): then entries
    written under it lie in partitions no key here can name."""
    if sorted(index.versions) != list(range(1, index.current_version + 1)):
        return None
    digests = index_digests(index, patient_id)
    return sorted({SYSTEM_PARTITION, *(audit_partition(None, d) for d in digests)})


def _about_everywhere(session: Session, query: Select[tuple[AuditEntry]]) -> list[AuditEntry]:
    """Entries about a patient on every partition (their partitions cannot be named: an index
    key version was retired; distribution.py's allow-list)."""
    return list(session.execute(query).scalars())


def entries_about(session: Session, keys: KeyService, patient_id: int, *, mailbox_id: int | None = None,
                  subject_only: bool = False, keep_shredded: bool = False, before: int | None = None,
                  limit: int = 50) -> tuple[list[tuple[AuditEntry, Opened]], int | None]:
    """Entries about the patient, newest first (ids below ``before``), at most ``limit``, opened;
    and the id to continue from (None: no more). A row whose opened part names another patient
    (a tampered index) is left out; ``subject_only``: only the entries whose subject is the patient
    (the patient's own history), not those where the patient acted on something else;
    ``keep_shredded``: also the entries that can no longer be opened (a purged space, for the
    admin's page), shown as such. ``mailbox_id``: the patient's mailbox, when the caller has it
    (the keys are then looked up there only).

    The query names the partitions the patient's entries can lie in (:func:`partitions_about`):
    a few shards on a distributed store, not every one (issue 23)."""
    query = select(AuditEntry).where(about_clause(session, keys, patient_id))
    if before is not None:
        query = query.where(AuditEntry.id < before)
    query = query.order_by(AuditEntry.id.desc()).limit(limit + 1)
    partitions = partitions_about(keys.index_keys(session), patient_id)
    if partitions is None:
        rows = _about_everywhere(session, query)
    else:
        rows = list(session.execute(query.where(AuditEntry.partition.in_(partitions))).scalars())
    more = rows[limit].id + 1 if len(rows) > limit else None
    out = []
    for entry, opened in open_many(session, keys, rows[:limit], mailbox_id=mailbox_id):
        if opened.shredded:  # only the index says it is this patient's, and the clear kind of subject
            if keep_shredded and (not subject_only or entry.subject_ref == "patient"):
                out.append((entry, opened))
            continue
        if subject_only and opened.subject_ref != f"patient:{patient_id}":
            continue
        if opened.concerns(patient_id):
            out.append((entry, opened))
    return out, more


# ---------------------------------------------------------------------------- converted entries

CONVERTED_FORM = 3
CONVERSION_ACTION = "audit.links.sealed"
"""The entry that commits a batch of converted entries (gateway/store/audit_conversion.py)."""
_GENESIS = "0" * 64


def converted_digest(previous: str, entry: AuditEntry) -> str:
    """Link of the chain over converted entries (form 3), in id order: the previous link, then the
    entry as stored now (sealed part and key id) with its original ``prev_hash`` and ``hash``."""
    record = json.loads(canonical(entry.at, entry.actor, entry.action, entry.subject_ref, entry.peer, entry.details,
                                  entry.patient_sealed, entry.patient_data_key_id))
    record.update(form=CONVERTED_FORM, id=entry.id, prev_hash=entry.prev_hash, hash=entry.hash)
    digest = hashlib.sha256(previous.encode("ascii"))
    digest.update(json.dumps(record, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


class ConvertedCheck:
    """Verifies converted entries while the audit chain is walked.

    A converted entry keeps its original ``prev_hash`` and ``hash`` (the chain's links hold), but
    its original content is no longer stored: what proves it is the chain of
    :func:`converted_digest` links over converted entries, whose value after each batch is
    committed by a conversion entry (``details.last_id``, ``details.digest``), itself in the
    hash chain. The converter checked each entry's original hash before sealing it.

    A walk that does not start at the first entry (a trail pruned behind a checkpoint) starts
    from the link the pruned entries reached (``start``; :attr:`link` after walking them)."""

    def __init__(self, commits: dict[int, str], start: str = _GENESIS) -> None:
        self._commits = commits
        self._link = start
        self._uncommitted: int | None = None

    @property
    def link(self) -> str:
        """The running link after the converted entries seen so far."""
        return self._link

    @classmethod
    def load(cls, session: Session, start: str = _GENESIS) -> ConvertedCheck:
        commits: dict[int, str] = {}
        for details in session.execute(select(AuditEntry.details).where(  # no subject: partition 0
                AuditEntry.partition == 0, AuditEntry.action == CONVERSION_ACTION).order_by(AuditEntry.id)).scalars():
            try:
                found = json.loads(details)
                commits[int(found["last_id"])] = str(found["digest"])
            except (ValueError, KeyError, TypeError):
                continue  # a damaged conversion entry fails its own hash
        return cls(commits, start)

    def see(self, entry: AuditEntry) -> bool:
        """Take one converted entry (form 3); False when the committed chain disagrees."""
        self._link = converted_digest(self._link, entry)
        committed = self._commits.get(entry.id)
        if committed is None:
            if self._uncommitted is None:
                self._uncommitted = entry.id
            return True
        self._uncommitted = None
        return committed == self._link

    def first_uncommitted(self) -> int | None:
        """After the walk: the first converted entry no conversion entry commits (None: all are)."""
        return self._uncommitted
