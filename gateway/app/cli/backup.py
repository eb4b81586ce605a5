"""``gateway backup DEST`` and ``gateway restore SRC`` (issue 14): SQLite online backup and
restore into an empty home; PostgreSQL is backed up with its own tools (docs/deploy.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from gateway.app.cli.common import Leaf, UserError, actor, location, services, translate_errors
from gateway.app.cli.progress import Progress
from gateway.app.context import load_checked
from gateway.store import audit, backup, migrate
from gateway.store.keyfile import load_keyring
from gateway.store.models import Mailbox, Message

BACKUP_EPILOG = """\
SQLite: an online, consistent copy (SQLite's backup API, one read snapshot) while the gateway
keeps serving; the file is created with mode 0600 and never overwrites an existing one (give
a folder to get a dated file name in it). PostgreSQL: use pg_dump or continuous archiving
(docs/deploy.md, 'Backups'); this command then refuses.

The backup never contains the master keys: back up keys/master.keys separately (after every
'gateway keys rotate') and keep the two apart. Restore with 'gateway restore FILE'.
"""

RESTORE_EPILOG = """\
Restores into an empty home: its gateway.toml (same [server] and [domains] as the original)
and the key file of the backed-up installation must be in place, and its database must not
exist yet or hold no data (a home just made by 'gateway init', with keys/master.keys then
replaced by the original's key file, will do). Refused when the key file does not open every
master key version the backup uses, or when the backup's schema is newer than this version of
the gateway; an older schema is migrated.
"""


def register(sub: Any, leaf: Leaf) -> None:
    p = leaf(sub, "backup", "online, consistent backup of the SQLite store (never the master keys)", cmd_backup)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = BACKUP_EPILOG
    p.add_argument("dest", metavar="DEST", help="new backup file, or a folder to put a dated file in")
    p = leaf(sub, "restore", "restore a backup made by 'gateway backup' into an empty home", cmd_restore)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = RESTORE_EPILOG
    p.add_argument("src", metavar="SRC", help="backup file made by 'gateway backup'")


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 1e6 else f"{n / 1e3:,.1f} kB"


def cmd_backup(args: argparse.Namespace) -> int:
    loc = location(args)
    if loc.config.exists():
        with translate_errors():
            if not load_checked(loc).database_url.startswith("sqlite"):
                raise UserError(backup.PG_HINT)
    with services(args, migrate_schema=False) as svc:
        progress = Progress(sys.stderr, 0, label="pages")

        def on_step(done: int, total: int) -> None:
            progress.total = total
            progress.update(done)

        try:
            source = backup.sqlite_path(svc.settings.database_url)
            info = backup.backup_sqlite(source, Path(args.dest), progress=on_step)
        except backup.BackupError as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            raise UserError(f"{args.dest}: cannot write the backup ({exc.strerror or exc})") from None
        progress.finish()
        with svc.db.write() as session:
            audit.record(session, actor=actor(), action="backup",
                         details={"file": info.path.name, "bytes": info.size, "revision": info.revision})
        key_file = svc.settings.master_key_path
    print(f"backup written to {info.path} ({_size(info.size)}, schema revision {info.revision}, mode 0600) "
          f"in {info.seconds:.1f} s")
    print(f"note: {backup.KEYS_NOTE} ({key_file})")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    src = Path(args.src)
    loc = location(args)
    if not loc.config.exists():
        raise UserError(f"{loc.config}: configuration file not found: restore needs a home with its gateway.toml "
                        "and the original key file ('gateway init --home DIR', then put the key file in place)")
    with translate_errors():
        settings = load_checked(loc)
        key_file = settings.master_key_path
        ring = load_keyring(key_file, allow_insecure=settings.keys.allow_insecure_key_file)
    try:
        target = backup.sqlite_path(settings.database_url)
    except backup.BackupError:
        raise UserError("the store is PostgreSQL: restore a pg_dump with pg_restore as described in "
                        "docs/deploy.md, 'Backups'") from None
    busy = backup.nonempty_tables(target)
    if busy:
        shown = ", ".join(busy[:5]) + (", ..." if len(busy) > 5 else "")
        raise UserError(f"{target}: this home's database already holds data ({shown}); restore only into an "
                        "empty home")
    try:
        contents = backup.inspect_backup(src, ring, key_file)
        backup.copy_into_place(src, target)
    except backup.BackupError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{target}: cannot write the database ({exc.strerror or exc})") from None
    with services(args, migrate_schema=True) as svc:
        revision = migrate.current_revision(svc.db.engine)
        with svc.db.write() as session:
            report = audit.verify(session)
            mailboxes = session.execute(select(func.count()).select_from(Mailbox)).scalar_one()
            messages = session.execute(select(func.count()).select_from(Message)).scalar_one()
            audit.record(session, actor=actor(), action="backup.restore",
                         details={"file": src.name, "revision": contents.revision, "now": revision})
    migrated = f" (migrated from {contents.revision})" if contents.revision != revision else ""
    print(f"restored {src} into {target}: schema revision {revision}{migrated}, {mailboxes:,} mailboxes, "
          f"{messages:,} messages")
    if not report.ok:
        print(f"gateway: error: audit trail BROKEN at entry #{report.first_bad_id}: {report.problem}",
              file=sys.stderr)
        return 1
    print(f"audit trail intact: {report.entries} entries; master keys: {key_file}")
    return 0
