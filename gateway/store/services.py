"""What every command and listener of one process shares: the settings, the database, the
master keyring and the data keys it unwraps, the change hub. Built once by the composition
root (:func:`gateway.app.context.open_services`) and handed down."""

from __future__ import annotations

from dataclasses import dataclass, field

from crypto.keyring import MasterKeyring
from gateway.settings import Settings
from gateway.store.changes import ChangeHub
from gateway.store.db import Database
from gateway.store.keys import KeyService


@dataclass
class Services:
    """What every command and listener shares: settings, database, master keys."""

    settings: Settings
    db: Database
    ring: MasterKeyring
    keys: KeyService
    source: str
    hub: ChangeHub = field(default_factory=ChangeHub)

    def close(self) -> None:
        self.db.dispose()
