"""A migrated store with a fresh master keyring, for tests and benchmarks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.blind_index import IndexKeyring
from crypto.keyring import MasterKeyring
from gateway.store import migrate
from gateway.store.db import Database
from gateway.store.keys import KeyService
from gateway.store.models import Base

M = TypeVar("M", bound=Base)


def by_id(session: Session, model: type[M], row_id: int) -> M | None:
    """The row of ``model`` with this ``id`` (tests: the mailbox group's keys are ``(mailbox_id, id)``)."""
    return session.execute(select(model).where(model.id == row_id)).scalar_one_or_none()  # type: ignore[attr-defined]


@dataclass
class Store:
    db: Database
    ring: MasterKeyring
    keys: KeyService

    def close(self) -> None:
        self.db.dispose()


def open_store(url: str) -> Store:
    db = Database(url, pool_size=5)
    migrate.upgrade(db.engine)
    ring = MasterKeyring({1: os.urandom(32)}, IndexKeyring.generate())
    return Store(db, ring, KeyService(ring))
