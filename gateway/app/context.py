"""Locating the configuration, creating the embedded default, and opening the services.

Order matters for "a bad config changes nothing": settings are validated, files checked
and the master key parsed *before* anything is created or migrated.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from crypto.blind_index import IndexKeyring
from crypto.keyring import MasterKeyring
from gateway.app.config import check_files, load_settings, validate_settings
from gateway.settings import ConfigError, Settings
from gateway.store import keyops
from gateway.store.db import Database
from gateway.store.keyfile import load_keyring, write_keyring
from gateway.store.opening import StoreUnavailable, display_url, open_database, store_errors
from gateway.store.services import Services

CONFIG_NAME = "gateway.toml"
DEFAULT_HOME = Path("var")


@dataclass(frozen=True)
class Location:
    config: Path
    home: Path
    explicit_config: bool


def locate(config: str | None, home: str | None, environ: Mapping[str, str] | None = None) -> Location:
    """``--config``/``GATEWAY_CONFIG`` wins; else ``--home``/``GATEWAY_HOME``/``./var`` + gateway.toml."""
    env = os.environ if environ is None else environ
    config_value = config or env.get("GATEWAY_CONFIG")
    home_value = home or env.get("GATEWAY_HOME")
    if config_value:
        path = Path(config_value)
        return Location(path, Path(home_value) if home_value else path.resolve().parent, True)
    home_path = Path(home_value) if home_value else DEFAULT_HOME
    return Location(home_path / CONFIG_NAME, home_path, False)


def example_config(hostname: str, patient_domain: str) -> str:
    return f"""# Gateway configuration written by 'gateway init'. Every key and its default:
# see config/README.md. Relative paths are resolved against this file's folder.

[server]
hostname = "{hostname}"

[domains]
patient_domain = "{patient_domain}"

[listen]
mx = "127.0.0.1:2525"
submission = "127.0.0.1:2587"
submissions = "127.0.0.1:2465"
imap = "127.0.0.1:1143"
imaps = "127.0.0.1:1993"
http = "127.0.0.1:8080"

[tls]
cert_file = "tls/server.pem"
key_file = "tls/server.key"
ca_file = "tls/ca.pem"

[storage]
url = "sqlite:///gateway.db"

[keys]
master_key_file = "keys/master.keys"
"""


class InitError(Exception):
    pass


def init_home(home: Path, *, hostname: str, patient_domain: str) -> Path:
    """Create a state folder (0700): config, master key (0600), development CA + server cert, migrated store.

    The store is the one the configuration names once the ``GATEWAY__*`` environment is
    applied: with ``GATEWAY__STORAGE__URL`` pointing at PostgreSQL that database is migrated
    and no SQLite file is created.
    """
    from gateway.app.devtls import write_dev_tls
    from routing.address import InvalidAddress, normalise_domain

    try:
        hostname = normalise_domain(hostname)
        patient_domain = normalise_domain(patient_domain)
    except InvalidAddress as exc:
        raise InitError(f"invalid domain name: {exc}") from None
    config_path = home / CONFIG_NAME
    if config_path.exists():
        raise InitError(f"{config_path} already exists; refusing to overwrite an existing gateway home")
    text = example_config(hostname, patient_domain)
    settings = validate_settings(tomllib.loads(text), "environment", home.resolve())
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    ring = MasterKeyring({1: os.urandom(32)}, IndexKeyring.generate())
    write_keyring(home / "keys" / "master.keys", ring)
    write_dev_tls(home / "tls", hostname)
    db = open_database(settings.database_url, create=True)
    try:
        _schema(db, Location(config_path, home, True), migrate=True)
        with store_errors(db.url, "cannot apply the schema migrations"):
            keyops.record_initial(db, ring)
    finally:
        db.dispose()
    # The config file last: a failed init leaves no config, so it can simply be run again.
    tmp = config_path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it may come to hold a database password
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, config_path)
    return config_path


def load_checked(location: Location) -> Settings:
    settings = load_settings(location.config)
    check_files(settings, str(location.config))
    return settings


def _schema(db: Database, location: Location, *, migrate: bool) -> None:
    """Apply the migrations, or check that the schema is current (one line when it is not)."""
    from gateway.store import migrate as migrations  # Alembic: only where the schema is looked at

    if migrate:
        from gateway.store.citus import CannotDistribute

        with store_errors(db.url, "cannot apply the schema migrations"):
            try:
                migrations.upgrade(db.engine)
            except CannotDistribute as exc:  # the migrations committed; the new tables stay local
                raise StoreUnavailable(
                    f"{display_url(db.url)}: the schema migrations were applied, but the tables they added could "
                    f"not be distributed on this Citus coordinator ({' '.join(str(exc).split())}); "
                    "'gateway db distribute --dry-run' lists them") from None
        return
    with store_errors(db.url, "cannot read the schema revision"):
        up_to_date = migrations.is_up_to_date(db.engine)
    if not up_to_date:
        raise ConfigError(
            f"{location.config}: storage.auto_migrate: the database schema is behind; "
            "run 'gateway db upgrade' first"
        )


def open_services(location: Location, *, migrate_schema: bool | None = None, create_store: bool = False,
                  check_schema: bool = True) -> Services:
    """Validate everything, then connect; migrate when configured (or asked).

    A store that cannot be opened raises :class:`~gateway.store.opening.StoreUnavailable`
    (one line); a missing SQLite file is created (0600) only with ``create_store``.
    ``check_schema=False`` (an SMTP process, whose serving process checked or migrated the
    schema before starting it) neither migrates nor reads the revision: Alembic is then not
    imported at all (issue 22: ~9 MiB per SMTP process, with Mako and Pygments).
    """
    settings = load_checked(location)
    ring = load_keyring(settings.master_key_path, allow_insecure=settings.keys.allow_insecure_key_file)
    db = open_database(settings.database_url, create=create_store, pool_size=settings.storage.pool_size,
                       max_overflow=settings.storage.max_overflow)
    try:
        with store_errors(db.url, "cannot read the key-check values"):
            report = keyops.check_at_start(db, ring, settings.master_key_path)  # before any write
        should_migrate = settings.storage.auto_migrate if migrate_schema is None else migrate_schema
        if check_schema:
            _schema(db, location, migrate=should_migrate)
        active = keyops.record_at_start(db, ring, report)
        with store_errors(db.url, "cannot record the index key"):
            ring, active_index = keyops.ensure_index_key(db, ring, settings.master_key_path)
    except BaseException:
        db.dispose()
        raise
    # ``ring`` wraps new data keys and indexes new rows (bulk import): up to the active versions,
    # never one only prepared.
    assert ring.index is not None
    writing = ring.up_to(active).with_index(ring.index.up_to(active_index))
    return Services(settings, db, writing, keyops.key_service(ring, settings), str(location.config))
