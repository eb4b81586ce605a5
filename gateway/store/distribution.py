"""Which table is distributed by what on Citus (issue 23): the single map everyone conforms to.

Every table of the schema is here, as one of:

- :class:`Distributed`: sharded by ``column``; tables with the same ``group`` are co-located
  (their rows for one value of the column live on the same worker, so joins and foreign keys
  between them on that column stay on one shard). A table without a group is distributed by a
  key of its own and co-located with nothing.
- :class:`Reference`: small and shared, copied to every worker; points at nothing distributed.
- :class:`Local`: stays on the coordinator only (Alembic's bookkeeping).

On SQLite and a single PostgreSQL the map changes nothing at run time: it is what the schema
checks (``tests/store/test_distribution_schema.py``), the statement check of the PostgreSQL
end-to-end pass (``tests/distcheck.py``) and ``gateway db distribute`` read.

``FANOUTS`` lists the statements on distributed tables that deliberately have no equality on
the distribution column (admin reports, jobs that sweep every shard in bounded batches), each
with its reason; anything else the statement check finds is a defect.
"""

from __future__ import annotations

from dataclasses import dataclass

# The outbound queue's distribution column ``bucket`` is a stable hash of the entry's uuid
# modulo QUEUE_BUCKETS; the audit trail's ``partition`` a stable hash of its subject modulo
# AUDIT_PARTITIONS (0: entries about no subject): both defined in gateway.store.partitions.
from gateway.store.partitions import AUDIT_PARTITIONS, QUEUE_BUCKETS

__all__ = ["AUDIT_PARTITIONS", "QUEUE_BUCKETS"]


@dataclass(frozen=True)
class Distributed:
    """Sharded by ``column``; co-located with the other tables of ``group`` (None: its own key)."""

    column: str
    group: str | None = None


@dataclass(frozen=True)
class Reference:
    """Replicated to every worker; never points at a distributed table."""


@dataclass(frozen=True)
class Local:
    """On the coordinator only."""


Kind = Distributed | Reference | Local

MAILBOX = "mailbox"
# The first table of each co-location group: the others are created "colocate_with" it.
GROUP_ANCHORS: dict[str, str] = {MAILBOX: "mailboxes"}

TABLES: dict[str, Kind] = {
    # Everything that belongs to one mailbox, co-located by it.
    "mailboxes": Distributed("id", MAILBOX),
    "data_keys": Distributed("mailbox_id", MAILBOX),
    "patients": Distributed("mailbox_id", MAILBOX),
    "folders": Distributed("mailbox_id", MAILBOX),
    "subscriptions": Distributed("mailbox_id", MAILBOX),
    "expunged_uids": Distributed("mailbox_id", MAILBOX),
    "messages": Distributed("mailbox_id", MAILBOX),
    "message_chunks": Distributed("mailbox_id", MAILBOX),
    "conversations": Distributed("mailbox_id", MAILBOX),
    # Distributed by a key of their own, co-located with nothing.
    "ins_directory": Distributed("ins_index"),  # the INS's keyed index -> mailbox, patient
    "web_sessions": Distributed("token_hash"),  # every request finds its session by the cookie's hash
    "login_counters": Distributed("key"),
    "outbound_queue": Distributed("bucket"),  # 0..QUEUE_BUCKETS-1
    "audit_log": Distributed("partition"),  # 0..AUDIT_PARTITIONS-1
    # Small and shared.
    "hosted_domains": Reference(),
    "dkim_keys": Reference(),
    "trusted_domains": Reference(),
    "pro_accounts": Reference(),
    "pro_identities": Reference(),
    "pro_grants": Reference(),
    "pro_certificates": Reference(),
    "admins": Reference(),
    "admin_sessions": Reference(),
    "admin_api_tokens": Reference(),
    "mediators": Reference(),
    "mediator_sessions": Reference(),
    "mediator_api_tokens": Reference(),
    "key_checks": Reference(),
    "index_key_checks": Reference(),
    "ins_conversion_complete": Reference(),
    "daily_stats": Reference(),
    "audit_checkpoints": Reference(),
    "audit_anchors": Reference(),
    # Alembic's revision row: read and written by migrations on the coordinator only.
    "alembic_version": Local(),
}


# Triggers Citus may run on a distributed table's shards: row-level, no transition tables, and
# touching only rows co-located with the row that fires them (``gateway db distribute`` sets
# ``citus.enable_unsafe_triggers`` for these and refuses any other). The quota bookkeeping of
# migrations 0011/0020: each updates the one folder (mailbox_id, id) of the message.
TRIGGERS: dict[str, frozenset[str]] = {
    "messages": frozenset({"messages_usage_insert", "messages_usage_delete", "messages_usage_update"}),
}


@dataclass(frozen=True)
class Fanout:
    """A statement shape allowed to reach every shard: where it comes from and why it is bounded."""

    where: str  # "module:function" of the gateway frame that issues it
    table: str
    reason: str


def _fanouts(where: str, tables: tuple[str, ...], reason: str) -> tuple[Fanout, ...]:
    return tuple(Fanout(where, t, reason) for t in tables)


# Matched on the gateway function that sends the statement (the innermost one under the store's
# plumbing), for a statement with no equality on the distribution column only: a join off the
# distribution column or a correlated sub-query from a reference table is never allowed.
FANOUTS: tuple[Fanout, ...] = (
    *_fanouts("gateway.mailstore.adoption:figures", ("patients",),
              "admin dashboard: a count per state, one aggregate per shard"),
    *_fanouts("gateway.mailstore.adoption:_per_day", ("patients",),
              "admin dashboard: counts per day over a bounded window, one aggregate per shard"),
    *_fanouts("gateway.operations.queue:list_entries", ("outbound_queue",),
              "admin queue listing: counts per status and the oldest entries, LIMIT N"),
    *_fanouts("gateway.operations.audit_trail:search", ("audit_log",),
              "admin audit search by actor/action/date: the newest entries, LIMIT N"),
    *_fanouts("gateway.operations.audit_trail:export_rows", ("audit_log",),
              "admin audit export: keyset pages of LIMIT N"),
    *_fanouts("gateway.store.keys:versions_in_use", ("data_keys",),
              "key check at start/reload and keys rotate: one min() per shard"),
    *_fanouts("gateway.store.keys:count_under", ("data_keys",),
              "keys status: one count per shard and master key version"),
    *_fanouts("gateway.store.rewrap:rewrap_batch", ("data_keys", "mailboxes"),
              "keys rotate: keyset batches of LIMIT N, data keys joined with their mailbox on the distribution column"),
    *_fanouts("gateway.store.keys:sample_opens", ("data_keys", "mailboxes"),
              "key check at start/reload, for a version in use without a check value (a database from before "
              "key_checks): the first data key under it, LIMIT 1, joined with its mailbox on the distribution column"),
    *_fanouts("gateway.store.keys:not_under", ("data_keys", "mailboxes"),
              "KeyService.rewrap_all, for tests and small stores (gateway keys rotate uses rewrap_batch): batches "
              "of LIMIT N of the keys not yet re-wrapped, each batch re-wrapped before the next is read"),
    *_fanouts("gateway.store.keys:find_system_mailbox", ("mailboxes",),
              "the system mailbox's id: looked up once per process and database (KeyService remembers it)"),
    *_fanouts("gateway.store.keys:find_system_key_owner", ("data_keys", "mailboxes"),
              "a queue entry's, DKIM key's or staff TOTP secret's key not in the system mailbox this process knows "
              "(two nodes made one each at their first start, or it is gone): by key id, joined with its mailbox "
              "on the distribution column; that mailbox is then remembered"),
    *_fanouts("gateway.store.keys:unlink_queue_entries", ("outbound_queue",),
              "a patient space's purge (rare): one UPDATE per shard nulling the queue entries sealed under the "
              "shredded keys (normally none: entries are sealed under the system's keys); the queue is bounded by "
              "its retention"),
    *_fanouts("gateway.store.audit_links:_key_owner", ("data_keys",),
              "opening an audit entry's sealed part when the caller does not know the patient's mailbox (the admin "
              "audit search and export: entries of many patients; an entry names its key, not its mailbox): one "
              "lookup by key id, once per key and process (the unwrapped key is then cached)"),
    *_fanouts("gateway.store.audit_links:_about_everywhere", ("audit_log",),
              "a patient's history after an index key version was retired: entries written under it lie in "
              "partitions no key left can name; the patient's keyed index on every partition, LIMIT N"),
    *_fanouts("gateway.store.audit_conversion:reindex_batch", ("patients",),
              "index key rotation of the audit trail: keyset batches of LIMIT N patient ids over every shard"),
    *_fanouts("gateway.store.audit_conversion:_reindex_everywhere", ("audit_log",),
              "index key rotation of the audit trail after a version was retired (the entries' partitions cannot "
              "be named): one indexed UPDATE per patient of the batch on every partition"),
    *_fanouts("gateway.store.audit_conversion:convert_batch", ("patients",),
              "audit seal-links conversion of an older release's entries (once per installation, batches of N): "
              "an entry names its patient by id only, so each patient's mailbox is found on every shard"),
    *_fanouts("gateway.outbound.queue:stats", ("outbound_queue",),
              "entries per status: one grouped count per shard (bounded by the queue's retention)"),
    *_fanouts("gateway.mailstore.expunged:_over_bound", ("folders",),
              "expunged-uids job: the folders holding more expunged UIDs than the bound, one indexed range "
              "(ix_folders_expunged_count) per run, LIMIT N; each is then pruned by its (mailbox_id, id)"),
    *_fanouts("gateway.mailstore.chunks:remove_orphans", ("message_chunks", "messages"),
              "orphan-chunks job: one multi-shard DELETE per run of the pieces older than the grace period without "
              "their message row (the NOT EXISTS is co-located on mailbox_id)"),
    *_fanouts("gateway.store.gauges:counts", ("outbound_queue", "patients"),
              "metrics scrape: counts per queue status and per space state, the oldest pending entry: one aggregate "
              "per shard per scrape"),
    *_fanouts("gateway.accounts.ins_conversion:pending_reindex", ("patients",),
              "index key rotation progress: one count per shard"),
    *_fanouts("gateway.accounts.ins_conversion:pending_conversion", ("patients",),
              "INS conversion progress (db convert-ins, before and after its run): one count per shard"),
    *_fanouts("gateway.accounts.ins_conversion:_rows", ("patients", "mailboxes", "data_keys"),
              "index key rotation / INS conversion: keyset batches of LIMIT N over every shard"),
    *_fanouts("gateway.accounts.jobs:open_after_opposition", ("patients",),
              "lifecycle job: spaces past their opposition deadline, a multi-shard UPDATE per run"),
    *_fanouts("gateway.accounts.jobs:expire_activation_codes", ("patients",),
              "lifecycle job: expired activation codes, a multi-shard UPDATE per run"),
    *_fanouts("gateway.accounts.jobs:archive_and_purge_closed", ("patients",),
              "lifecycle job: closed spaces due for archive or purge (each purge then works on one mailbox)"),
    *_fanouts("gateway.accounts.jobs:purge_deletion_requests", ("patients",),
              "lifecycle job: spaces whose deletion was requested (each purge then works on one mailbox)"),
    *_fanouts("gateway.accounts.jobs:expire_queue_entries", ("outbound_queue",),
              "queue job: entries past expiry made due, a multi-shard UPDATE per run"),
    *_fanouts("gateway.accounts.web_sessions:purge_expired", ("web_sessions",),
              "expired web sessions swept, a multi-shard DELETE"),
    *_fanouts("gateway.accounts.web_sessions:destroy_all", ("web_sessions",),
              "one patient's sessions ended (activation, password change, closure, opposition, purge): "
              "a multi-shard DELETE by the indexed patient_id, a few rows, on those rare events only"),
    *_fanouts("gateway.accounts.throttle:_expired_keys", ("login_counters",),
              "login throttle sweep, every 500 reservations per process: the keys of expired counters, "
              "one read per shard (each is then deleted by its key)"),
    *_fanouts("gateway.accounts.throttle:_pair_keys", ("login_counters",),
              "an admin resets a professional's password: the account's pair counters (one per network it "
              "was tried from) by key prefix, one read per shard (each is then reset by its key)"),
    *_fanouts("gateway.accounts.web_sessions:count_for", ("web_sessions",),
              "how many sessions a recovery ends (audit detail): one indexed count per shard, once per recovery"),
)


def kind(table: str) -> Kind:
    """The table's kind; a table missing from the map is an error (add it here first)."""
    try:
        return TABLES[table]
    except KeyError:
        raise LookupError(f"table {table!r} is not in gateway/store/distribution.py") from None


def distributed() -> dict[str, Distributed]:
    return {name: k for name, k in TABLES.items() if isinstance(k, Distributed)}


def references() -> set[str]:
    return {name for name, k in TABLES.items() if isinstance(k, Reference)}


def co_located(a: str, b: str) -> bool:
    """Both distributed, in the same co-location group (a table is co-located with itself)."""
    ka, kb = TABLES.get(a), TABLES.get(b)
    if not isinstance(ka, Distributed) or not isinstance(kb, Distributed):
        return False
    return a == b or (ka.group is not None and ka.group == kb.group)


def colocate_with(table: str) -> str:
    """The ``colocate_with`` argument of ``create_distributed_table`` for a distributed table."""
    k = TABLES[table]
    assert isinstance(k, Distributed)
    if k.group is None:
        return "none"
    anchor = GROUP_ANCHORS[k.group]
    return "none" if anchor == table else anchor
