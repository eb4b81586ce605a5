"""What the console and the JSON API share: now :mod:`gateway.operations.common`, re-exported.

Operations are plain synchronous functions over a SQLAlchemy session; the web layers
run them in a worker thread. Each one that changes something, or reads a patient's
data, writes an audit entry with actor ``admin:<name>`` in the same transaction
(``mediator:<name>`` for a mediator).
"""

from __future__ import annotations

from gateway.operations.common import (
    Actor,
    OpError,
    bad_request,
    conflict,
    flag,
    integer,
    iso,
    not_found,
    text,
    when,
)

__all__ = ["Actor", "OpError", "bad_request", "conflict", "flag", "integer", "iso", "not_found", "text", "when"]
