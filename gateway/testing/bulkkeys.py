"""Many patient spaces (each with a wrapped data key) in a few seconds, for rotation tests and
``bench/rotation.py``: the bulk path of ``gateway patient import`` (``gateway.accounts.bulk``)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from crypto.keyring import MasterKeyring
from gateway.accounts.bulk import insert_batch, prepare_batch
from gateway.store.db import Database
from routing.ins import synthetic_ins


def add_patients(db: Database, ring: MasterKeyring, count: int, *, seed: int = 7, batch: int = 5000,
                 open_now: bool = True, on_batch: Callable[[int], None] | None = None) -> list[str]:
    """``count`` new open patient spaces with synthetic INS; returns the INS."""
    rng = random.Random(seed)
    seen: set[str] = set()
    now = datetime.now(UTC)
    made: list[str] = []
    while len(made) < count:
        items: list[tuple[str, str | None]] = []
        while len(items) < min(batch, count - len(made)):
            ins = synthetic_ins(rng)
            if ins not in seen:
                seen.add(ins)
                items.append((ins, None))
        prepared = prepare_batch(ring, items)
        with db.write() as session:
            insert_batch(session, prepared, now=now, opposition_deadline=now + timedelta(days=42),
                         code_expires_at=now + timedelta(days=42), open_now=open_now)
        made += [ins for ins, _ in items]
        if on_batch is not None:
            on_batch(len(made))
    return made
