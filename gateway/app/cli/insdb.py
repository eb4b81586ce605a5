"""``gateway db convert-ins`` and ``gateway db restore-ins`` (issue 20): the patients' INS
turned into keyed indexes and sealed copies, in short batches while the gateway serves, and
back before a downgrade below migration 0013."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from gateway.accounts import ins_conversion as conv
from gateway.app.cli.common import Leaf, Node, UserError, actor, services
from gateway.app.cli.progress import Progress
from gateway.store import audit

CONVERT_EPILOG = """\
A database made before migration 0013 holds each patient's INS in clear. This command gives
every such row its keyed index (HMAC-SHA256 under the key file's index key) and its INS sealed
under the patient's data key, and removes the clear INS, a batch at a time: each batch is
written in one short transaction, so the gateway keeps serving (deliveries, logins and lookups
find converted and unconverted rows alike). Interrupted? Run it again: it continues. Purged
spaces (keys shredded) keep only their index. When it reports 0 left, no INS is in clear, and
that is recorded: lookups by INS stop looking for a clear INS (a query on every shard).
"""


def register(db: Node, leaf: Leaf) -> None:
    p = leaf(db, "convert-ins", "replace every clear INS with its keyed index and a sealed copy, in batches, "
             "while the gateway serves", cmd_convert_ins)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = CONVERT_EPILOG
    p.add_argument("--batch-size", type=int, default=conv.DEFAULT_BATCH, metavar="N",
                   help="rows per transaction (default: %(default)s)")
    p.add_argument("--pause", type=float, default=0.0, metavar="S",
                   help="seconds to wait between batches (default: none)")
    p = leaf(db, "restore-ins", "put the clear INS back from its sealed copy (only before downgrading below "
             "migration 0013)", cmd_restore_ins)
    p.add_argument("--batch-size", type=int, default=conv.DEFAULT_BATCH, metavar="N",
                   help="rows per transaction (default: %(default)s)")
    p.add_argument("--yes", action="store_true", help="confirm: this writes every INS in clear again")


def _batch_size(value: int) -> int:
    if not 1 <= value <= 100_000:
        raise UserError("--batch-size must be between 1 and 100000")
    return value


def cmd_convert_ins(args: argparse.Namespace) -> int:
    size = _batch_size(args.batch_size)
    with services(args) as svc:
        with svc.db.read() as session:
            index, version = svc.keys.index_version(session)
            left = conv.pending_conversion(session)
        print(f"{left:,} patient rows hold a clear INS; converting with index-v{version} in batches of {size:,}",
              flush=True)
        progress = Progress(sys.stderr, left, label="rows")
        done = 0

        def step(after: int) -> conv.Batch:
            return conv.convert_batch(svc.db, svc.keys.ring, index, version, after_id=after, limit=size)

        def on_batch(batch: conv.Batch) -> None:
            nonlocal done
            done += batch.done
            progress.update(done)

        try:
            total = conv.run(step, on_batch=on_batch, pause=args.pause)
        except KeyboardInterrupt:
            progress.finish()
            print(f"interrupted after {done:,} rows; run 'gateway db convert-ins' again to continue", file=sys.stderr)
            return 130
        progress.finish()
        with svc.db.write() as session:
            audit.record(session, actor=actor(), action="patient.ins_convert",
                         details={"rows": total.done, "purged_without_key": len(total.unopened),
                                  "index_version": version})
        with svc.db.write() as session:
            left = conv.record_complete(session, datetime.now(UTC))
        scrubbed = conv.scrub(svc.db)
    if not scrubbed:
        print("gateway: warning: the SQLite write-ahead log could not be truncated now (a long read in "
              "progress): old page images may hold a clear INS until the next full checkpoint; run "
              "'gateway db convert-ins' again later", file=sys.stderr)
    print(f"converted {total.done:,} rows in {total.seconds:.1f} s ({len(total.unopened):,} purged spaces kept "
          f"only their index); {left:,} left")
    return 0 if left == 0 else 1


def cmd_restore_ins(args: argparse.Namespace) -> int:
    if not args.yes:
        raise UserError("this writes every patient's INS in clear into the database again (for a downgrade "
                        "below migration 0013); add --yes")
    size = _batch_size(args.batch_size)
    with services(args) as svc:
        total = conv.run(lambda after: conv.restore_batch(svc.db, svc.keys.ring, after_id=after, limit=size))
        with svc.db.write() as session:
            audit.record(session, actor=actor(), action="patient.ins_restore",
                         details={"rows": total.done, "unopened": len(total.unopened)})
    print(f"clear INS restored on {total.done:,} rows")
    if total.unopened:
        print(f"gateway: error: {len(total.unopened):,} rows have a sealed INS that does not open (key file?); "
              "a downgrade below 0013 stays refused while they exist", file=sys.stderr)
        return 1
    return 0
