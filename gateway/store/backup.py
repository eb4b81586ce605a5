"""Online backup of the SQLite store and restore into an empty home (issue 14).

Backup: SQLite's online backup API (``sqlite3.Connection.backup``) in steps, from a
connection that holds one read transaction for the whole copy. In WAL mode a reader never
blocks writers, so deliveries go on; the held transaction keeps the copy consistent (the
snapshot of its start) and keeps the copy from restarting each time another connection
commits, which it otherwise does under a steady write load. The file is written next to
its destination with mode 0600, switched to a self-contained rollback journal, checked
(``PRAGMA quick_check``), synced, then renamed into place.

The backup holds the database only, never the master keys: the wrapped data keys in it are
useless without the key file, which is backed up separately (and must be kept apart).

Restore: into a home whose database does not exist yet or holds no data, after checking
the backup's schema revision (older: migrated; newer: refused) and that the home's key file
opens every master key version the backup uses (its key-check values).

PostgreSQL: ``pg_dump``/``pg_restore`` or continuous archiving (docs/deploy.md), refused here.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from crypto.keyring import MasterKeyring
from gateway.store.keys import KeyCheckReport, check_ring
from gateway.store.migrate import MIGRATIONS

STEP_PAGES = 1024
"""Pages copied per backup step (4 MiB with 4 KiB pages); the read transaction stays open between steps."""

PG_HINT = ("the store is PostgreSQL: back it up with pg_dump (or continuous archiving / PITR) "
           "as described in docs/deploy.md, 'Backups'")
KEYS_NOTE = ("the backup does not contain the master keys: back up the key file separately "
             "and keep it apart from the database backups")
NOT_DATA = ("alembic_version", "key_checks", "index_key_checks", "ins_conversion_complete")


class BackupError(Exception):
    """A refused or failed backup/restore (one line for the operator)."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    size: int
    revision: str | None
    seconds: float
    restarts: int


def sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite"):
        raise BackupError(PG_HINT)
    name = url.split("///", 1)[1] if "///" in url else ""
    if not name or name == ":memory:":
        raise BackupError(f"{url}: not a database file")
    return Path(name)


def _fsync(path: Path) -> None:
    """Flush a file, or a folder (so that a rename into it survives a crash), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_private(path: Path) -> None:
    """An empty file only the owner may read (whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def backup_destination(dest: Path, *, now: datetime | None = None) -> Path:
    """``dest`` itself, or a dated file inside it when it is a folder; never an existing file."""
    if dest.is_dir():
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        dest = dest / f"gateway-{stamp}.db"
    if dest.exists() or dest.is_symlink():
        raise BackupError(f"{dest}: already exists; choose a new file name (a backup never overwrites)")
    if not dest.parent.is_dir():
        raise BackupError(f"{dest.parent}: no such folder")
    return dest


def _revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    return None if row is None else str(row[0])


def backup_sqlite(source: Path, dest: Path, *, step_pages: int = STEP_PAGES,
                  progress: Callable[[int, int], None] | None = None) -> BackupInfo:
    """Copy the live database ``source`` into the new file ``dest`` (see the module docstring)."""
    if not source.is_file():
        raise BackupError(f"{source}: database file not found")
    dest = backup_destination(dest)
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    started = time.perf_counter()
    restarts = 0
    _create_private(partial)
    try:
        src = sqlite3.connect(source, isolation_level=None, timeout=30)
        try:
            src.execute("PRAGMA busy_timeout=30000")
            # One read transaction for the whole copy: a consistent snapshot, no restarts, and in
            # WAL mode no writer waits for it (only checkpoints stop at its snapshot meanwhile).
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
            revision = _revision(src)
            dst = sqlite3.connect(partial, isolation_level=None)
            try:
                last = [0]

                def step(_status: int, remaining: int, total: int) -> None:
                    nonlocal restarts
                    if remaining > last[0] and last[0]:
                        restarts += 1
                    last[0] = remaining
                    if progress is not None:
                        progress(total - remaining, total)

                src.backup(dst, pages=step_pages, progress=step, sleep=0.0)
                src.execute("COMMIT")
                # A self-contained file: no -wal beside it, restorable by copying it alone.
                dst.execute("PRAGMA journal_mode=DELETE").fetchone()
                check = dst.execute("PRAGMA quick_check").fetchone()
                if check is None or check[0] != "ok":
                    raise BackupError(f"{dest}: the copy does not pass PRAGMA quick_check ({check}); nothing kept")
            finally:
                dst.close()
        finally:
            src.close()
        os.chmod(partial, 0o600)
        _fsync(partial)
        os.replace(partial, dest)
        _fsync(dest.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return BackupInfo(dest, dest.stat().st_size, revision, time.perf_counter() - started, restarts)


# --------------------------------------------------------------------------- restore

@dataclass(frozen=True)
class BackupContents:
    revision: str | None
    key_report: KeyCheckReport


def _readonly(path: Path) -> sqlite3.Connection:
    # immutable: nothing (not even a -shm or -journal file) is created beside the backup
    return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, isolation_level=None)


@contextlib.contextmanager
def _readonly_session(path: Path) -> Iterator[Session]:
    engine = create_engine("sqlite://", creator=lambda: _readonly(path))
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def _known_revisions() -> set[str]:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return {rev.revision for rev in ScriptDirectory.from_config(cfg).walk_revisions()}


def inspect_backup(src: Path, ring: MasterKeyring, key_file: Path) -> BackupContents:
    """Schema revision and key check of a backup file; raises :class:`BackupError`."""
    if not src.is_file():
        raise BackupError(f"{src}: backup file not found")
    with src.open("rb") as handle:
        header = handle.read(20)
    if header[:16] != b"SQLite format 3\x00":
        raise BackupError(f"{src}: not a gateway backup (not an SQLite database file)")
    if header[18] == 2 and Path(f"{src}-wal").exists():
        raise BackupError(f"{src}: a live database (it has a -wal file), not a file made by 'gateway backup'")
    conn = _readonly(src)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        revision = _revision(conn)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{src}: unreadable backup ({exc})") from None
    finally:
        conn.close()
    if "data_keys" not in tables or revision is None:
        raise BackupError(f"{src}: not a gateway backup (no schema revision or no data_keys table)")
    if revision not in _known_revisions():
        raise BackupError(f"{src}: schema revision {revision} is newer than this version of the gateway "
                          "knows; restore it with the version that made it (or a newer one)")
    with _readonly_session(src) as session:
        report = check_ring(session, ring, with_table="key_checks" in tables,
                            with_index_table="index_key_checks" in tables)
    if not report.ok:
        raise BackupError(f"{src}: the key file {key_file} {report.problem()}: restore the key file "
                          "that belongs with this backup first; nothing was changed")
    return BackupContents(revision, report)


def nonempty_tables(path: Path) -> list[str]:
    """Tables of an existing database that hold data (all but the schema revision, key checks and the
    INS conversion mark a new database gets from its migrations)."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return [n for n in names if n not in NOT_DATA
                and conn.execute(f'SELECT 1 FROM "{n}" LIMIT 1').fetchone() is not None]  # noqa: S608
    finally:
        conn.close()


def copy_into_place(src: Path, target: Path) -> None:
    """Copy the backup to ``target`` (mode 0600, WAL mode), replacing an empty database there."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = target.with_name(f".{target.name}.restore-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    _create_private(partial)
    try:
        source = _readonly(src)
        try:
            dst = sqlite3.connect(partial, isolation_level=None)
            try:
                source.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE").fetchone()
            finally:
                dst.close()
        finally:
            source.close()
        os.chmod(partial, 0o600)
        _fsync(partial)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{target}{suffix}").unlink()
        os.replace(partial, target)
        _fsync(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
