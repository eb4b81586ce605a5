"""Issue 15 budgets: memory under large bodies in flight, and SMTP throughput A/B.

    .venv/bin/python bench/budgets.py memory [--budget-off] [--repo DIR]
    .venv/bin/python bench/budgets.py throughput --base DIR [--reps 3]

``memory``: the gateway (``bench/gateway_serve.py``, ``smtp.processes = 1`` so SMTP and IMAP
share one process and one budget, default ``[limits]``) receives at once 10 SMTP messages of
24 MB on the MX (10 client addresses, 127.0.9.1-10) and 6 IMAP APPENDs of 24 MB
(127.0.9.11-16). A temporary failure (``452 4.3.1``, ``NO [LIMIT]``) is retried after 1 s, as a
client would, until every message is stored (checked in the database). Prints the peak RSS of
the gateway's process tree (sampled every 0.1 s) over its RSS before, the time, the retries.
``--budget-off`` sets the budget beyond reach (1 TiB): the same load with no budget;
``--budget BYTES`` another budget (the per-address share then at most 128 MiB).
``--repo DIR`` runs the gateway code of another checkout (a worktree of an older commit;
its ``[limits]`` keys are then not set).

``throughput``: ``smtp-source -s 10 -m 2000 -l 10240`` on the MX (new connection per message,
``smtp.processes`` = CPUs), alternately against this checkout and ``--base DIR`` (a worktree of
the commit before the budgets) in ABBA order, ``--reps`` times each, each in a fresh home after a
``sync``; rate = messages over the time until all are stored. Prints both medians and their ratio.
"""

from __future__ import annotations

import argparse
import imaplib
import os
import smtplib
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import procstat  # noqa: E402
from compare import SENDER, SmtpLoad, SmtpTarget, smtp_source  # noqa: E402
from nodes import Gateway  # noqa: E402

SIZE = 24_000_000
SMTP_COUNT = 10
IMAP_COUNT = 6
MAX_TRIES = 30


class Run(Gateway):
    """The benchmark's gateway, optionally from another checkout, with extra settings."""

    def __init__(self, root: Path, *, repo: Path | None, extra: dict[str, str], smtp_processes: int) -> None:
        super().__init__(root, smtp_processes=smtp_processes)
        self.repo = repo  # Gateway.start runs this checkout's bench/gateway_serve.py (None: this one)
        self.extra = extra

    @property
    def env(self) -> dict[str, str]:
        env = {**super().env, **self.extra}
        if self.repo is not None:
            env["PYTHONPATH"] = str(self.repo)
        return env


def _message(subject: str) -> bytes:
    head = f"From: <{SENDER}>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    line = b"m" * 76 + b"\r\n"
    return head + line * ((SIZE - len(head)) // len(line))


def _smtp_one(port: int, rcpt: str, source: str, body: bytes, out: dict[str, object]) -> None:
    tries = 0
    while tries < MAX_TRIES:
        tries += 1
        try:
            with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.test", timeout=300,
                              source_address=(source, 0)) as s:
                s.sendmail(SENDER, [rcpt], body)
            out["tries"] = tries
            return
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code // 100 != 4:
                out["error"] = f"{exc.smtp_code} {exc.smtp_error!r}"
                return
        except smtplib.SMTPRecipientsRefused as exc:
            out["error"] = str(exc)[:200]
            return
        time.sleep(1)
    out["error"] = "too many temporary failures"


class _ImapFrom(imaplib.IMAP4):
    def __init__(self, source: str, port: int) -> None:
        self.source = source
        super().__init__("127.0.0.1", port, timeout=300)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, source_address=(self.source, 0))


def _imap_one(port: int, user: str, password: str, source: str, body: bytes, out: dict[str, object]) -> None:
    client = _ImapFrom(source, port)
    try:
        client.login(user, password)
        for tries in range(1, MAX_TRIES + 1):
            typ, data = client.append("INBOX", "", None, body)
            if typ == "OK":
                out["tries"] = tries
                return
            if not (data and data[0].startswith(b"[LIMIT]")):
                out["error"] = f"{typ} {data!r}"[:200]
                return
            time.sleep(1)
        out["error"] = "too many temporary failures"
    finally:
        client.logout()


def memory(args: argparse.Namespace) -> int:
    extra = {"GATEWAY__LOGGING__LEVEL": "warning"}
    if args.budget:
        extra |= {"GATEWAY__LIMITS__BODY_MEMORY_BYTES": str(args.budget),
                  "GATEWAY__LIMITS__BODY_MEMORY_PER_ADDRESS": str(min(args.budget, 128 << 20))}
    if args.budget_off:
        extra |= {"GATEWAY__LIMITS__BODY_MEMORY_BYTES": str(1 << 40),
                  "GATEWAY__LIMITS__BODY_MEMORY_PER_ADDRESS": str(1 << 40)}
    with tempfile.TemporaryDirectory(prefix="hmg-budgets-") as tmp:
        gw = Run(Path(tmp), repo=args.repo, extra=extra, smtp_processes=1)
        gw.prepare()
        gw.start()
        try:
            time.sleep(2)
            before_rss = procstat.tree_memory_kib(gw.pid)[0] / 1024
            stored0 = gw.stored()
            body = _message("big")
            results: list[dict[str, object]] = [{} for _ in range(SMTP_COUNT + IMAP_COUNT)]
            threads = [threading.Thread(target=_smtp_one, args=(gw.ports["mx"], gw.patient, f"127.0.9.{i + 1}", body,
                                                               results[i])) for i in range(SMTP_COUNT)]
            threads += [threading.Thread(target=_imap_one, args=(gw.ports["imap"], gw.pro, gw.password,
                                                                f"127.0.9.{SMTP_COUNT + i + 1}", body,
                                                                results[SMTP_COUNT + i])) for i in range(IMAP_COUNT)]
            sampler = procstat.Sampler(gw.pid).start()
            start = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(1800)
            elapsed = time.monotonic() - start
            sampler.stop()
            stored = gw.stored() - stored0
        finally:
            gw.stop()
    errors = [r["error"] for r in results if "error" in r]
    retries = sum(int(r.get("tries", 1)) - 1 for r in results)  # type: ignore[call-overload]
    label = "base" if args.repo else ("budget off" if args.budget_off else
                                      f"budget {args.budget >> 20} MiB" if args.budget else "budget on (defaults)")
    print(f"memory [{label}]: {SMTP_COUNT} SMTP + {IMAP_COUNT} IMAP APPEND of {SIZE:,} bytes: "
          f"RSS before {before_rss:.0f} MiB, peak {sampler.peak_rss_kib / 1024:.0f} MiB "
          f"(+{sampler.peak_rss_kib / 1024 - before_rss:.0f} MiB), {elapsed:.1f} s, stored {stored}, "
          f"temporary failures retried {retries}, errors {errors or 'none'}", flush=True)
    return 0 if stored == SMTP_COUNT + IMAP_COUNT and not errors else 1


def _rate(repo: Path | None, reps_note: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="hmg-ab-") as tmp:
        gw = Run(Path(tmp), repo=repo, extra={"GATEWAY__LOGGING__LEVEL": "warning"}, smtp_processes=os.cpu_count() or 1)
        gw.prepare()
        gw.start()
        try:
            time.sleep(2)
            target = SmtpTarget("gateway", gw.endpoints("mx"), gw.patient, gw.pids, gw.stored)
            load = SmtpLoad("s10k", "10 KiB, new connection each", 10, 2000, 10240)
            before = gw.stored()
            cpu = procstat.tree_cpu_seconds(gw.pid)
            start = time.perf_counter()
            smtp_source(target, load)
            while gw.stored() - before < load.count and time.perf_counter() - start < 600:
                time.sleep(0.05)
            elapsed = time.perf_counter() - start
            cpu = procstat.tree_cpu_seconds(gw.pid) - cpu
            if gw.stored() - before != load.count:
                raise RuntimeError(f"{gw.stored() - before} stored of {load.count}")
        finally:
            gw.stop()
    rate, cpu_ms = load.count / elapsed, cpu / load.count * 1e3
    print(f"  {reps_note}: {rate:.1f} msg/s, {cpu_ms:.2f} ms CPU/msg", flush=True)
    return rate, cpu_ms


def throughput(args: argparse.Namespace) -> int:
    head: list[tuple[float, float]] = []
    base: list[tuple[float, float]] = []
    for rep in range(args.reps):  # ABBA order: neither side always runs right after the other's clean-up
        runs = [(base, args.base, f"base {args.base.name}"), (head, None, "this checkout")]
        for into, repo, name in runs if rep % 2 == 0 else reversed(runs):
            os.sync()
            time.sleep(3)
            into.append(_rate(repo, f"{name} rep {rep + 1}"))
    for i, (what, fmt) in enumerate((("msg/s", "{:.1f}"), ("ms CPU/msg", "{:.2f}"))):
        mb, mh = statistics.median(r[i] for r in base), statistics.median(r[i] for r in head)
        print(f"throughput 10 KiB, {what}: base median {fmt.format(mb)} "
              f"({', '.join(fmt.format(r[i]) for r in base)}), this checkout median {fmt.format(mh)} "
              f"({', '.join(fmt.format(r[i]) for r in head)}), ratio {mh / mb:.3f}", flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--budget-off", action="store_true")
    m.add_argument("--budget", type=int, metavar="BYTES",
                   help="limits.body_memory_bytes (per address: 128 MiB at most)")
    m.add_argument("--repo", type=Path)
    t = sub.add_parser("throughput")
    t.add_argument("--base", type=Path, required=True)
    t.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    return memory(args) if args.what == "memory" else throughput(args)


if __name__ == "__main__":
    raise SystemExit(main())
