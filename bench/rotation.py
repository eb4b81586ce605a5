"""Benchmark: master key rotation of many data keys on SQLite while SMTP deliveries go on (issue 14).

    .venv/bin/python bench/rotation.py [--keys 200000] [--batch-size 1000] [--sessions 4]
                                       [--baseline 10] [--after 5] [--dir /tmp/hmg-bench]

1. A home from ``make_home`` + ``world.populate`` (SQLite, WAL, synchronous=FULL), filled
   with ``--keys`` open patient spaces by the bulk path of ``gateway patient import``
   (``gateway.testing.bulkkeys``): one wrapped data key each.
2. ``gateway serve`` on it (its own process, SMTP in one process), and ``--sessions`` SMTP
   submission sessions each delivering 10 KiB messages to random patients one after another
   (each delivery: MAIL, RCPT, DATA until its ``250``; a new mailbox mostly, so its key is
   unwrapped from the database, with the re-read of the key file after the rotation began).
3. After ``--baseline`` seconds, the rotation in this process with the code of ``gateway keys
   rotate`` (``gateway.store.keyops.plan_rotation`` + ``run_rotation``), timing every batch; the
   deliveries go on for ``--after`` seconds after it.

Prints: the longest delivery (the longest time any delivery was blocked) and p50/p99 before,
during and after the rotation; per-batch figures (keys/s, time holding the write lock); the
extrapolation to 3.3 M data keys from the measured batches; Markdown rows for bench/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import smtplib  # noqa: E402
import ssl  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from sqlalchemy import text  # noqa: E402

from gateway.accounts.patients import by_ins  # noqa: E402
from gateway.app.context import Location, open_services  # noqa: E402
from gateway.store import keyops  # noqa: E402
from gateway.store.rewrap import BatchResult  # noqa: E402
from gateway.testing.bulkkeys import add_patients  # noqa: E402
from gateway.testing.live import make_home  # noqa: E402
from gateway.testing.ports import listen_env, wait_port  # noqa: E402
from gateway.testing.world import PASSWORD, populate  # noqa: E402

TARGET_KEYS = 3_300_000


@dataclass
class Deliveries:
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: list[tuple[float, float, int]] = field(default_factory=list)  # start, end, reply code
    errors: list[str] = field(default_factory=list)


def deliver_loop(port: int, ca: str, sender: str, recipients: list[str], size: int, out: Deliveries,
                 stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    body = ("x" * 78 + "\r\n") * (size // 80)
    while not stop.is_set():
        try:
            client = smtplib.SMTP("127.0.0.1", port, timeout=120)
            client.starttls(context=ssl.create_default_context(cafile=ca))
            client.login(sender, PASSWORD)
            for _ in range(50):
                if stop.is_set():
                    break
                to = rng.choice(recipients)
                raw = (f"From: {sender}\r\nTo: {to}\r\nSubject: bench\r\nMessage-ID: <{uuid.uuid4().hex}@b>\r\n\r\n"
                       f"{body}").encode()
                t0 = time.monotonic()
                try:
                    client.sendmail(sender, [to], raw)
                    code = 250
                except smtplib.SMTPResponseException as exc:
                    code = exc.smtp_code
                except smtplib.SMTPRecipientsRefused as exc:
                    code = next(iter(exc.recipients.values()))[0]
                with out.lock:
                    out.done.append((t0, time.monotonic(), code))
            client.quit()
        except (OSError, smtplib.SMTPException) as exc:
            with out.lock:
                out.errors.append(repr(exc)[:200])
            time.sleep(0.5)


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, int(q * 100) - 1))]


def latency_row(label: str, rows: list[tuple[float, float, int]]) -> str:
    ms = [(end - start) * 1000 for start, end, _ in rows]
    if not ms:
        return f"| {label} | 0 | - | - | - | - |"
    bad = sum(1 for *_, code in rows if code != 250)
    return (f"| {label} | {len(ms):,} | {quantile(ms, 0.5):.1f} ms | {quantile(ms, 0.99):.1f} ms "
            f"| **{max(ms):.1f} ms** | {bad} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=200_000, help="data keys to rotate (patient spaces)")
    parser.add_argument("--batch-size", type=int, default=keyops.DEFAULT_BATCH)
    parser.add_argument("--sessions", type=int, default=4, help="concurrent SMTP delivery sessions")
    parser.add_argument("--size", type=int, default=10240, help="message size in bytes")
    parser.add_argument("--baseline", type=float, default=10.0, help="seconds of deliveries before the rotation")
    parser.add_argument("--after", type=float, default=5.0, help="seconds of deliveries after it")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "hmg-bench")
    args = parser.parse_args()

    args.dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="rotation-", dir=args.dir))
    home = make_home(root / "home")
    world = populate(home)
    svc = open_services(Location(home / "gateway.toml", home, True))
    t0 = time.perf_counter()
    ins = add_patients(svc.db, svc.ring, args.keys, batch=5000,
                       on_batch=lambda n: print(f"  {n:,} patient spaces", file=sys.stderr, flush=True)
                       if n % 50_000 == 0 else None)
    with svc.db.read() as s:
        count = s.execute(text("SELECT count(*) FROM data_keys")).scalar_one()
        plan_text = "; ".join(str(r[-1]) for r in s.execute(text(
            "EXPLAIN QUERY PLAN SELECT data_keys.id FROM data_keys JOIN mailboxes ON mailboxes.id = "
            "data_keys.mailbox_id WHERE data_keys.master_version = 1 AND data_keys.id > 0 "
            "ORDER BY data_keys.id LIMIT 1000")).all())
        assert by_ins(s, svc.keys, ins[0]) is not None
    db_file = home / "gateway.db"
    print(f"setup: {count:,} data keys in {time.perf_counter() - t0:.0f} s; database "
          f"{db_file.stat().st_size / 1e6:.0f} MB", file=sys.stderr, flush=True)

    env = {**os.environ, **listen_env(), "GATEWAY__LOGGING__LEVEL": "warning"}
    port = int(env["GATEWAY__LISTEN__SUBMISSION"].rsplit(":", 1)[1])
    log = (root / "serve.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--home", str(home)],  # noqa: S603
                              env=env, stdout=log, stderr=log)
    try:
        if not wait_port("127.0.0.1", port, 60):
            raise SystemExit("gateway serve did not start: " + (root / "serve.log").read_text()[-2000:])
        out = Deliveries()
        stop = threading.Event()
        recipients = [f"{i}@{world.patient_domain}" for i in ins]
        ca = str(home / "tls" / "ca.pem")
        threads = [threading.Thread(target=deliver_loop, args=(port, ca, world.pro, recipients, args.size, out,
                                                               stop, n)) for n in range(args.sessions)]
        for t in threads:
            t.start()
        time.sleep(args.baseline)
        batches: list[tuple[float, BatchResult]] = []
        rot_start = time.monotonic()
        plan = keyops.plan_rotation(svc.db, svc.keys, svc.settings.master_key_path)
        run_start = time.monotonic()

        def on_batch(batch: BatchResult) -> None:
            batches.append((time.monotonic(), batch))
            if len(batches) % 20 == 0:
                done = sum(b.rewrapped for _, b in batches)
                print(f"  {done:,}/{plan.total:,} re-wrapped", file=sys.stderr, flush=True)

        result = keyops.run_rotation(svc.db, svc.keys.ring, plan, batch_size=args.batch_size, on_batch=on_batch)
        rot_end = time.monotonic()
        time.sleep(args.after)
        stop.set()
        for t in threads:
            t.join(300)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        svc.close()

    before = [d for d in out.done if d[1] < rot_start]
    during = [d for d in out.done if d[0] < rot_end and d[1] >= rot_start]
    after = [d for d in out.done if d[0] >= rot_end]
    elapsed = rot_end - rot_start
    rewrapped = result.rewrapped
    wall_rate = rewrapped / elapsed
    per_batch_rates = [b.rewrapped / max(b.read_s + b.crypto_s + b.write_s, 1e-9) for _, b in batches]
    lock_ms = [(b.write_s - b.lock_wait_s) * 1000 for _, b in batches]  # holding SQLite's write lock
    wait_ms = [b.lock_wait_s * 1000 for _, b in batches]
    ends = [t for t, _ in batches]
    tenth = max(1, len(batches) // 10)
    first = sum(b.rewrapped for _, b in batches[:tenth]) / max(ends[tenth - 1] - run_start, 1e-9)
    last = (sum(b.rewrapped for _, b in batches[-tenth:])
            / max(ends[-1] - (ends[-tenth - 1] if len(ends) > tenth else run_start), 1e-9))
    slowest_rate = min(wall_rate, first, last)
    extrapolated = TARGET_KEYS / slowest_rate

    print()
    print(f"rotation: {rewrapped:,} data keys to v{plan.target} in {elapsed:.1f} s ({wall_rate:,.0f} keys/s), "
          f"{len(batches)} batches of {args.batch_size:,}, failed {len(result.failed)}")
    print(f"  per batch: keys/s median {statistics.median(per_batch_rates):,.0f} (min {min(per_batch_rates):,.0f}, "
          f"max {max(per_batch_rates):,.0f}); write lock held: median {statistics.median(lock_ms):.1f} ms, "
          f"p99 {quantile(lock_ms, 0.99):.1f} ms, max {max(lock_ms):.1f} ms (waiting for it: median "
          f"{statistics.median(wait_ms):.1f} ms, max {max(wait_ms):.1f} ms); read "
          f"{sum(b.read_s for _, b in batches):.1f} s, crypto {sum(b.crypto_s for _, b in batches):.1f} s, "
          f"write {sum(b.write_s for _, b in batches):.1f} s in all")
    print(f"  wall rate over the first tenth of the batches {first:,.0f} keys/s, "
          f"over the last tenth {last:,.0f} keys/s")
    print(f"  query plan of a batch: {plan_text}")
    print(f"  extrapolation to {TARGET_KEYS:,} data keys at {slowest_rate:,.0f} keys/s (the slowest of the "
          f"three rates): {extrapolated:,.0f} s = {extrapolated / 60:.0f} min, "
          f"{TARGET_KEYS // args.batch_size:,} batches")
    print(f"deliveries: {len(out.done):,} ({args.sessions} sessions of {args.size:,}-byte messages), "
          f"connection errors {len(out.errors)}")
    print()
    print("| deliveries | count | p50 | p99 | longest | not 250 |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(latency_row("before the rotation", before))
    print(latency_row("during the rotation", during))
    print(latency_row("after the rotation", after))
    worst = max(((end - start) for start, end, _ in during), default=0.0)
    print()
    print(f"longest delivery during the rotation: {worst * 1000:.0f} ms (target: < 1000 ms) -> "
          f"{'OK' if worst < 1.0 else 'OVER TARGET'}")
    if out.errors:
        print("errors:", *out.errors[:5], sep="\n  ")
    return 0 if worst < 1.0 and not any(code != 250 for *_, code in out.done) else 1


if __name__ == "__main__":
    sys.exit(main())
