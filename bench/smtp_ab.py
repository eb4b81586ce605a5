"""Same-run, interleaved A/B of the gateway's SMTP rows between two checkouts (issue 22).

    .venv/bin/python bench/smtp_ab.py --a /tmp/base --b . [--load 20m --load 1m --load 10k] [--reps 5]
                                      [--env B:NAME=VALUE] [--smtp-processes 2]

Starts one gateway per checkout, as ``bench/run`` does (``bench/compare.py``'s ``Gateway``:
``bench/gateway_serve.py`` over a ``make_home`` + ``world.populate`` home, ``smtp.processes``
as given), each run with this virtual environment's Python and its checkout first on
``PYTHONPATH``; then, for each load and repetition, runs ``smtp-source`` against A and B in turn
(the order alternating between repetitions), checks that every message was stored, and prints
the median (min-max) of msg/s, CPU ms per message of the process tree and peak PSS of the tree
for both, and B/A. ``--env B:NAME=VALUE`` sets an environment variable for one side only (the
same code with and without a setting). No probe runs beside the 20 MiB load: its CPU is the
20 MiB messages' alone (``bench/run``'s 20 MiB row also counts the 10 KiB probe's messages).
Needs Postfix's ``smtp-source`` (``bench/run`` installs it). Linux only (/proc).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import compare  # noqa: E402

LOADS = {
    "20m": compare.SmtpLoad("big", "SMTP 20 MiB, 1 session", 1, 3, 20 * 1024 * 1024),
    "1m": compare.SmtpLoad("s1m", "SMTP 1 MiB, 10 sessions, new conn", 10, 100, 1048576),
    "10k": compare.SmtpLoad("s10k", "SMTP 10 KiB, 10 sessions, new conn", 10, 1000, 10240),
}


class Side(compare.Gateway):
    """One checkout's gateway (``compare.Gateway`` running that checkout's bench/gateway_serve.py)."""

    def __init__(self, name: str, repo: Path, root: Path, env: dict[str, str], smtp_processes: int) -> None:
        super().__init__(root, smtp_processes=smtp_processes, name=name)
        self.repo = repo.resolve()
        self.extra = env

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["PYTHONPATH"] = str(self.repo)
        env.update(self.extra)
        return env


def _show(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, required=True, help="checkout A (e.g. a worktree of main)")
    ap.add_argument("--b", type=Path, required=True, help="checkout B")
    ap.add_argument("--load", action="append", choices=sorted(LOADS), help="default: 20m")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--count", type=int, help="messages per run (default: the load's)")
    ap.add_argument("--env", action="append", default=[], metavar="A|B:NAME=VALUE")
    ap.add_argument("--smtp-processes", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    extra: dict[str, dict[str, str]] = {"A": {}, "B": {}}
    for item in args.env:
        side, _, assignment = item.partition(":")
        name, _, value = assignment.partition("=")
        extra[side.upper()][name] = value
    root = Path(tempfile.mkdtemp(prefix="gw-smtp-ab-"))
    print(f"homes under {root}", flush=True)
    sides = [Side("A", args.a, root, extra["A"], args.smtp_processes),
             Side("B", args.b, root, extra["B"], args.smtp_processes)]
    try:
        for side in sides:
            side.home.parent.mkdir(parents=True, exist_ok=True)
            side.prepare()
            side.start()
        time.sleep(2)
        for key in args.load or ["20m"]:
            load = LOADS[key]
            if args.count:
                load = compare.SmtpLoad(load.key, load.label, load.sessions, args.count, load.length, load.reuse)
            figures: dict[str, dict[str, list[float]]] = {s.name: {"rate": [], "cpu": [], "pss": []} for s in sides}
            for rep in range(args.reps):
                for side in (sides if rep % 2 == 0 else sides[::-1]):
                    target = compare.SmtpTarget(side.name, side.endpoints("mx"), side.patient, side.pids,
                                                side.stored)
                    before = side.stored()
                    with compare.measured(side.pids) as m:
                        compare.smtp_source(target, load)
                    if (stored := side.stored() - before) != load.count:
                        raise RuntimeError(f"{side.name}: {stored} stored, {load.count} sent")
                    f = figures[side.name]
                    f["rate"].append(load.count / m["wall"])
                    f["cpu"].append(m["cpu"] / load.count * 1e3)
                    f["pss"].append(m["pss_mib"])
                    print(f"  {load.label} {side.name} rep {rep + 1}: {f['rate'][-1]:.2f} msg/s, "
                          f"{f['cpu'][-1]:.1f} ms CPU/msg, PSS {f['pss'][-1]:.0f} MiB", flush=True)
            print(f"\n| {load.label} | A | B | B/A |\n| --- | --- | --- | --- |")
            for name, unit, fmt in (("rate", "msg/s", "{:.2f}"), ("cpu", "CPU ms/msg", "{:.1f}"),
                                    ("pss", "peak PSS MiB", "{:.0f}")):
                a, b = figures["A"][name], figures["B"][name]
                print(f"| {unit} | {_show(a, fmt)} | {_show(b, fmt)} | "
                      f"{statistics.median(b) / statistics.median(a):.2f} |")
            print(flush=True)
    finally:
        for side in sides:
            side.stop()
        if os.environ.get("SMTP_AB_KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
