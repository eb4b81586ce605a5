"""Delivery of a message carrying a ~5 MB IHE XDM archive, with and without the health
document check (issue 21), in the same run and the same store.

    .venv/bin/python bench/health_documents.py [--archive-mb 5] [--count 20]

Makes a temporary home (``make_home`` + ``world.populate``: SQLite, WAL, synchronous=FULL,
encryption at rest), builds one synthetic XDM archive (``healthdocs.testing.level1``: a
level-1 CDA whose PDF is padded with random bytes, so the archive does not compress away)
for the open patient, and delivers it ``--count`` times through each of two pipelines on
that store, alternating (check on, check off, on, off...): ``Pipeline.deliver_sync``, one at a
time, from the message bytes to the commit. Prints p50/mean/max per delivery for each, and
the time of the archive reading alone (``gateway.mailstore.xdm.found_in`` on the parsed message).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402

from gateway.app.context import Location, open_services  # noqa: E402
from gateway.delivery.directory import Directory, LocalTarget  # noqa: E402
from gateway.delivery.documents import DocumentPolicy  # noqa: E402
from gateway.delivery.pipeline import Inbound, Pipeline, Rcpt  # noqa: E402
from gateway.mailstore import parsing, xdm  # noqa: E402
from gateway.testing.live import make_home  # noqa: E402
from gateway.testing.world import populate  # noqa: E402
from healthdocs import testing as kit  # noqa: E402
from routing.address import parse_address  # noqa: E402


def _archive(ins: str, megabytes: float) -> bytes:
    """A level-1 archive of about ``megabytes`` MB (base64 of random bytes deflates to ~3/4)."""
    padding = int(megabytes * 1_000_000 * 3 / 4 * 3 / 4 / 0.76)
    for _ in range(4):
        data = kit.level1(ins, padding=padding)
        padding = int(padding * megabytes * 1_000_000 / len(data))
    return data


def _stats(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"p50 {statistics.median(ms):7.1f} ms  mean {statistics.fmean(ms):7.1f} ms  max {ms[-1]:7.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archive-mb", type=float, default=5.0)
    ap.add_argument("--count", type=int, default=20)
    args = ap.parse_args()
    home = make_home(Path(tempfile.mkdtemp(prefix="hmg-xdm-")) / "home")
    world = populate(home)
    svc = open_services(Location(home / "gateway.toml", home, True))
    directory = Directory(svc.db, svc.settings.domains.patient_domain)
    address = parse_address(world.patient())
    with svc.db.read() as session:
        _, target = directory.recipient(session, address, directory.snapshot())
    assert isinstance(target, LocalTarget)
    inbound = Inbound(mail_from=parse_address(world.pro), recipients=(Rcpt(address, target),),
                      actor=f"pro:{world.pro}", protocol="ESMTPSA", sender_is_professional=True, peer="127.0.0.1")
    archive = _archive(world.patients["open"], args.archive_mb)
    raw = kit.message(archive, sender=world.pro, to=world.patient(), codecda=["11490-0"])
    on = Pipeline(svc.db, svc.keys, svc.hub, hostname="mx.gateway.test", notification_interval=timedelta(hours=1),
                  documents=DocumentPolicy(check=True))
    off = Pipeline(svc.db, svc.keys, svc.hub, hostname="mx.gateway.test", notification_interval=timedelta(hours=1),
                   documents=DocumentPolicy(check=False))
    print(f"archive {len(archive) / 1e6:.2f} MB, message {len(raw) / 1e6:.2f} MB, {args.count} deliveries each")
    on.deliver_sync(inbound, raw)  # warm both paths (imports, caches)
    off.deliver_sync(inbound, raw)
    timed: dict[str, list[float]] = {"check on": [], "check off": []}
    for _ in range(args.count):
        for name, pipeline in (("check on", on), ("check off", off)):
            t0 = time.perf_counter()
            pipeline.deliver_sync(inbound, raw)
            timed[name].append(time.perf_counter() - t0)
    parsed = parsing.parse(raw)
    reading = []
    for _ in range(args.count):
        t0 = time.perf_counter()
        found = xdm.found_in(parsed)
        reading.append(time.perf_counter() - t0)
    assert [a.status for a in found.archives] == ["read"]
    for name, values in timed.items():
        print(f"{name:10s} {_stats(values)}")
    print(f"{'read only':10s} {_stats(reading)}")
    svc.close()


if __name__ == "__main__":
    main()
