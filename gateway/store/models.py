"""SQLAlchemy 2 models of the mail store (SPEC §5, §6, §8, §9).

What stays in clear is only what routing and IMAP bookkeeping need: identifiers,
states, sizes, dates, flags, UIDs. Message content, headers, subjects, personal
e-mail addresses and correspondents live in ``*_sealed`` columns (AES-256-GCM under
the mailbox's data key, see ``crypto/``). Schema changes are Alembic migrations in
``gateway/store/migrations``; keep ``tests/store/test_migrations.py`` green.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# The mailbox group's primary keys are (mailbox_id, id) (issue 23: every key includes the
# distribution column). SQLite keeps ``id INTEGER PRIMARY KEY`` instead (the rowid: globally
# unique, so strictly stronger, and the one column SQLite auto-increments), and ``folders`` gets
# this unique index, the parent key of the composite foreign keys from ``messages`` and
# ``expunged_uids`` (migration 0017). Comparisons of the schema with these models skip it there.
# SQLite keeps its rowid key the same way where a table distributed by a key of its own has the
# primary key (key, id): ``outbound_queue`` (bucket, id), ``audit_log`` (partition, id),
# ``web_sessions`` (token_hash, id; migrations 0018, 0019).
SQLITE_ONLY = frozenset({"uq_folders_mailbox_id_id"})


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always come back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Mailbox(Base):
    """A container of encrypted data: one per patient, per professional, plus the system one."""

    __tablename__ = "mailboxes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # random (128 bits), bound into every AAD; not unique in the schema (migration 0017: a unique
    # constraint must include the distribution column ``id``, and nothing looks a mailbox up by it)
    uid: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # patient | pro | system
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # RFC 9208 limits set by an admin (migration 0011): STORAGE in KiB, MESSAGE in messages.
    # NULL: the configured default (``[quota]``); 0: no limit (gateway.mailstore.quota).
    quota_storage_kib: Mapped[int | None] = mapped_column(BigInteger)
    quota_messages: Mapped[int | None] = mapped_column(BigInteger)
    folders: Mapped[list[Folder]] = relationship(back_populates="mailbox", passive_deletes=True)


class DataKey(Base):
    """A mailbox's data key, wrapped by a versioned master key (SPEC §8)."""

    __tablename__ = "data_keys"
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True,
                                            index=True)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    master_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class KeyCheck(Base):
    """A master key version the database uses, with its key-check value (issue 14).

    ``check_value`` is a known constant sealed under that version (``MasterKeyring.key_check``):
    at start and on every re-read, the key file must open each recorded version. The highest
    recorded version is the one new data keys are wrapped with (``gateway keys rotate``
    records a version; ``gateway keys retire`` deletes it).
    """

    __tablename__ = "key_checks"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    check_value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class IndexKeyCheck(Base):
    """An index key version (``index-v<N>`` in the key file) the database uses, with its
    key-check value (``IndexKeyring.key_check``; issue 20). As for master keys: the key file
    must hold every recorded version with the same key, and the highest recorded version
    indexes new rows (``gateway keys rotate`` records one, ``gateway keys retire`` forgets one).
    """

    __tablename__ = "index_key_checks"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    check_value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class HostedDomain(Base):
    __tablename__ = "hosted_domains"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    dkim_selector: Mapped[str | None] = mapped_column(String(63))
    dkim_data_key_id: Mapped[int | None] = mapped_column(BigId)  # the system data key; no foreign key
    dkim_key_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)  # under the system data key
    dkim_public_key: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DkimKey(Base):
    """The DKIM signing key of a domain the gateway writes mail from without hosting it: the
    patient domain (read receipts, patients' replies) and its host name (DSNs, notifications).
    Hosted domains keep theirs in ``hosted_domains``."""

    __tablename__ = "dkim_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    domain: Mapped[str] = mapped_column(String(255), unique=True)
    selector: Mapped[str] = mapped_column(String(63))
    data_key_id: Mapped[int | None] = mapped_column(BigId)  # the system data key; no foreign key
    key_sealed: Mapped[bytes] = mapped_column(LargeBinary)  # under the system data key
    public_key: Mapped[str] = mapped_column(Text)  # base64 p=
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class TrustedDomain(Base):
    """An entry of the trust list: the official "liste blanche" fields plus our own (SPEC §6)."""

    __tablename__ = "trusted_domains"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    operator_dn: Mapped[str | None] = mapped_column(Text)
    contact_responsable: Mapped[str | None] = mapped_column(Text)
    contact_support: Mapped[str | None] = mapped_column(Text)
    list_updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # DateMAJ
    dkim_policy: Mapped[str] = mapped_column(String(16), default="none")  # dns | none | pinned
    dkim_selector: Mapped[str | None] = mapped_column(String(63))
    dkim_public_key: Mapped[str | None] = mapped_column(Text)  # base64 p=; 32 bytes: Ed25519 (RFC 8463)
    # A passing DKIM signature is needed even from the operator certificate (issue 17).
    dkim_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    route: Mapped[str | None] = mapped_column(String(300))
    tls_required: Mapped[bool] = mapped_column(Boolean, default=True)
    max_message_size: Mapped[int | None] = mapped_column(BigInteger)
    # Connections each of the operator's sending addresses (networks: CIDR, space-separated)
    # may hold on the MX, instead of limits.mx_per_address (issue 17).
    max_connections: Mapped[int | None] = mapped_column(Integer)
    networks: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | suspended
    origin: Mapped[str] = mapped_column(String(16), default="manual")  # manual | import
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    modified_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ProAccount(Base):
    __tablename__ = "pro_accounts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)  # lower-cased key
    domain_id: Mapped[int] = mapped_column(ForeignKey("hosted_domains.id"), index=True)
    mailbox_id: Mapped[int] = mapped_column(BigId, unique=True)  # no foreign key: a reference table
    name_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    accepts_patient_initiated: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    inactivity_warned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # personal | organisational | application, as in the national directory (issue 19)
    mailbox_type: Mapped[str] = mapped_column(String(16), default="personal", server_default="personal")
    password_login: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())  # and [auth]


class ProIdentity(Base):
    """The identity provider's subject (Pro Santé Connect SubjectNameID) bound to a personal mailbox."""

    __tablename__ = "pro_identities"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("pro_accounts.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ProGrant(Base):
    """An organisational mailbox granted to the professional of a personal mailbox."""

    __tablename__ = "pro_grants"
    __table_args__ = (UniqueConstraint("org_account_id", "pro_account_id", name="uq_pro_grants_org_pro"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_account_id: Mapped[int] = mapped_column(ForeignKey("pro_accounts.id", ondelete="CASCADE"))
    pro_account_id: Mapped[int] = mapped_column(ForeignKey("pro_accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ProCertificate(Base):
    """A client certificate (SHA-256 of its DER form) bound to an application mailbox."""

    __tablename__ = "pro_certificates"
    __table_args__ = (UniqueConstraint("fingerprint", "account_id", name="uq_pro_certificates_fingerprint_account"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)  # lower-case hex
    account_id: Mapped[int] = mapped_column(ForeignKey("pro_accounts.id", ondelete="CASCADE"), index=True)
    issuer: Mapped[str] = mapped_column(Text)  # RFC 4514 DNs, for display and matching
    subject: Mapped[str] = mapped_column(Text)
    not_after: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Patient(Base):
    """A patient space and its lifecycle (SPEC §5).

    The INS is never stored in clear (issue 20, migration 0013): ``ins_index`` is its keyed
    index (``HMAC-SHA256(index key, "ins", INS)``, :mod:`gateway.accounts.ins_index`) under
    index key ``ins_index_version``, and ``ins_sealed`` the INS sealed under the patient's own
    data key (so shredding a purged space's keys shreds it). ``ins`` is the column of the
    clear INS of old releases: a row not converted yet still holds it; a converted or new row
    holds ``#<id>``.

    Migration 0017 (issue 23): the row belongs to its mailbox's shard (primary key
    ``(mailbox_id, id)``); the global uniqueness of the INS moved to :class:`InsDirectory`
    (keyed index -> mailbox, patient), which every lookup by INS goes through first.
    """

    __tablename__ = "patients"
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id"), primary_key=True, unique=True)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ins: Mapped[str] = mapped_column(String(15), index=True)
    ins_index: Mapped[bytes | None] = mapped_column(LargeBinary)
    ins_index_version: Mapped[int | None] = mapped_column(Integer)
    ins_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), index=True)  # provisioned|open|opposed|closed|purged
    provisioned_at: Mapped[datetime] = mapped_column(UtcDateTime())
    opposition_deadline: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    opposed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    purge_after: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    deletion_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    purged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    activation_code_hash: Mapped[str | None] = mapped_column(String(255))
    activation_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    email_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    notifications_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    last_notified_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    password_hash: Mapped[str | None] = mapped_column(String(255))
    totp_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)  # RFC 6238 §5.2: a code is used once
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    code_mailed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # last code sent to the address


class Folder(Base):
    """An IMAP folder with its bookkeeping (RFC 3501 §2.3.1.1, RFC 7162 HIGHESTMODSEQ)."""

    __tablename__ = "folders"
    __table_args__ = (UniqueConstraint("mailbox_id", "name", name="uq_folders_mailbox_name"),
                      Index("ix_folders_expunged_count", "expunged_count"))
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(512))
    special_use: Mapped[str | None] = mapped_column(String(16))  # \Sent \Drafts \Trash \Archive \Junk
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uidnext: Mapped[int] = mapped_column(BigInteger, default=1)
    highestmodseq: Mapped[int] = mapped_column(BigInteger, default=1)
    # RFC 3501 §2.3.2: the highest UID an IMAP session has taken as \Recent (migration 0006).
    recent_uid: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # RFC 8474 MAILBOXID: random, kept across RENAME, never reused (migration 0010).
    object_id: Mapped[str | None] = mapped_column(String(32), default=lambda: secrets.token_hex(12))
    # The folder's messages' sizes and count (RFC 9208 usage), kept by triggers on messages in
    # the statement that writes them (migration 0011); never written by the application.
    used_octets: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    used_messages: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The folder's rows in ``expunged_uids`` and the highest mod-sequence of those the
    # ``expunged-uids`` job deleted (RFC 7162 §3.2.5.2; migration 0023, gateway/mailstore/expunged.py).
    expunged_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    expunged_floor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    mailbox: Mapped[Mailbox] = relationship(back_populates="folders")


class Subscription(Base):
    """An IMAP subscription kept for a name that has no folder (RFC 3501 §6.3.6: DELETE
    keeps it; SUBSCRIBE never makes one). A folder's own subscription is ``Folder.subscribed``;
    a folder made under such a name takes the subscription back. Migration 0006."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("mailbox_id", "name", name="uq_subscriptions_mailbox_name"),)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(512))


class ExpungedUid(Base):
    """A UID expunged from a folder, with the mod-sequence of its expunge (RFC 7162 §3.2.5
    ``VANISHED (EARLIER)``; migration 0009). Kept for a bounded time: the ``expunged-uids`` job
    deletes a folder's oldest rows beyond ``imap.expunged_uids_kept`` and raises the folder's
    ``expunged_floor`` (migration 0023, :mod:`gateway.mailstore.expunged`)."""

    __tablename__ = "expunged_uids"
    __table_args__ = (
        ForeignKeyConstraint(["mailbox_id", "folder_id"], ["folders.mailbox_id", "folders.id"], ondelete="CASCADE",
                             name="fk_expunged_uids_folder_folders"),
        Index("ix_expunged_uids_folder_modseq", "mailbox_id", "folder_id", "modseq"),
    )
    mailbox_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    folder_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    uid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    modseq: Mapped[int] = mapped_column(BigInteger)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        ForeignKeyConstraint(["mailbox_id", "folder_id"], ["folders.mailbox_id", "folders.id"], ondelete="CASCADE",
                             name="fk_messages_folder_folders"),
        UniqueConstraint("mailbox_id", "folder_id", "uid", name="uq_messages_folder_uid"),
        UniqueConstraint("mailbox_id", "uuid", name="uq_messages_uuid"),
        Index("ix_messages_folder_modseq", "mailbox_id", "folder_id", "modseq"),
        Index("ix_messages_conversation_id", "mailbox_id", "conversation_id"),
    )
    # The folder's mailbox (migration 0017, issue 23): the distribution column of the mailbox group.
    mailbox_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    folder_id: Mapped[int] = mapped_column(BigId)
    uid: Mapped[int] = mapped_column(BigInteger)
    uuid: Mapped[str] = mapped_column(String(32))  # bound into the AAD
    # No foreign keys (no ON DELETE SET NULL, issue 23): a purge deletes the messages with the keys.
    data_key_id: Mapped[int | None] = mapped_column(BigId)
    conversation_id: Mapped[int | None] = mapped_column(BigId)
    flags: Mapped[str] = mapped_column(Text, default="")  # space-separated IMAP flags
    internal_date: Mapped[datetime] = mapped_column(UtcDateTime())
    size: Mapped[int] = mapped_column(BigInteger)
    modseq: Mapped[int] = mapped_column(BigInteger, default=1)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    summary_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    # RFC 8474 EMAILID of a copy (COPY / MOVE keep the original's); NULL: the row's own ``uuid``.
    email_id: Mapped[str | None] = mapped_column(String(32))
    # RFC 8514 SAVEDATE when it is not the internal date (APPEND, COPY, MOVE); NULL: ``internal_date``.
    saved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class MessageChunk(Base):
    """A large message's sealed bytes, in pieces each written in its own short transaction
    before the message row (``gateway/mailstore/chunks.py``); the row's ``sealed`` is then empty."""

    __tablename__ = "message_chunks"
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True)
    message_uuid: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Conversation(Base):
    """A thread a professional opened with a patient (SPEC §4); correspondents are sealed."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("mailbox_id", "uuid", name="uq_conversations_uuid"),)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(32))
    data_key_id: Mapped[int | None] = mapped_column(BigId)  # no foreign key (no SET NULL; issue 23)
    parties_sealed: Mapped[bytes] = mapped_column(LargeBinary)  # opened_by, reply_to, thread ids
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_message_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class QueueEntry(Base):
    """One outbound delivery (one recipient domain) in the persistent queue (SPEC §7).

    Distributed by ``bucket`` (issue 23, :func:`gateway.store.partitions.queue_bucket` of the
    uuid): the primary key and the uuid's uniqueness include it. ``data_key_id`` has no foreign
    key (a purge that shreds a key deletes or nulls the rows first)."""

    __tablename__ = "outbound_queue"
    __table_args__ = (
        PrimaryKeyConstraint("bucket", "id", name="pk_outbound_queue"),
        UniqueConstraint("bucket", "uuid", name="uq_outbound_queue_bucket_uuid"),
        Index("ix_outbound_queue_due", "bucket", "status", "next_attempt_at"),
    )
    bucket: Mapped[int] = mapped_column(SmallInteger)
    id: Mapped[int] = mapped_column(BigId, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(32))
    data_key_id: Mapped[int | None] = mapped_column(BigId)  # no foreign key (issue 23, migration 0017)
    domain: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16), default="message")  # message|bounce|dsn|mdn|notification
    envelope_sealed: Mapped[bytes] = mapped_column(LargeBinary)  # sender, recipients, DSN params
    message_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|bounced|expired
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(String(500))  # reply codes only (issue 20), never content
    last_error_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)  # the text, under the entry's data key
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    bounced_by: Mapped[str | None] = mapped_column(String(320))  # the audit actor of an operator's bounce


class AuditEntry(Base):
    """Tamper-evident audit trail: each row's hash covers the previous row's hash (SPEC §9).

    Partitioned by subject (issue 23, :func:`gateway.store.partitions.audit_partition`): one
    hash chain per partition, a fork impossible within one (``prev_hash`` unique per
    partition); every partition's head is anchored in ``audit_anchors``."""

    __tablename__ = "audit_log"
    __table_args__ = (
        PrimaryKeyConstraint("partition", "id", name="pk_audit_log"),
        UniqueConstraint("partition", "prev_hash", name="uq_audit_log_partition_prev_hash"),  # a fork cannot commit
        UniqueConstraint("partition", "hash", name="uq_audit_log_partition_hash"),
        Index("ix_audit_log_partition", "partition"),  # SQLite: (partition, rowid), the tail lookup
    )
    partition: Mapped[int] = mapped_column(SmallInteger)
    id: Mapped[int] = mapped_column(BigId, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(320))  # "admin:cli", "pro:<address>", "patient:<id>"
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject_ref: Mapped[str | None] = mapped_column(String(64), index=True)  # e.g. "patient:<id>"
    peer: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text, default="{}")  # JSON; never content
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # An entry about a patient (issue 20, gateway/store/audit_links.py): the patient reference,
    # correspondent, peer and details sealed under the patient's data key; a keyed index of the
    # patient; hash_form 2 (the hash covers the sealed bytes). NULL: an entry in clear (form 1).
    hash_form: Mapped[int | None] = mapped_column(Integer)
    patient_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    patient_data_key_id: Mapped[int | None] = mapped_column(BigInteger)  # no foreign key: a purge shreds it
    patient_index: Mapped[bytes | None] = mapped_column(LargeBinary, index=True)
    patient_index_version: Mapped[int | None] = mapped_column(Integer)


class AuditCheckpoint(Base):
    """A range of audit entries exported to a file and pruned (``gateway/store/audit_retention.py``).

    ``pending`` while its export is being written (``lease_owner`` / ``lease_until``: the one
    process doing it); ``done`` once the entries are deleted, in the same transaction. A done
    checkpoint records the pruned chain's ends (``first_prev_hash`` .. ``last_hash``), the
    count and the export file's SHA-256, and is itself chained (``prev_hash`` / ``hash``):
    the first remaining entry's ``prev_hash`` is the last checkpoint's ``last_hash``.
    """

    __tablename__ = "audit_checkpoints"
    __table_args__ = (
        UniqueConstraint("partition", "last_hash", name="uq_audit_checkpoints_partition_last_hash"),
        UniqueConstraint("partition", "prev_hash", name="uq_audit_checkpoints_partition_prev_hash"),
        UniqueConstraint("partition", "hash", name="uq_audit_checkpoints_partition_hash"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    partition: Mapped[int] = mapped_column(SmallInteger, default=0)  # the audit partition it prunes
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done
    first_id: Mapped[int] = mapped_column(BigInteger)
    last_id: Mapped[int] = mapped_column(BigInteger)
    export_name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    entries: Mapped[int | None] = mapped_column(BigInteger)
    first_prev_hash: Mapped[str | None] = mapped_column(String(64))
    last_hash: Mapped[str | None] = mapped_column(String(64))
    last_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    export_sha256: Mapped[str | None] = mapped_column(String(64))
    pruned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    prev_hash: Mapped[str | None] = mapped_column(String(64))  # the previous checkpoint's hash (same partition)
    hash: Mapped[str | None] = mapped_column(String(64))


class AuditAnchor(Base):
    """The global chain over the audit partitions (issue 23, ``gateway/store/audit_anchors.py``):
    each row records every partition's head (``heads``: JSON ``{partition: [last id, hash]}``)
    and is chained on the previous anchor, so a partition cut short or forked after an
    anchor no longer matches it."""

    __tablename__ = "audit_anchors"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    heads: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class _ConsoleAccount:
    """The columns of an account that logs in to the console: password (argon2) + TOTP (sealed).

    Administrators and mediators each have a table of their own with these columns
    (``gateway/accounts/staff.py`` works on either, never on both at once)."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_sealed: Mapped[bytes] = mapped_column(LargeBinary)  # under the system data key
    totp_data_key_id: Mapped[int | None] = mapped_column(BigId)  # the system data key; no foreign key
    last_totp_step: Mapped[int] = mapped_column(BigInteger, default=0)  # a code is accepted once
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class _ConsoleSession:
    """A server-side console session: the cookie carries a random token, stored hashed."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    peer: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class _ApiToken:
    """An API bearer token, stored as a SHA-256 hash."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AdminAccount(_ConsoleAccount, Base):
    """An administrator of the web console and API."""

    __tablename__ = "admins"


class AdminSession(_ConsoleSession, Base):
    """An admin console session."""

    __tablename__ = "admin_sessions"
    admin_id: Mapped[int] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"), index=True)


class AdminToken(_ApiToken, Base):
    """An admin API bearer token (``gateway admin token NAME``)."""

    __tablename__ = "admin_api_tokens"
    admin_id: Mapped[int] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"), index=True)


class Mediator(_ConsoleAccount, Base):
    """A mediator (France Services desk, "médiateur numérique", issue 14): the columns of an admin,
    in a table of its own so that nothing that reads ``admins`` can ever yield a mediator."""

    __tablename__ = "mediators"
    organisation: Mapped[str | None] = mapped_column(String(200))  # e.g. the France Services desk


class MediatorSession(_ConsoleSession, Base):
    """A mediator's console session."""

    __tablename__ = "mediator_sessions"
    mediator_id: Mapped[int] = mapped_column(ForeignKey("mediators.id", ondelete="CASCADE"), index=True)


class MediatorToken(_ApiToken, Base):
    """A mediator's API bearer token (``gateway mediator token NAME``)."""

    __tablename__ = "mediator_api_tokens"
    mediator_id: Mapped[int] = mapped_column(ForeignKey("mediators.id", ondelete="CASCADE"), index=True)


class DailyStat(Base):
    """Adoption figures per day that no other table keeps (messages, documents exchanged)."""

    __tablename__ = "daily_stats"
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD (UTC)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class WebSession(Base):
    """A patient's web inbox session (issue 5): only a hash of the cookie's token is stored,
    and every statement finds the row by it (:mod:`gateway.accounts.web_sessions`).

    ``stage`` is ``activation`` between a valid activation code and the end of enrolment,
    ``full`` once logged in. ``pending_sealed`` holds what is being enrolled (password hash,
    TOTP secret) sealed under the patient's data key until the first code is verified.
    """

    __tablename__ = "web_sessions"
    __table_args__ = (
        # Distributed by token_hash (issue 23, migration 0019): in every key. SQLite keeps ``id
        # INTEGER PRIMARY KEY`` (the rowid, as for the mailbox group) beside the unique token hash.
        PrimaryKeyConstraint("token_hash", "id", name="pk_web_sessions"),
        UniqueConstraint("token_hash", name="uq_web_sessions_token_hash"),  # one session per token
    )
    id: Mapped[int] = mapped_column(BigId, autoincrement=True)  # the AAD of ``pending_sealed``
    token_hash: Mapped[str] = mapped_column(String(64))
    # No foreign key (issue 23: distributed by its own key): a purge deletes the sessions itself.
    patient_id: Mapped[int] = mapped_column(BigId, index=True)
    # The patient's mailbox, so every request reads its patient by ``(mailbox_id, id)``, one
    # shard (migration 0021); NULL only for a session older than 0021 whose patient was gone.
    mailbox_id: Mapped[int | None] = mapped_column(BigId)
    stage: Mapped[str] = mapped_column(String(16), default="full")  # activation | full
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    ip: Mapped[str | None] = mapped_column(String(64))  # no longer written (issue 20); NULL
    csrf_secret: Mapped[str] = mapped_column(String(64))
    pending_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)


class LoginCounter(Base):
    """Login attempts counted before the secret is checked (``gateway/accounts/throttle.py``),
    shared by every node: per account and client network, per network, per account."""

    __tablename__ = "login_counters"
    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    window_start: Mapped[float] = mapped_column(Float)  # seconds since the epoch
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[float | None] = mapped_column(Float)
    next_allowed: Mapped[float | None] = mapped_column(Float)  # account ceiling: spacing, never a lock
    succeeded_at: Mapped[float | None] = mapped_column(Float)  # the network is known for this account
    # attempts reserved and not judged yet, in two lease periods (gateway/accounts/throttle.py)
    pending: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # in pending_epoch
    pending_prev: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # in the one before
    pending_epoch: Mapped[int | None] = mapped_column(Integer)  # now // pending_lease when last rolled


class InsDirectory(Base):
    """Where a patient lives, by the keyed index of the INS (issue 23, migration 0017).

    Distributed by ``ins_index`` (its own key, not co-located with the mailbox group): the
    RCPT lookup reads one row here, then the patient and the mailbox by ``mailbox_id``. Written
    in the transaction that provisions the space, re-keyed by an index conversion or rotation
    (:mod:`gateway.accounts.ins_conversion`); the primary key keeps an INS to one space. A
    purged space keeps its row (its state still answers a lookup by INS) until the index key
    version it is under is retired.
    """

    __tablename__ = "ins_directory"
    ins_index: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    ins_index_version: Mapped[int] = mapped_column(Integer)
    mailbox_id: Mapped[int] = mapped_column(BigId)
    patient_id: Mapped[int] = mapped_column(BigId)


class InsConversionComplete(Base):
    """Present (one row, ``id`` 1) once no patient row is found by its clear INS alone: every
    row is in :class:`InsDirectory` (issue 23, migration 0021). Written by migration 0021 when
    no row holds a clear INS and by ``gateway db convert-ins`` when it leaves none; a lookup by
    INS that misses the directory reads the clear ``patients.ins`` column (a query on every
    shard) only while it is absent (:mod:`gateway.accounts.ins_index`)."""

    __tablename__ = "ins_conversion_complete"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    completed_at: Mapped[datetime] = mapped_column(UtcDateTime())
