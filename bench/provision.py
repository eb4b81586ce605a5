"""Benchmark: bulk patient provisioning (SPEC §11: 3.3 million spaces on one 2-core machine).

    .venv/bin/python bench/provision.py --rows 3300000 --backend sqlite --backend postgresql

For each backend: generate (once) a synthetic roster of unique INS (routing.ins.synthetic_ins,
one row in three with a personal e-mail), import it with the same pipeline as
``gateway patient import`` (codes written to a file), then time the RCPT-time lookup of a
patient by INS (p50/p99 over random INS): what the MX runs (``gateway.accounts.ins_index.rcpt_row``:
the INS directory by keyed index of the INS under every index key version held, then the patient
and its mailbox by ``(mailbox_id, id)``; the clear INS of a row not converted yet), HMAC
included, with one index key version (normal) and with two (during an index key rotation);
and show the directory statement's query plan.
Prints a Markdown row.

``--pg-url URL`` imports into an existing database instead of a temporary one on
``GATEWAY_TEST_PG_URL``'s server: a Citus coordinator's (issue 23), made fresh on every node and
distributed beforehand (``gateway db upgrade`` then ``gateway db distribute``). It must hold no
patient yet, and is kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/imap.py would shadow the imap package (this folder comes first on sys.path).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from crypto.blind_index import IndexKeyring  # noqa: E402
from crypto.keyring import MasterKeyring  # noqa: E402
from gateway.accounts import ins_index  # noqa: E402
from gateway.accounts.provisioning import ImportOptions, import_roster  # noqa: E402
from gateway.accounts.roster import BadRow  # noqa: E402
from gateway.store import migrate  # noqa: E402
from gateway.store.db import Database  # noqa: E402
from gateway.store.raw import RawStatement  # noqa: E402
from gateway.testing import pg  # noqa: E402
from routing.ins import synthetic_ins  # noqa: E402


def make_roster(path: Path, rows: int, seed: int, sample: int) -> list[str]:
    """Write ``rows`` unique synthetic INS; return a random sample of them for lookups."""
    rng = random.Random(seed)
    seen: set[str] = set()
    picked: list[str] = []
    with path.open("w", encoding="utf-8") as out:
        out.write("ins,email\n")
        while len(seen) < rows:
            ins = synthetic_ins(rng)
            if ins in seen:
                continue
            seen.add(ins)
            n = len(seen)
            out.write(f"{ins},p{n}@perso.example\n" if n % 3 == 0 else f"{ins},\n")
            if len(picked) < sample:
                picked.append(ins)
            elif (j := rng.randrange(n)) < sample:
                picked[j] = ins
    return picked


_BASELINE = RawStatement(ins_index.RCPT_COLUMNS + "p.ins = ?", [None])


def _quantiles(times: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(times, n=100)
    return q[49] * 1e3, q[98] * 1e3


def _plan(session: Session, db: Database, index: IndexKeyring, ins: str) -> str:
    digests = ins_index.digests(index, ins)
    statement = ins_index.rcpt_statement(len(digests))
    sql = statement.sql.replace("?", "{}").format(*[f":d{i}" for i in range(len(digests))], ":i")
    params = {**{f"d{i}": d for i, d in enumerate(digests)}, "i": ins}
    if db.is_sqlite:
        return "; ".join(str(r[-1]) for r in session.execute(text(f"EXPLAIN QUERY PLAN {sql}"), params).all())
    return "; ".join(str(r[0]).strip() for r in session.execute(text(f"EXPLAIN {sql}"), params).all())


def lookups(db: Database, index: IndexKeyring, sample: list[str]) -> dict[str, object]:
    """p50/p99 (ms) of the RCPT-time lookup of each INS of ``sample`` (HMAC included): with one
    index key version, with two (during a rotation), and the baseline (the same statement by
    one unique-column equality, the shape before issue 20, by the ``#<id>`` the clear column
    holds now). Interleaved, in turn first, so that a cold page cache weighs on all three alike."""
    rotating = index.with_new_version()
    times: dict[str, list[float]] = {"one": [], "two": [], "base": []}
    with db.read() as session:
        top = int(session.execute(text("SELECT max(id) FROM patients")).scalar_one())  # ids 1..top: one import
        marks = [ins_index.placeholder(i) for i in random.Random(3).sample(range(1, top + 1), len(sample))]

        def one(ins: str) -> object:
            return ins_index.rcpt_row(session, index, ins)

        def two(ins: str) -> object:
            return ins_index.rcpt_row(session, rotating, ins)

        def base(mark: str) -> object:
            return _BASELINE.first(session, mark)

        runs = [("one", one), ("two", two), ("base", base)]
        for n, (ins, mark) in enumerate(zip(sample, marks, strict=True)):
            for name, fn in runs[n % 3:] + runs[:n % 3]:
                start = time.perf_counter()
                row = fn(mark if name == "base" else ins)
                times[name].append(time.perf_counter() - start)
                assert row is not None
        plan, plan_two = _plan(session, db, index, sample[0]), _plan(session, db, rotating, sample[0])
    (p50, p99), (p50_two, p99_two), (base50, base99) = (_quantiles(times[k]) for k in ("one", "two", "base"))
    return {"p50_ms": p50, "p99_ms": p99, "p50_two_ms": p50_two, "p99_two_ms": p99_two, "base_p50_ms": base50,
            "base_p99_ms": base99, "plan": plan, "plan_two": plan_two}


def run(url: str, roster: Path, sample: list[str], workers: int, batch: int) -> dict[str, object]:
    db = Database(url, pool_size=2)
    migrate.upgrade(db.engine)
    ring = MasterKeyring({1: os.urandom(32)}, IndexKeyring.generate())
    opts = ImportOptions(now=datetime.now(UTC), opposition_window=timedelta(days=42),
                         code_validity=timedelta(days=42), actor="bench", batch_size=batch, workers=workers)
    bad: list[BadRow] = []
    with tempfile.NamedTemporaryFile("w", suffix=".codes.csv") as codes, roster.open(encoding="utf-8") as handle:
        def on_codes(ins: object, new: object, expires: datetime) -> None:
            for i, c in zip(ins, new, strict=True):  # type: ignore[call-overload]
                codes.write(f"{i},{c},{expires:%Y-%m-%dT%H:%M:%S}\n")

        start = time.perf_counter()
        report = import_roster(db, ring, handle, opts, on_bad=bad.append, on_codes=on_codes,
                               on_progress=lambda n: print(f"  {n:,} lines", file=sys.stderr, flush=True)
                               if n % 500_000 < batch else None)
        elapsed = time.perf_counter() - start
    assert ring.index is not None
    if not db.is_sqlite:  # what autovacuum does after a bulk load; without it the plans are guesses
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    found = lookups(db, ring.index, sample)
    db.dispose()
    return {"rows": report.created, "seconds": elapsed, "rate": report.created / elapsed, "bad": len(bad),
            **found, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "child_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}  # largest child


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3_300_000)
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "hmg-bench")
    parser.add_argument("--pg-url", metavar="URL",
                        help="with --backend postgresql: import into this existing database (holding no patient; "
                             "e.g. a Citus coordinator's after 'gateway db upgrade' and 'gateway db distribute'), "
                             "kept afterwards, instead of a temporary one on GATEWAY_TEST_PG_URL's server")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    roster = args.dir / f"roster-{args.rows}.csv"
    start = time.perf_counter()
    # In a child process, so the generator's set of 3.3M INS does not count in the import's peak RSS.
    with multiprocessing.get_context("fork").Pool(1) as pool:
        sample = pool.apply(make_roster, (roster, args.rows, 20240601, args.lookups))
    print(f"roster: {roster} ({roster.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.0f}s",
          file=sys.stderr)
    for backend in args.backend or ["sqlite"]:
        if backend == "sqlite":
            path = args.dir / f"bench-{args.rows}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            result = run(f"sqlite:///{path}", roster, sample, args.workers, args.batch)
            result["db_mb"] = path.stat().st_size / 1e6
        elif args.pg_url:
            result = run(args.pg_url, roster, sample, args.workers, args.batch)
            at = make_url(args.pg_url)
            backend = f"postgresql {at.host}:{at.port}/{at.database}"
        else:
            problem = pg.server_available()
            if problem:
                print(f"postgresql skipped: {problem}", file=sys.stderr)
                continue
            with pg.temporary_database("hmg_bench") as url:
                result = run(url, roster, sample, args.workers, args.batch)
        print(f"{backend}: {result}", file=sys.stderr)
        print(f"| {backend} | {result['rows']:,} | {result['seconds']:.0f} s | {result['rate']:,.0f} rows/s "
              f"| {result['rss_mb']:.0f} MB (workers {result['child_rss_mb']:.0f} MB) "
              f"| {result['p50_ms']:.3f} ms | {result['p99_ms']:.3f} ms "
              f"| {result['p50_two_ms']:.3f} ms | {result['p99_two_ms']:.3f} ms "
              f"| {result['base_p50_ms']:.3f} ms | {result['base_p99_ms']:.3f} ms |")
        print(f"  plan: {result['plan']}")
        print(f"  plan with two index versions: {result['plan_two']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
