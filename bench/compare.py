"""Side-by-side benchmark: the gateway against Postfix (SMTP) and Dovecot (IMAP), same run.

    bench/run [--reps 3] [--quick] [--only smtp|imap] [--nodes 1,2pg] [--json FILE] [--profile DIR] [--keep]

Starts, on loopback only: a private Postfix (maildir + discard transports), a private
Dovecot, and the gateway (encryption at rest and ``250`` after commit as always) in one or
both set-ups: one node on embedded SQLite in a temporary home (``--nodes 1``), and two nodes
on one fresh PostgreSQL database, node i on 127.0.0.(i+1) (``--nodes 2pg``; the database is
dropped at the end). Runs the same loads against each (on two nodes: SMTP split across
them, IMAP sessions alternating), repetitions interleaved, and prints medians (min-max)
with gateway/reference ratios and two nodes against one. Everything it started is stopped
and its temporary folder removed at the end (``--keep`` keeps it).
"""

# ruff: noqa: S603 - fixed programs (smtp-source, postfix, dovecot, our venv) with arguments we build

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# bench/ holds scripts named like our packages (bench/imap.py): our siblings go last on the path
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import imapload  # noqa: E402
import procstat  # noqa: E402
from nodes import Gateway  # noqa: E402
from refservers import Dovecot, Postfix  # noqa: E402
from report import ONE, TWO, Results, table  # noqa: E402

from gateway.testing import pg  # noqa: E402
from gateway.testing.ports import free_port  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
SENDER = "sender@bench.test"
RUN_TIMEOUT = 900.0  # any single load step
TOTAL_BUDGET = 3600.0  # the whole benchmark; steps still to run after it are skipped


def wait_port(port: int, timeout: float = 30.0) -> bool:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


# --------------------------------------------------------------------------- the gateway


# --------------------------------------------------------------------------- measuring


@contextmanager
def measured(pids: Callable[[], list[int]]) -> Iterator[dict[str, float]]:
    """CPU seconds and peak memory of the process trees rooted at ``pids()`` over the block.

    The roots are asked again at the end and at every memory sample (PostgreSQL backends come
    and go); CPU counts the roots alive at the end, from the start or from their birth."""
    out: dict[str, float] = {}
    sampler = procstat.Sampler(pids).start()
    cpu0 = {root: procstat.tree_cpu_seconds(root) for root in pids()}
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out["t0"] = t0
        out["wall"] = time.perf_counter() - t0
        out["cpu"] = sum(procstat.tree_cpu_seconds(root) - cpu0.get(root, 0.0) for root in pids())
        sampler.stop()
        out["rss_mib"] = sampler.peak_rss_kib / 1024
        out["pss_mib"] = sampler.peak_pss_kib / 1024


# --------------------------------------------------------------------------- SMTP


@dataclass
class SmtpTarget:
    name: str
    endpoints: list[tuple[str, int]]  # (address, port): one per node; a load is split evenly across them
    rcpt: str
    pids: Callable[[], list[int]]
    stored: Callable[[], int] | None  # None: keeps nothing (discard), no check
    drain: Callable[[], bool] | None = None


@dataclass(frozen=True)
class SmtpLoad:
    key: str
    label: str
    sessions: int
    count: int
    length: int
    reuse: bool = False


def split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` shares differing by one at most (the first ones get the remainder)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def smtp_source(target: SmtpTarget, load: SmtpLoad) -> None:
    """Run ``load`` against ``target``: one smtp-source per endpoint at once, each with its share of
    the sessions and messages (with one endpoint, exactly ``load``)."""
    n = len(target.endpoints)
    procs = []
    for (host, port), sessions, count in zip(target.endpoints, split(load.sessions, n), split(load.count, n),
                                             strict=True):
        cmd = ["smtp-source", "-s", str(max(1, sessions)), "-m", str(count), "-l", str(load.length),
               "-f", SENDER, "-t", target.rcpt, "-M", "bench.test"]
        if load.reuse:
            cmd.append("-d")
        cmd.append(f"{host}:{port}")
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    failed = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if proc.returncode != 0:
            failed.append(f"smtp-source exited {proc.returncode}: {err.strip()[-300:]}")
    if failed:
        raise RuntimeError("; ".join(failed))


class Probe:
    """Sends 10 KiB messages one after another (new connection each) and records latencies."""

    def __init__(self, target: SmtpTarget, limit: int = 400) -> None:
        self.target = target
        self.limit = limit
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.message = (f"From: <{SENDER}>\r\nTo: <{target.rcpt}>\r\nSubject: probe\r\n\r\n").encode() + \
            (b"x" * 78 + b"\r\n") * 128

    def one(self) -> float:
        start = time.perf_counter()
        host, port = self.target.endpoints[0]
        with smtplib.SMTP(host, port, local_hostname="bench.test", timeout=60) as s:
            s.sendmail(SENDER, [self.target.rcpt], self.message)
        return (time.perf_counter() - start) * 1e3

    def _run(self) -> None:
        while not self.stop.is_set() and len(self.latencies) < self.limit:
            self.latencies.append(self.one())

    def __enter__(self) -> Probe:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(120)


def run_smtp(targets: list[SmtpTarget], loads: list[SmtpLoad], reps: int, res: Results, deadline: float,
             profile: Path | None) -> None:
    for load in loads:
        for rep in range(reps):
            for t in targets:
                if time.monotonic() > deadline:
                    res.notes.append(f"time budget spent: {load.label} {t.name} rep {rep + 1} skipped")
                    continue
                rate = res.series(f"{load.key}.rate", t.name)
                try:
                    before = t.stored() if t.stored else 0
                    prof = start_profile(profile, t.pids()[0] if t.name == "gateway" and rep == 0 else None,
                                         f"{load.key}-{rep}")
                    try:
                        with measured(t.pids) as m:
                            smtp_source(t, load)
                            accepted = time.perf_counter()
                            if t.drain is not None and not t.drain():
                                raise RuntimeError("queue not drained in time")
                    finally:
                        stop_profile(prof)
                    if t.stored is not None and (stored := t.stored() - before) != load.count:
                        raise RuntimeError(f"{stored} messages stored, {load.count} sent")
                    rate.add(load.count / m["wall"])
                    res.series(f"{load.key}.accept_rate", t.name).add(load.count / (accepted - m["t0"]))
                    res.series(f"{load.key}.cpu_ms", t.name).add(m["cpu"] / load.count * 1e3)
                    res.series(f"{load.key}.rss", t.name).add(m["rss_mib"])
                    res.series(f"{load.key}.pss", t.name).add(m["pss_mib"])
                except Exception as exc:  # reported in the table, the run goes on
                    rate.error = str(exc)[:160]
                print(f"  {load.label:<34} {t.name:<16} rep {rep + 1}: {rate.show('{:.1f}')}", flush=True)


def run_big(targets: list[SmtpTarget], reps: int, count: int, res: Results, deadline: float) -> None:
    """20 MiB messages (one session) while a probe sends 10 KiB messages: rate and probe latency."""
    load = SmtpLoad("big", "SMTP 20 MiB", 1, count, 20 * 1024 * 1024)
    for rep in range(reps):
        for t in targets:
            if time.monotonic() > deadline:
                res.notes.append(f"time budget spent: 20 MiB {t.name} rep {rep + 1} skipped")
                continue
            rate = res.series("big.rate", t.name)
            try:
                idle = Probe(t)
                base = sorted(idle.one() for _ in range(20))
                if t.drain is not None:
                    t.drain()
                before = t.stored() if t.stored else 0
                with measured(t.pids) as m, Probe(t) as probe:
                    smtp_source(t, load)
                if t.drain is not None:
                    t.drain()
                during = probe.latencies
                if t.stored is not None and (stored := t.stored() - before - len(during)) != count:
                    raise RuntimeError(f"{stored} large messages stored, {count} sent")
                rate.add(count / m["wall"])
                res.series("big.cpu_ms", t.name).add(m["cpu"] / count * 1e3)
                res.series("big.rss", t.name).add(m["rss_mib"])
                res.series("big.pss", t.name).add(m["pss_mib"])
                res.series("big.idle_p50", t.name).add(statistics.median(base))
                res.series("big.during_p50", t.name).add(statistics.median(during) if during else float("nan"))
                res.series("big.during_max", t.name).add(max(during) if during else float("nan"))
                res.series("big.raise", t.name).add((max(during) if during else 0) - statistics.median(base))
            except Exception as exc:
                rate.error = str(exc)[:160]
            print(f"  {load.label:<34} {t.name:<16} rep {rep + 1}: {rate.show('{:.2f}')}", flush=True)


# --------------------------------------------------------------------------- IMAP


@dataclass
class ImapTarget:
    name: str
    account: imapload.Account  # with several hosts, each new session goes to the next (round robin)
    pids: Callable[[], list[int]]


def run_imap(targets: list[ImapTarget], reps: int, messages: int, res: Results, deadline: float,
             profile: Path | None, profile_pid: int | None) -> None:
    batch = max(1, messages // 5)
    for t in targets:
        print(f"  filling {t.name}: APPEND {messages} × 10 KiB", flush=True)
        try:
            with measured(t.pids) as m:
                rates = asyncio.run(imapload.fill(t.account, messages, batch, time.monotonic() + RUN_TIMEOUT * 2))
            for r in rates:
                res.series("imap.append", t.name).add(r)
            res.series("imap.append_cpu_ms", t.name).add(m["cpu"] / messages * 1e3)
        except Exception as exc:
            res.series("imap.append", t.name).error = str(exc)[:160]
        print(f"    APPEND msg/s per batch of {batch}: {res.series('imap.append', t.name).show('{:.0f}')}",
              flush=True)

    hits = len(range(0, messages, imapload.NEEDLE_EVERY))
    steps: list[tuple[str, Callable[[imapload.Account, int], Any], str]] = [
        ("imap.headers", lambda a, r: imapload.fetch_all(a, "(FLAGS RFC822.SIZE ENVELOPE)", messages), "s"),
        ("imap.bodies", lambda a, r: imapload.fetch_all(a, "BODY.PEEK[]", messages), "s"),
        ("imap.search_subject", lambda a, r: imapload.search(a, "SUBJECT needle", hits), "s"),
        ("imap.search_body", lambda a, r: imapload.search(a, "BODY marker", hits), "s"),
        ("imap.single", lambda a, r: imapload.single_latency(a, 200, r), "ms"),
        ("imap.clients50", lambda a, r: imapload.concurrent_clients(a, 50, 4, 100, messages), "pairs/s"),
    ]
    for key, fn, _unit in steps:
        for rep in range(reps):
            for t in targets:
                if time.monotonic() > deadline:
                    res.notes.append(f"time budget spent: {key} {t.name} rep {rep + 1} skipped")
                    continue
                s = res.series(key, t.name)
                prof = start_profile(profile, profile_pid if rep == 0 and t.name == "gateway" else None,
                                     f"{key}-{rep}")
                try:
                    with measured(t.pids) as m:
                        value = asyncio.run(asyncio.wait_for(fn(t.account, rep), RUN_TIMEOUT))
                    if key in ("imap.headers", "imap.bodies"):
                        s.add(value[0])
                    elif key == "imap.clients50":
                        s.add(value[0])
                        if value[1]:
                            res.notes.append(f"{t.name}, 50 clients, rep {rep + 1}: {len(value[1])} of 50 clients "
                                             f"failed, e.g. {value[1][0]}")
                    elif key == "imap.single":
                        s.add(value[0])
                        res.series("imap.single_p95", t.name).add(value[1])
                    else:
                        s.add(value)
                    if key == "imap.clients50":
                        res.series("imap.clients50_rss", t.name).add(m["rss_mib"])
                        res.series("imap.clients50_pss", t.name).add(m["pss_mib"])
                    if key == "imap.headers":
                        res.series("imap.headers_cpu_ms", t.name).add(m["cpu"] * 1e3)
                except Exception as exc:
                    s.error = f"{type(exc).__name__}: {exc}"[:160]
                finally:
                    stop_profile(prof)
                print(f"  {key:<34} {t.name:<16} rep {rep + 1}: {s.show('{:.3f}')}", flush=True)


# --------------------------------------------------------------------------- profiling (optional)


def start_profile(folder: Path | None, pid: int | None, name: str) -> subprocess.Popen[bytes] | None:
    """py-spy on ``pid`` (the one-node gateway's serving process; None: no profile)."""
    if folder is None or pid is None:
        return None
    spy = VENV_BIN / "py-spy"
    if not spy.exists():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    # --gil: only the thread holding the GIL is sampled, so shares are of the CPU Python uses;
    # --subprocesses: the SMTP processes too (smtp.processes > 1).
    return subprocess.Popen([str(spy), "record", "-p", str(pid), "-r", "100", "--threads", "--gil",
                             "--subprocesses",
                             "--nonblocking", "-f", "raw", "-o", str(folder / f"{name}.txt")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# --------------------------------------------------------------------------- main


def parse_nodes(text: str) -> list[str]:
    """``--nodes``: a comma-separated subset of ``1`` (one node, SQLite) and ``2pg`` (two nodes, PostgreSQL)."""
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    if not chosen or any(part not in NODE_CHOICES for part in chosen):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated subset of {', '.join(NODE_CHOICES)}")
    return [c for c in NODE_CHOICES if c in chosen]


NODE_CHOICES = {"1": (1, ONE), "2pg": (2, TWO)}  # --nodes value: (node count, target name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="repetitions of every load (default 3)")
    ap.add_argument("--quick", action="store_true", help="small counts, for a smoke test of the harness")
    ap.add_argument("--only", choices=("smtp", "imap"), help="run one half only")
    ap.add_argument("--nodes", type=parse_nodes, default=parse_nodes("1,2pg"), metavar="1,2pg",
                    help="gateway set-ups to run: 1 (one node, embedded SQLite), 2pg (two nodes on one fresh "
                         "PostgreSQL database, dropped at the end), or both (default)")
    ap.add_argument("--json", type=Path, help="also write the raw figures to this file")
    ap.add_argument("--profile", type=Path, help="py-spy raw profiles of the one-node gateway, first rep of each load")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (servers are stopped)")
    ap.add_argument("--smtp-processes", type=int, default=os.cpu_count() or 1, metavar="N",
                    help="the gateway's SMTP processes in all (smtp.processes; with two nodes, N/2 each, at "
                         "least 1; default: one per CPU, as Postfix and Dovecot spread over the cores; "
                         "%(default)s here)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/run needs root (Postfix and Dovecot start as root and drop privileges)", file=sys.stderr)
        return 2

    q = args.quick
    smtp_loads = [
        SmtpLoad("s10k", "SMTP 10 KiB, 10 sessions, new conn", 10, 200 if q else 2000, 10240),
        SmtpLoad("s10kd", "SMTP 10 KiB, 10 sessions, reused conn", 10, 200 if q else 2000, 10240, reuse=True),
        SmtpLoad("s1m", "SMTP 1 MiB, 10 sessions, new conn", 10, 20 if q else 200, 1048576),
    ]
    big_count = 1 if q else 3
    imap_messages = 500 if q else 5000

    root = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    root.chmod(0o755)  # Postfix/Dovecot mail users must reach their folders below
    res = Results()
    started = time.monotonic()
    deadline = started + TOTAL_BUDGET
    if "2pg" in args.nodes and (why := pg.server_available()) is not None:
        print(f"two nodes left out: PostgreSQL does not answer ({why})", flush=True)
        res.notes.append(f"two-node set-up left out: PostgreSQL did not answer ({why})")
        args.nodes = [c for c in args.nodes if c != "2pg"]
        if not args.nodes:
            shutil.rmtree(root, ignore_errors=True)
            return 2
    gateways = [Gateway(root, smtp_processes=max(1, args.smtp_processes // count), nodes=count, name=name)
                for count, name in (NODE_CHOICES[c] for c in args.nodes)]
    pf = Postfix(root / "postfix", free_port())
    dc = Dovecot(root / "dovecot", free_port())
    (root / "postfix").mkdir()
    (root / "dovecot").mkdir()
    one = next((gw for gw in gateways if gw.name == ONE), None)
    try:
        print(f"temporary folder {root}", flush=True)
        for gw in gateways:
            gw.prepare()
            gw.start()
            for node in gw.nodes:
                print(f"{gw.name} {node.name} pid {node.pid}: MX {node.host}:{gw.ports['mx']}, IMAP "
                      f"{node.host}:{gw.ports['imap']}, smtp.processes = {gw.smtp_processes}", flush=True)
        if args.only != "imap":
            pf.start()
            print(f"postfix master pid {pf.pid}: 127.0.0.1:{pf.port}", flush=True)
            targets = [SmtpTarget(gw.name, gw.endpoints("mx"), gw.patient, gw.pids, gw.stored) for gw in gateways]
            references = [
                SmtpTarget("postfix-maildir", [("127.0.0.1", pf.port)], "box@maildir.test", lambda: [pf.pid],
                           pf.maildir_count, pf.wait_drained),
                SmtpTarget("postfix-discard", [("127.0.0.1", pf.port)], "box@discard.test", lambda: [pf.pid], None,
                           pf.wait_drained),
            ]
            run_smtp([*targets[:1], *references, *targets[1:]], smtp_loads, args.reps, res, deadline, args.profile)
            # 20 MiB in one session: one node only (a single session cannot be split across nodes)
            run_big([t for t in targets if len(t.endpoints) == 1] + references, args.reps, big_count, res, deadline)
            pf.stop()
        if args.only != "smtp":
            dc.start()
            print(f"dovecot master pid {dc.pid}: 127.0.0.1:{dc.port}", flush=True)
            imap_targets = []
            for gw in gateways:
                hosts = tuple(host for host, _ in gw.endpoints("imap"))
                if all(asyncio.run(imapload.answers(gw.ports["imap"], host)) for host in hosts):
                    account = imapload.Account(gw.ports["imap"], gw.pro, gw.password, hosts)
                    imap_targets.append(ImapTarget(gw.name, account, gw.pids))
                else:
                    res.notes.append(f"{gw.name}: IMAP port did not answer: IMAP part not available")
            dovecot = ImapTarget("dovecot", imapload.Account(dc.port, Dovecot.USER, Dovecot.PASSWORD), lambda: [dc.pid])
            run_imap([*imap_targets[:1], dovecot, *imap_targets[1:]], args.reps, imap_messages, res, deadline,
                     args.profile, one.pid if one else None)
            dc.stop()
        for gw in gateways:
            hwm = " + ".join(f"{procstat.vm_hwm_kib(node.pid) / 1024:.0f}" for node in gw.nodes)
            res.notes.append(f"{gw.name}: serving process VmHWM at the end: {hwm} MiB; messages stored: "
                             f"{gw.stored()}; {len(gw.nodes)} node(s), smtp.processes = {gw.smtp_processes} each")
    finally:
        for gw in gateways:
            gw.stop()
        pf.stop()
        dc.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    res.notes.append(f"total wall time {time.monotonic() - started:.0f} s")
    print()
    print(table(res, [(load.key, load.label) for load in smtp_loads], imap_messages))
    if args.json:
        args.json.write_text(json.dumps(res.to_json(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
