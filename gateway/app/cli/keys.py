"""``gateway keys``: master key versions, rotation in batches, retiring, status (issue 14)."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crypto.blind_index import IndexKeyring
from gateway.accounts import ins_conversion
from gateway.app.cli.common import Leaf, Node, UserError, actor, emit_json, emit_table, services
from gateway.app.cli.progress import Progress
from gateway.store import audit, keyops
from gateway.store.index_keys import active_index_version, forget_index_check, recorded_index_checks
from gateway.store.keyfile import write_keyring
from gateway.store.keys import (
    active_version,
    count_under,
    recorded_checks,
    versions_in_use,
)
from gateway.store.models import Patient
from gateway.store.rewrap import BatchResult, pending_counts
from gateway.store.services import Services

ROTATE_EPILOG = """\
How running processes learn of the new version: every process (gateway serve, its SMTP
worker processes, every node) re-reads its key file when it meets a data key wrapped with a
version it lacks, and on SIGHUP ('systemctl reload gateway'); no restart is needed. New data
keys are wrapped with the newest version recorded in the database.

One node, or nodes sharing one key file:
    gateway keys rotate

Several nodes, each with its own copy of the key file: give every node the new version
before any data key uses it, then rotate:
    gateway keys rotate --prepare      # on one node: adds the version to its key file only
    (copy keys/master.keys to every node, mode 0600; SIGHUP optional)
    gateway keys rotate                # records the version, re-wraps in batches
A node whose file lacks the new version keeps serving; what it cannot open answers a
failure (SMTP 451 4.3.0, IMAP NO, a web error page) and it logs the missing version until it
gets the file. A node started with a file that does not open every version in use refuses
to start.

The index key (index-v<N> lines: the keyed indexes of the patients' INS) is rotated with it:
a new index version is added and every patient row re-indexed in batches after the data keys
are re-wrapped; lookups try every index version the key file holds meanwhile. A purged space
cannot be re-indexed (its INS was shredded with its keys): it keeps the old index version.

Interrupted (Ctrl-C, crash)? Run 'gateway keys rotate' again: it continues with the same
version (--new-version adds yet another). When 'gateway keys status' shows no data key
under an old version: 'gateway keys retire VERSION'.
"""


def register(node: Node, leaf: Leaf) -> None:
    keys = node("keys", "master keys: rotation, retiring, status")
    p = leaf(keys, "rotate", "add a master key version and re-wrap every data key under it, in short batches",
             cmd_keys_rotate)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ROTATE_EPILOG
    p.add_argument("--batch-size", type=int, default=keyops.DEFAULT_BATCH, metavar="N",
                   help="data keys re-wrapped per transaction (default: %(default)s)")
    p.add_argument("--new-version", action="store_true",
                   help="add a new version even when an unfinished rotation could be continued")
    p.add_argument("--prepare", action="store_true",
                   help="only add the new version to the key file (to copy it to every node first); "
                        "nothing uses it until 'keys rotate'")
    p = leaf(keys, "retire", "remove an old master key version from the key file (refused while any data key "
             "still uses it)", cmd_keys_retire)
    p.add_argument("version", metavar="VERSION", help="version number, e.g. 1 or v1 (index-v1 with --index)")
    p.add_argument("--index", action="store_true",
                   help="retire an index key version (index-v<N>) instead: refused while a patient row still uses "
                        "it; purged spaces still under it lose their index (nothing could find them without it)")
    p = leaf(keys, "status", "show master key versions, their key checks and how many data keys each wraps",
             cmd_keys_status)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _version(text: str) -> int:
    value = text.strip().lower().removeprefix("v")
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"VERSION must be a version number such as 2 or v2, got {text!r}")
    return int(value)


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or args.batch_size > 100_000:
        raise UserError("--batch-size must be between 1 and 100000")
    with services(args) as svc:
        path = svc.settings.master_key_path
        try:
            if args.prepare:
                version, added = keyops.prepare_version(svc.db, svc.keys, path)
                with svc.db.write() as session:
                    audit.record(session, actor=actor(), action="keys.prepare",
                                 details={"version": version, "added": added})
                print(f"master key v{version} {'added to' if added else 'already in'} {path}; nothing uses it yet. "
                      "Copy this file to every node (mode 0600), then run 'gateway keys rotate'.")
                return 0
            plan = keyops.plan_rotation(svc.db, svc.keys, path, new_version=args.new_version)
        except keyops.KeyOperationError as exc:
            raise UserError(str(exc)) from None
        intro = {"new": f"master key v{plan.target} added to {path}",
                 "resume": f"continuing the rotation to v{plan.target}",
                 "prepared": f"using the prepared master key v{plan.target}"}[plan.how]
        print(f"{intro}; {plan.total:,} data keys to re-wrap in batches of {args.batch_size:,}", flush=True)
        with svc.db.write() as session:
            audit.record(session, actor=actor(), action="keys.rotate.start",
                         details={"version": plan.target, "how": plan.how, "data_keys": plan.total})
        progress = Progress(sys.stderr, plan.total, label="data keys")
        done = 0

        def on_batch(batch: BatchResult) -> None:
            nonlocal done
            done += batch.rewrapped + len(batch.failed)
            progress.update(done)

        try:
            result = keyops.run_rotation(svc.db, svc.keys.ring, plan, batch_size=args.batch_size, on_batch=on_batch)
        except keyops.KeyOperationError as exc:
            raise UserError(str(exc)) from None
        except KeyboardInterrupt:
            progress.finish()
            print(f"interrupted after {done:,} data keys; run 'gateway keys rotate' again to continue",
                  file=sys.stderr)
            return 130
        progress.finish()
        reindexed = 0
        if plan.index_target is not None:
            try:
                reindexed = _reindex(svc, plan.index_target, args.batch_size)
            except KeyboardInterrupt:
                print("interrupted while re-indexing; run 'gateway keys rotate' again to continue", file=sys.stderr)
                return 130
        with svc.db.write() as session:
            audit.record(session, actor=actor(), action="keys.rotate",
                         details={"version": plan.target, "data_keys": result.rewrapped,
                                  "failed": len(result.failed), "index_version": plan.index_target,
                                  "reindexed": reindexed})
        with svc.db.read() as session:
            left = {v: n for v, n in pending_counts(session, plan.target).items() if n}
            index_left = {} if plan.index_target is None else ins_conversion.pending_reindex(
                session, plan.index_target)
    print(f"master key v{plan.target}: re-wrapped {result.rewrapped:,} data keys in {result.seconds:.1f} s")
    if plan.index_target is not None:
        print(f"index key index-v{plan.index_target}: re-indexed {reindexed:,} patient rows")
    if index_left:
        print("patient rows still under an old index key: "
              + ", ".join(f"index-v{v}: {n:,}" for v, n in sorted(index_left.items()))
              + "; run 'gateway keys rotate' again")
        return 1
    if result.failed:
        shown = ", ".join(str(i) for i in result.failed[:10])
        print(f"gateway: error: {len(result.failed):,} data keys did not unwrap and were left as they are "
              f"(ids {shown}{', ...' if len(result.failed) > 10 else ''})", file=sys.stderr)
        return 1
    if left:
        print("still under an old version (created meanwhile): "
              + ", ".join(f"v{v}: {n:,}" for v, n in sorted(left.items()))
              + "; run 'gateway keys rotate' again")
        return 1
    old = [v for v in svc.keys.ring.versions if v != plan.target]
    if old:
        print(f"no data key uses {', '.join(f'v{v}' for v in old)} any more: "
              f"'gateway keys retire {old[0]}' removes it from the key file")
    return 0


def _reindex(svc: Services, target: int, batch_size: int) -> int:
    """Re-index every patient row to index key ``target``, in batches; returns how many."""
    with svc.db.read() as session:
        pending = ins_conversion.pending_reindex(session, target)
    total = sum(pending.values())
    if not total:
        return 0
    ring = svc.keys.ring
    index = ring.index
    assert index is not None
    missing = [v for v in pending if not index.has(v)]
    if missing:
        raise UserError(f"patient rows are indexed with {', '.join(f'index-v{v}' for v in missing)}, which the "
                        "key file lacks: copy the current key file here first")
    print(f"re-indexing {total:,} patient rows with index-v{target}", flush=True)
    progress = Progress(sys.stderr, total, label="patients")
    done = 0
    for source in sorted(pending):
        def step(after: int, source: int = source) -> ins_conversion.Batch:
            return ins_conversion.reindex_batch(svc.db, ring, index, source=source, target=target, after_id=after,
                                                limit=batch_size)

        def on_batch(batch: ins_conversion.Batch) -> None:
            nonlocal done
            done += batch.done
            progress.update(done)

        ins_conversion.run(step, on_batch=on_batch)
    progress.finish()
    return done


def cmd_keys_retire(args: argparse.Namespace) -> int:
    if args.index:
        return _retire_index(args)
    version = _version(args.version)
    with services(args) as svc:
        path = svc.settings.master_key_path
        try:
            ring = keyops.retire(svc.db, svc.keys, path, version, actor=actor())
        except keyops.KeyOperationError as exc:
            raise UserError(str(exc)) from None
    print(f"master key v{version} removed from {path} (left: {', '.join(f'v{v}' for v in ring.versions)}); "
          "copy the file to every other node")
    return 0


def _retire_index(args: argparse.Namespace) -> int:
    version = _version(args.version.lower().removeprefix("index-"))
    with services(args) as svc:
        path = svc.settings.master_key_path
        ring = svc.keys.ring
        if ring.index is None or not ring.index.has(version):
            raise UserError(f"index-v{version} is not in {path}")
        with svc.db.write() as session:
            active = active_index_version(session)
            if version in (ring.index.current_version, active):
                raise UserError(f"index-v{version} is the current index key; 'gateway keys rotate' first")
            used = ins_conversion.pending_reindex(session, active or ring.index.current_version).get(version, 0)
            if used:
                raise UserError(f"index-v{version} still indexes {used:,} patient rows; run 'gateway keys rotate' "
                                "to finish re-indexing them, then retire it")
            forgotten = ins_conversion.forget_stale(session, version)
            forget_index_check(session, version)
            audit.record(session, actor=actor(), action="keys.retire",
                         details={"index_version": version, "purged_unindexed": forgotten})
        new_ring = ring.with_index(ring.index.without_version(version))
        write_keyring(path, new_ring)
        svc.keys.ring = new_ring
    assert new_ring.index is not None
    print(f"index key index-v{version} removed from {path} (left: "
          f"{', '.join(f'index-v{v}' for v in new_ring.index.versions)}; {forgotten:,} purged spaces no longer "
          "indexed); copy the file to every other node")
    return 0


def cmd_keys_status(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.read() as session:
        ring = svc.keys.ring
        checks = recorded_checks(session)
        active = active_version(session)
        versions = sorted({*ring.versions, *checks, *versions_in_use(session)})
        rows = []
        for v in versions:
            if v not in checks:
                check = "not recorded"
            elif not ring.has(v):
                check = "MISSING FROM FILE"
            else:
                check = "ok" if ring.verify_key_check(v, checks[v]) else "MISMATCH"
            rows.append({"version": v, "in_file": ring.has(v), "key_check": check, "current": v == active,
                         "data_keys": count_under(session, v)})
        index_rows = _index_rows(session, ring.index)
    if args.json:
        emit_json(rows + index_rows)
    else:
        emit_table(rows, ["version", "in_file", "key_check", "current", "data_keys"])
        if index_rows:
            print()
            emit_table(index_rows, ["index_version", "in_file", "key_check", "current", "patients"])
    return 0


def _index_rows(session: Session, index: IndexKeyring | None) -> list[dict[str, object]]:
    """The index key versions (issue 20): in the file, recorded, how many patient rows each indexes."""
    checks = recorded_index_checks(session)
    active = active_index_version(session)
    counts = dict(session.execute(select(Patient.ins_index_version, func.count())
                                  .where(Patient.ins_index_version.is_not(None))
                                  .group_by(Patient.ins_index_version)).tuples().all())
    held = index.versions if index is not None else ()
    rows: list[dict[str, object]] = []
    for v in sorted({*held, *checks, *(int(k) for k in counts if k is not None)}):
        in_file = index is not None and index.has(v)
        if v not in checks:
            check = "not recorded"
        elif not in_file:
            check = "MISSING FROM FILE"
        else:
            assert index is not None
            check = "ok" if index.verify_key_check(v, checks[v]) else "MISMATCH"
        rows.append({"index_version": v, "in_file": in_file, "key_check": check, "current": v == active,
                     "patients": counts.get(v, 0)})
    return rows
