"""A migrated store with a fresh master keyring, for tests and benchmarks."""

from __future__ import annotations

import os
from dataclasses import dataclass

from crypto.blind_index import IndexKeyring
from crypto.keyring import MasterKeyring
from gateway.store import migrate
from gateway.store.db import Database
from gateway.store.keys import KeyService


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
