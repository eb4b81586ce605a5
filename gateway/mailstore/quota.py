"""Per-mailbox quotas (RFC 9208 §5.1 STORAGE, §5.2 MESSAGE; issue 18).

One quota root per mailbox (a professional's or a patient's), covering all its folders.
The limits live on the mailbox row (``mailboxes.quota_storage_kib``, ``quota_messages``):
NULL takes the configured default (:class:`QuotaDefaults`, ``[quota]`` in the config), 0
means no limit. Usage is the sum of the mailbox's folders' counters (``folders.used_octets``,
``used_messages``: RFC822.SIZE of the stored messages and their number), which triggers on
``messages`` keep in the statement that inserts, deletes or moves a message (migration
0011): whatever path writes messages (delivery, APPEND, COPY/MOVE, EXPUNGE, a folder
deleted, a patient purged), the usage moves in its transaction, and reading it costs one
row per folder, whatever the number of messages.

:func:`reserve` is the check a writer makes in its own write transaction, before it
writes anything: on PostgreSQL it first locks the mailbox row, so two writers to one
mailbox cannot both see room for their message (SQLite's write transaction already
holds the database's one write lock). It raises :class:`QuotaExceeded` and the caller
stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from gateway.store.models import Folder, Mailbox
from gateway.store.raw import RawStatement, Runner, dialect_name

KIB = 1024


@dataclass(frozen=True, slots=True)
class QuotaDefaults:
    """The configured limits of a mailbox that has none of its own; 0: no limit."""

    storage_kib: int = 0
    messages: int = 0


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """A mailbox's limits in force (None: no limit), and whether they are its own (an
    admin set them) or the default's."""

    storage_kib: int | None = None
    messages: int | None = None
    own_storage: bool = False
    own_messages: bool = False

    @property
    def any(self) -> bool:
        return self.storage_kib is not None or self.messages is not None


def resolve(storage_kib: int | None, messages: int | None, defaults: QuotaDefaults) -> QuotaLimits:
    """The limits in force from the mailbox's two columns (NULL: the default; 0: none)."""
    storage = defaults.storage_kib if storage_kib is None else storage_kib
    count = defaults.messages if messages is None else messages
    return QuotaLimits(storage or None, count or None, storage_kib is not None, messages is not None)


@dataclass(frozen=True, slots=True)
class Usage:
    octets: int = 0
    messages: int = 0

    @property
    def kib(self) -> int:
        """STORAGE usage in KiB, a started KiB counting as one (RFC 9208 §5.1 units)."""
        return -(-self.octets // KIB)


@dataclass(frozen=True, slots=True)
class Quota:
    limits: QuotaLimits
    usage: Usage

    def exceeded_by(self, octets: int, count: int = 1) -> str | None:
        """The resource (``STORAGE`` / ``MESSAGE``) that adding ``count`` messages of
        ``octets`` in all would take over its limit, or None when they fit."""
        lim, use = self.limits, self.usage
        if lim.storage_kib is not None and use.octets + octets > lim.storage_kib * KIB:
            return "STORAGE"
        if lim.messages is not None and use.messages + count > lim.messages:
            return "MESSAGE"
        return None

    @property
    def full(self) -> bool:
        """At (or over) a limit: not even one more message fits (SMTP RCPT, RFC 3463 X.2.2)."""
        lim, use = self.limits, self.usage
        return ((lim.storage_kib is not None and use.octets >= lim.storage_kib * KIB)
                or (lim.messages is not None and use.messages >= lim.messages))


class QuotaExceeded(Exception):
    """A write that would take a mailbox over a limit; nothing was written."""

    def __init__(self, mailbox_id: int, resource: str) -> None:
        super().__init__(f"mailbox {mailbox_id} over its {resource} quota")
        self.mailbox_id = mailbox_id
        self.resource = resource


_MB = Mailbox.__table__.c
_LIMITS_SQL = "SELECT quota_storage_kib, quota_messages FROM mailboxes WHERE id = ?"
_LIMITS = RawStatement(_LIMITS_SQL, (_MB.id,))
# NO KEY UPDATE: writers of the mailbox queue behind each other, yet rows that only reference
# it (a large message's pieces, stored in their own transactions) are not held up (PostgreSQL).
_LIMITS_LOCKED = RawStatement(_LIMITS_SQL + " FOR NO KEY UPDATE", (_MB.id,))
_USAGE = RawStatement(
    "SELECT coalesce(sum(used_messages), 0), coalesce(sum(used_octets), 0) FROM folders WHERE mailbox_id = ?",
    (Folder.__table__.c.mailbox_id,))


def limits(runner: Runner, mailbox_id: int, defaults: QuotaDefaults, *, lock: bool = False) -> QuotaLimits:
    """The mailbox's limits in force; ``lock`` takes its row lock first (PostgreSQL)."""
    statement = _LIMITS_LOCKED if lock and dialect_name(runner) == "postgresql" else _LIMITS
    row = statement.first(runner, mailbox_id)
    if row is None:
        raise LookupError("no such mailbox")
    return resolve(row[0], row[1], defaults)


def usage(runner: Runner, mailbox_id: int) -> Usage:
    count, octets = _USAGE.one(runner, mailbox_id)
    return Usage(int(octets), int(count))


def current(runner: Runner, mailbox_id: int, defaults: QuotaDefaults) -> Quota:
    """The limits and the usage (GETQUOTA, the admin's view)."""
    return Quota(limits(runner, mailbox_id, defaults), usage(runner, mailbox_id))


def reserve(session: Runner, mailbox_id: int, defaults: QuotaDefaults, octets: int, count: int = 1) -> None:
    """Raise :class:`QuotaExceeded` unless ``count`` messages of ``octets`` in all fit in the
    mailbox, in the caller's write transaction and before it writes (see the module doc)."""
    lim = limits(session, mailbox_id, defaults, lock=True)
    if not lim.any:
        return
    resource = Quota(lim, usage(session, mailbox_id)).exceeded_by(octets, count)
    if resource is not None:
        raise QuotaExceeded(mailbox_id, resource)


class Keep:
    """Leave this limit as it is (:func:`set_limits`)."""


KEEP = Keep()


def set_limits(session: Session, mailbox_id: int, *, storage_kib: int | Keep | None = KEEP,
               messages: int | Keep | None = KEEP) -> None:
    """An admin's change: a number (0: no limit), None (back to the default) or :data:`KEEP`."""
    values: dict[str, int | None] = {}
    for column, value in (("quota_storage_kib", storage_kib), ("quota_messages", messages)):
        if isinstance(value, Keep):
            continue
        if value is not None and value < 0:
            raise ValueError("a quota limit is a number of 0 or more")
        values[column] = value
    if values:
        done = session.execute(update(Mailbox).where(Mailbox.id == mailbox_id).values(**values))
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise LookupError("no such mailbox")
