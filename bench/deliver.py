"""In-process delivery benchmark: ``Pipeline.deliver`` without SMTP, to time the store path.

    .venv/bin/python bench/deliver.py [--size 10240] [--count 500] [--sessions 10] [--prefill 0,6000]
                                      [--statements] [--profile FILE]

Makes a temporary home (``make_home`` + ``world.populate``: SQLite, WAL, synchronous=FULL,
encryption at rest), then for each prefill level fills the open patient's INBOX up to that many
messages and delivers ``--count`` messages of ``--size`` bytes from ``--sessions`` concurrent
asyncio tasks (as the SMTP sessions do), printing msg/s and, with ``--statements``, the time
spent per SQL statement (grouped by its first 60 characters) per delivery.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import collections  # noqa: E402
import cProfile  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import event  # noqa: E402

from gateway.app.context import Location, open_services  # noqa: E402
from gateway.delivery.directory import Directory, LocalTarget  # noqa: E402
from gateway.delivery.pipeline import Inbound, Pipeline, Rcpt  # noqa: E402
from gateway.testing.live import make_home  # noqa: E402
from gateway.testing.world import populate  # noqa: E402
from routing.address import parse_address  # noqa: E402


def message(size: int, n: int) -> bytes:
    head = (f"From: <sender@bench.test>\r\nTo: <patient@patients.gateway.test>\r\n"
            f"Subject: bench {n}\r\n\r\n").encode()
    line = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz\r\n"
    body = line * (max(0, size - len(head)) // len(line) + 1)
    return head + body[: max(0, size - len(head))]


class StatementTimer:
    def __init__(self) -> None:
        self.total: dict[str, float] = collections.defaultdict(float)
        self.count: dict[str, int] = collections.defaultdict(int)
        self.local = threading.local()
        self.on = False

    def attach(self, engine: Any) -> None:
        @event.listens_for(engine, "before_cursor_execute")
        def before(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
            self.local.t = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def after(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
            if self.on:
                key = " ".join(statement.split())[:70]
                self.total[key] += time.perf_counter() - self.local.t
                self.count[key] += 1

        @event.listens_for(engine, "commit")
        def commit(conn: Any) -> None:
            self.local.c = time.perf_counter()

        @event.listens_for(engine, "engine_connect")
        def _c(conn: Any) -> None:
            pass

    def report(self, deliveries: int) -> None:
        rows = sorted(self.total.items(), key=lambda kv: -kv[1])
        for key, total in rows[:20]:
            print(f"    {total / deliveries * 1000:7.3f} ms/msg  x{self.count[key] / deliveries:4.1f}  {key}")
        self.total.clear()
        self.count.clear()


async def run(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="hmg-deliver-"))
    home = make_home(root / "home")
    world = populate(home)
    svc = open_services(Location(home / "gateway.toml", home, True))
    timer = StatementTimer()
    if args.statements:
        timer.attach(svc.db.engine)
    pipeline = Pipeline(svc.db, svc.keys, svc.hub, hostname="mx.gateway.test",
                        notification_interval=timedelta(hours=1))
    directory = Directory(svc.db, svc.settings.domains.patient_domain, keys=svc.keys)
    address = parse_address(world.patient())
    snap = directory.snapshot() if hasattr(directory, "snapshot") else None
    with svc.db.read() as session:
        _, target = directory.recipient(session, address, snap)  # type: ignore[arg-type]
    assert isinstance(target, LocalTarget)
    inbound = Inbound(mail_from=parse_address("sender@bench.test"), recipients=(Rcpt(address, target),),
                      actor="trusted:bench.test", protocol="ESMTP", sender_is_professional=True,
                      peer="127.0.0.1", helo="bench.test")
    if args.big:
        await big_latency(pipeline, inbound, args.big)
        svc.close()
        return
    stored = 0
    for level in [int(x) for x in args.prefill.split(",")]:
        fill = max(0, level - stored)
        if fill:
            raw = message(args.size, 0)
            sem = asyncio.Semaphore(max(1, args.sessions))

            async def one(r: bytes = raw, sem: asyncio.Semaphore = sem) -> None:
                async with sem:
                    await pipeline.deliver(inbound, r)
            await asyncio.gather(*(one() for _ in range(fill)))
            stored += fill
        raws = [message(args.size, i) for i in range(args.count)]
        queue = list(raws)
        timer.on = True
        prof = cProfile.Profile() if args.profile else None

        async def session_task(queue: list[bytes] = queue) -> None:
            while queue:
                r = queue.pop()
                await pipeline.deliver(inbound, r)
        if prof:
            prof.enable()
        t0 = time.perf_counter()
        if args.sessions == 0:  # serial, in this thread (for cProfile)
            for r in raws:
                pipeline.deliver_sync(inbound, r)
        else:
            await asyncio.gather(*(session_task() for _ in range(args.sessions)))
        elapsed = time.perf_counter() - t0
        if prof:
            prof.disable()
            prof.dump_stats(f"{args.profile}.{level}")
        timer.on = False
        stored += args.count
        wal = home.glob("**/*.db-wal")
        wal_size = sum(p.stat().st_size for p in wal)
        print(f"prefill {level:6d}: {args.count} x {args.size} B, {args.sessions} sessions: "
              f"{elapsed:6.2f} s, {args.count / elapsed:7.1f} msg/s  (WAL {wal_size / 1e6:.1f} MB)", flush=True)
        if args.statements:
            timer.report(args.count)
    svc.close()


async def big_latency(pipeline: Pipeline, inbound: Inbound, count: int) -> None:
    """10 KiB deliveries one after another while ``count`` 20 MiB messages are delivered."""
    small = message(10240, 1)

    async def probe(stop: asyncio.Event) -> list[float]:
        out = []
        while not stop.is_set():
            t0 = time.perf_counter()
            await pipeline.deliver(inbound, small)
            out.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.01)
        return out
    stop = asyncio.Event()
    idle_task = asyncio.create_task(probe(stop))
    await asyncio.sleep(2)
    stop.set()
    idle = sorted(await idle_task)
    stop = asyncio.Event()
    busy_task = asyncio.create_task(probe(stop))
    big = message(20 * 1024 * 1024, 2)
    t0 = time.perf_counter()
    for _ in range(count):
        await pipeline.deliver(inbound, big)
    elapsed = time.perf_counter() - t0
    stop.set()
    busy = sorted(await busy_task)
    print(f"20 MiB x {count}: {elapsed:.2f} s; probe idle p50 {idle[len(idle) // 2]:.1f} ms, "
          f"during p50 {busy[len(busy) // 2]:.1f} ms max {busy[-1]:.1f} ms", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=10240)
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--prefill", default="0,6000")
    ap.add_argument("--statements", action="store_true")
    ap.add_argument("--profile")
    ap.add_argument("--big", type=int, default=0, help="20 MiB messages delivered beside a 10 KiB probe")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
