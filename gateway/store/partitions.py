"""Own-key distribution of the audit trail and the outbound queue (issue 23).

Two tables are distributed by a small key of their own rather than by mailbox
(``gateway/store/distribution.py`` maps every table; it imports these constants):

- ``audit_log.partition`` (0 .. :data:`AUDIT_PARTITIONS` - 1): the entry's subject. An entry
  about a patient takes 5 bits of the keyed patient index it already stores (issue 20), so
  the partition says nothing the row does not already say; any other subject takes 5 bits of
  SHA-256 over the subject reference (``domain:…``, ``queue:…``: identifiers in clear in the
  row anyway); an entry without a subject (jobs, verifications, the system) goes to
  partition 0. Each partition is a hash chain of its own (``gateway/store/audit.py``),
  anchored into one global chain (``audit_anchors``, ``gateway/store/audit_anchors.py``).
- ``outbound_queue.bucket`` (0 .. :data:`QUEUE_BUCKETS` - 1): SHA-256 of the entry's uuid, so
  every statement that knows an entry knows its bucket, and workers claim bucket by bucket.

Both values are fixed when the row is written and never recomputed (an index key rotation
changes the stored index, not the partition).
"""

from __future__ import annotations

import hashlib

AUDIT_PARTITIONS = 32
QUEUE_BUCKETS = 32
SYSTEM_PARTITION = 0  # entries without a subject


def _five_bits(data: bytes, modulus: int) -> int:
    return hashlib.sha256(data).digest()[0] % modulus


def audit_partition(subject_ref: str | None, patient_index: bytes | None = None) -> int:
    """The partition of an entry: from the keyed patient index when it is about a patient,
    else from the subject reference; no subject: :data:`SYSTEM_PARTITION`."""
    if patient_index is not None:
        return patient_index[0] % AUDIT_PARTITIONS
    if subject_ref is None:
        return SYSTEM_PARTITION
    return _five_bits(subject_ref.encode(), AUDIT_PARTITIONS)


def queue_bucket(uuid: str) -> int:
    """The bucket of a queue entry, from its uuid alone."""
    return _five_bits(uuid.encode(), QUEUE_BUCKETS)
