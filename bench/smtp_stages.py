"""CPU of each pass over a large message on the SMTP store path, one stage at a time (issue 22).

    .venv/bin/python bench/smtp_stages.py [--size 20971520] [--reps 5] [--read 262144]

Makes a temporary home (``make_home`` + ``world.populate``: SQLite, WAL, synchronous=FULL,
encryption at rest), builds a message shaped like ``smtp-source -l SIZE`` (short header, lines of
about 80 octets), then runs, ``--reps`` times, the stages the MX runs for it in order, each timed
on its own (thread CPU time and wall time, medians; glibc's mmap threshold fixed as the servers
fix it): the shell's joins of the socket reads
(``--read`` octets each, asyncio's read size), the DATA reader (:mod:`smtp.dataparse`), the header
parse (:func:`gateway.delivery.headers.parse_headers`), the trace headers, the XDM look
(:func:`gateway.mailstore.xdm.found_in`), the summary and its encoding, the seal (AES-GCM), the
pieces written (:func:`gateway.mailstore.chunks.store`: SQLite, WAL, fsync, the pauses between
pieces) and the commit of the row (the rest of ``Pipeline.deliver_sync``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

from gateway.app.context import Location, open_services  # noqa: E402
from gateway.app.memory import return_large_blocks  # noqa: E402
from gateway.delivery import pipeline as pipeline_module  # noqa: E402
from gateway.delivery.directory import Directory, LocalTarget  # noqa: E402
from gateway.delivery.headers import parse_headers, trace_prefix  # noqa: E402
from gateway.delivery.pipeline import Inbound, Pipeline, Rcpt  # noqa: E402
from gateway.mailstore import chunks, summaries, xdm  # noqa: E402
from gateway.mailstore.sealed import seal_copy  # noqa: E402
from gateway.store.keys import MailboxKey  # noqa: E402
from gateway.testing.live import make_home  # noqa: E402
from gateway.testing.world import populate  # noqa: E402
from routing.address import parse_address  # noqa: E402
from smtp.dataparse import DataReader, Done  # noqa: E402


def message(size: int) -> bytes:
    """About what smtp-source sends: a short header, then lines of 78 letters."""
    head = b"From: <sender@bench.test>\r\nTo: <patient@patients.gateway.test>\r\nSubject: stages\r\n\r\n"
    line = (b"abcdefghijklmnopqrstuvwxyz" * 3) + b"\r\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return head + body[: size - len(head) - 2] + b"\r\n"


def timed(stages: dict[str, list[tuple[float, float]]], name: str, fn: Callable[[], Any]) -> Any:
    c0, w0 = time.thread_time(), time.perf_counter()
    out = fn()
    stages[name].append((time.thread_time() - c0, time.perf_counter() - w0))
    return out


def repetition(stages: dict[str, list[tuple[float, float]]], reads: list[bytes], raw: bytes, size: int,
               pipeline: Pipeline, key: MailboxKey, inbound: Inbound) -> None:
    """The stages once, in the MX's order."""
    # SmtpConnection.read joins what arrived since the last read (one read each, here)
    timed(stages, "shell: join of each read", lambda: [b"".join([r]) for r in reads])

    def data() -> bytes:
        reader = DataReader(size + 1024)
        out: Any = None
        for r in reads:
            out = reader.feed(r)
        assert isinstance(out, Done)
        return out.message
    got: bytes = timed(stages, "DATA reader (smtp.dataparse)", data)
    assert got == raw
    info = timed(stages, "header parse (parse_headers)", partial(parse_headers, got))
    at = datetime.now(UTC)
    prefix, _ = timed(stages, "trace headers (Received: in front)", partial(
        trace_prefix, info, hostname="mx.gateway.test", helo="bench.test", peer="127.0.0.1", protocol="ESMTP",
        queue_id="0123456789abcdef", now=at))
    found = timed(stages, "XDM look (xdm.found_in)", partial(xdm.found_in, info.parsed, pipeline.documents.limits))
    summary = timed(stages, "summary (summarise)", partial(
        pipeline_module._stamped_summary, info.parsed, got, prefix, added=None, health=found))
    encoded = timed(stages, "summary encode (JSON)", partial(summaries.encode, summary))
    copy = timed(stages, "seal (AES-GCM)", partial(seal_copy, key, (prefix, got), encoded))
    stored = timed(stages, "pieces written (chunks.store)", partial(chunks.store, pipeline.db, copy, at))
    if stored is not copy:
        chunks.discard(pipeline.db, copy.uuid)
    timed(stages, "whole Pipeline.deliver_sync", partial(pipeline.deliver_sync, inbound, got))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=20 * 1024 * 1024)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--read", type=int, default=256 * 1024, help="octets per socket read")
    args = ap.parse_args()
    return_large_blocks()  # as the serving and SMTP processes do (gateway.app.memory)
    root = Path(tempfile.mkdtemp(prefix="hmg-stages-"))
    home = make_home(root / "home")
    world = populate(home)
    svc = open_services(Location(home / "gateway.toml", home, True))
    pipeline = Pipeline(svc.db, svc.keys, svc.hub, hostname="mx.gateway.test", notification_interval=timedelta(hours=1))
    directory = Directory(svc.db, svc.settings.domains.patient_domain, keys=svc.keys)
    address = parse_address(world.patient())
    with svc.db.read() as session:
        _, target = directory.recipient(session, address, directory.snapshot())
    assert isinstance(target, LocalTarget)
    inbound = Inbound(mail_from=parse_address("sender@bench.test"), recipients=(Rcpt(address, target),),
                      actor="trusted:bench.test", protocol="ESMTP", sender_is_professional=True,
                      peer="127.0.0.1", helo="bench.test")
    raw = message(args.size)
    wire = raw.replace(b"\r\n.", b"\r\n..") + b".\r\n"  # dot-stuffed, then the end-of-data line
    reads = [wire[i:i + args.read] for i in range(0, len(wire), args.read)]
    key = pipeline._keys([target])[target.mailbox_id]
    stages: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for _ in range(args.reps):
        repetition(stages, reads, raw, args.size, pipeline, key, inbound)
    print(f"{args.size} octets, {len(reads)} reads of {args.read}, {args.reps} repetitions (medians)")
    print(f"{'stage':<40} {'CPU ms':>8} {'wall ms':>8}")
    for name, values in stages.items():
        cpu = statistics.median(v[0] for v in values) * 1e3
        wall = statistics.median(v[1] for v in values) * 1e3
        print(f"{name:<40} {cpu:8.1f} {wall:8.1f}")
    svc.close()


if __name__ == "__main__":
    main()
