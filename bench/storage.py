"""Per-mailbox storage and per-message cost, the figures that size a deployment (docs/deploy.md).

    .venv/bin/python bench/storage.py [--mailboxes 20000] [--messages 2000] [--size 10240]

For SQLite and PostgreSQL: provision N open patient spaces with the bulk path, measure the
database growth per mailbox; deliver M messages of SIZE bytes through the delivery pipeline
(encryption, one transaction each, audit), measure growth and CPU/wall time per message.
Bounded in count; temporary databases are removed afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/imap.py would shadow the imap package (this folder comes first on sys.path).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

from sqlalchemy import select, text  # noqa: E402

from gateway.accounts.bulk import insert_batch, prepare_batch  # noqa: E402
from gateway.delivery.directory import LocalTarget  # noqa: E402
from gateway.delivery.pipeline import Inbound, Pipeline, Rcpt  # noqa: E402
from gateway.store.changes import ChangeHub  # noqa: E402
from gateway.store.models import Patient  # noqa: E402
from gateway.testing import pg  # noqa: E402
from gateway.testing.store import Store, open_store  # noqa: E402
from routing.address import Address, parse_address  # noqa: E402
from routing.ins import synthetic_ins  # noqa: E402


def db_size(store: Store, url: str) -> int:
    if url.startswith("sqlite"):
        with store.db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return Path(url.removeprefix("sqlite:///")).stat().st_size
    with store.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))  # settled sizes
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def provision(store: Store, n: int, rng: random.Random) -> None:
    now = datetime.now(UTC)
    seen: set[str] = set()
    while len(seen) < n:
        seen.add(synthetic_ins(rng))
    items = [(ins, f"p{i}@perso.example") for i, ins in enumerate(sorted(seen))]
    for i in range(0, n, 5000):
        batch = prepare_batch(store.ring, items[i:i + 5000])
        with store.db.write() as session:
            insert_batch(session, batch, now=now, opposition_deadline=now + timedelta(days=42),
                         code_expires_at=now + timedelta(days=42), open_now=True)


def deliver(store: Store, m: int, size: int, rng: random.Random) -> tuple[float, float]:
    with store.db.read() as session:
        targets = [LocalTarget(mb, "patient", pid) for pid, mb in
                   session.execute(select(Patient.id, Patient.mailbox_id).limit(1000)).all()]
    pipeline = Pipeline(store.db, store.keys, ChangeHub(), hostname="bench.test", notification_interval=None)
    sender = parse_address("dr.bench@clinic.test")
    body = (b"x" * 76 + b"\r\n") * (size // 78)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(m):
        target = targets[rng.randrange(len(targets))]
        raw = (f"From: {sender}\r\nTo: p@patients.test\r\nSubject: bench {i}\r\n"
               f"Message-ID: <b{i}@clinic.test>\r\n\r\n").encode() + body
        inbound = Inbound(mail_from=sender, recipients=(Rcpt(Address("x", "patients.test"), target),),
                          actor="pro:dr.bench@clinic.test", protocol="ESMTPSA", sender_is_professional=True)
        pipeline.deliver_sync(inbound, raw)
    return (time.process_time() - cpu0) / m, (time.perf_counter() - wall0) / m


def measure(url: str, label: str, mailboxes: int, messages: int, size: int) -> None:
    store = open_store(url)
    rng = random.Random(7)
    try:
        empty = db_size(store, url)
        provision(store, mailboxes, rng)
        after_boxes = db_size(store, url)
        cpu, wall = deliver(store, messages, size, rng)
        after_msgs = db_size(store, url)
    finally:
        store.close()
    per_box = (after_boxes - empty) / mailboxes
    per_msg = (after_msgs - after_boxes) / messages
    print(f"{label:<11} mailboxes={mailboxes:>7} per-mailbox={per_box:>8.0f} B   messages={messages:>6} x {size} B: "
          f"per-message={per_msg:>8.0f} B ({per_msg / size:.2f}x)  cpu={cpu * 1000:.2f} ms  wall={wall * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mailboxes", type=int, default=20000)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=10240)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure(f"sqlite:///{os.path.join(tmp, 'bench.db')}", "sqlite", args.mailboxes, args.messages, args.size)
    if pg.server_available() is None:
        with pg.temporary_database("hmg_bench") as url:
            measure(url, "postgresql", args.mailboxes, args.messages, args.size)


if __name__ == "__main__":
    main()
