"""Side-by-side benchmark: the gateway against Postfix (SMTP) and Dovecot (IMAP), same run.

    bench/run [--reps 3] [--quick] [--only smtp|imap] [--json FILE] [--profile DIR] [--keep]

Starts, on 127.0.0.1 only: a private Postfix (maildir + discard transports), a private
Dovecot, and the gateway (embedded SQLite in a temporary home; encryption at rest and
``250`` after commit as always). Runs the same loads against each, repetitions
interleaved, and prints medians (min-max) with gateway/reference ratios. Everything it
started is stopped and its temporary folder removed at the end (``--keep`` keeps it).
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
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# bench/ holds scripts named like our packages (bench/imap.py): our siblings go last on the path
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import imapload  # noqa: E402
import procstat  # noqa: E402
from refservers import Dovecot, Postfix  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
SENDER = "sender@bench.test"
RUN_TIMEOUT = 900.0  # any single load step
TOTAL_BUDGET = 3600.0  # the whole benchmark; steps still to run after it are skipped


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


class Gateway:
    def __init__(self, root: Path, *, smtp_processes: int = 1) -> None:
        self.home = root / "gateway"
        self.smtp_processes = smtp_processes
        self.ports = {name: free_port() for name in ("mx", "submission", "submissions", "imap", "imaps", "http")}
        self.ports["metrics"] = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.patient = ""
        self.pro = ""
        self.password = ""

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ}
        for name, port in self.ports.items():
            if name == "metrics":
                continue
            env[f"GATEWAY__LISTEN__{name.upper()}"] = f"127.0.0.1:{port}"
        # plaintext IMAP LOGIN on loopback, as Dovecot is configured here (no TLS on either side)
        env["GATEWAY__TLS__ALLOW_AUTH_WITHOUT_TLS"] = "true"
        env["GATEWAY__LOGGING__LEVEL"] = "warning"
        env["GATEWAY__SMTP__PROCESSES"] = str(self.smtp_processes)
        return env

    def prepare(self) -> None:
        from gateway.testing.live import make_home
        from gateway.testing.world import PASSWORD, populate

        make_home(self.home, hostname="mx.bench.gateway.test")
        text = (self.home / "gateway.toml").read_text()
        if "[metrics]" in text:
            text = text.replace("[metrics]", f'[metrics]\nlisten = "127.0.0.1:{self.ports["metrics"]}"', 1)
        world = populate(self.home)
        self.patient, self.pro, self.password = world.patient(), world.pro, PASSWORD
        subprocess.run([str(VENV_BIN / "gateway"), "--home", str(self.home), "domain", "trust", "add", "bench.test",
                        "--no-tls-required", "--dkim", "none", "--description", "benchmark private link"],
                       check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        log = (self.home / "serve.log").open("wb")
        self.proc = subprocess.Popen([str(VENV_BIN / "python"), str(REPO / "bench" / "gateway_serve.py"),
                                      str(self.home)], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        if not wait_port(self.ports["mx"], 60):
            self.stop()
            raise RuntimeError(f"gateway MX did not answer; see {self.home}/serve.log")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stored(self) -> int:
        """Messages stored (sealed) in the database: what the patient's and pro's folders hold."""
        with sqlite3.connect(f"file:{self.home / 'gateway.db'}?mode=ro", uri=True, timeout=30) as db:
            return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


# --------------------------------------------------------------------------- results


@dataclass
class Series:
    values: list[float] = field(default_factory=list)
    error: str | None = None

    def add(self, v: float) -> None:
        self.values.append(v)

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def show(self, fmt: str = "{:.0f}") -> str:
        if self.error and not self.values:
            return f"error: {self.error}"
        if not self.values:
            return "n/a"
        med = fmt.format(statistics.median(self.values))
        if len(self.values) == 1:
            return med
        return f"{med} ({fmt.format(min(self.values))}–{fmt.format(max(self.values))})"


@dataclass
class Results:
    data: dict[str, dict[str, Series]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def series(self, measure: str, target: str) -> Series:
        return self.data.setdefault(measure, {}).setdefault(target, Series())

    def to_json(self) -> dict[str, Any]:
        return {"measures": {m: {t: {"values": s.values, "median": s.median, "error": s.error}
                                 for t, s in targets.items()} for m, targets in self.data.items()},
                "notes": self.notes}


@contextmanager
def measured(pid: int) -> Iterator[dict[str, float]]:
    """CPU seconds and peak memory of ``pid``'s process tree over the block."""
    out: dict[str, float] = {}
    sampler = procstat.Sampler(pid).start()
    cpu0 = procstat.tree_cpu_seconds(pid)
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out["t0"] = t0
        out["wall"] = time.perf_counter() - t0
        out["cpu"] = procstat.tree_cpu_seconds(pid) - cpu0
        sampler.stop()
        out["rss_mib"] = sampler.peak_rss_kib / 1024
        out["pss_mib"] = sampler.peak_pss_kib / 1024


# --------------------------------------------------------------------------- SMTP


@dataclass
class SmtpTarget:
    name: str
    port: int
    rcpt: str
    pid: Callable[[], int]
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


def smtp_source(target: SmtpTarget, load: SmtpLoad) -> None:
    cmd = ["smtp-source", "-s", str(load.sessions), "-m", str(load.count), "-l", str(load.length),
           "-f", SENDER, "-t", target.rcpt, "-M", "bench.test"]
    if load.reuse:
        cmd.append("-d")
    cmd.append(f"127.0.0.1:{target.port}")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source exited {done.returncode}: {done.stderr.strip()[-300:]}")


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
        with smtplib.SMTP("127.0.0.1", self.target.port, local_hostname="bench.test", timeout=60) as s:
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
                    prof = start_profile(profile, t, f"{load.key}-{rep}") if rep == 0 else None
                    try:
                        with measured(t.pid()) as m:
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
                with measured(t.pid()) as m, Probe(t) as probe:
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
                # the probe's messages are in the tree's CPU above: how many per 20 MiB message
                res.series("big.probes", t.name).add(len(during) / count)
            except Exception as exc:
                rate.error = str(exc)[:160]
            print(f"  {load.label:<34} {t.name:<16} rep {rep + 1}: {rate.show('{:.2f}')}", flush=True)


# --------------------------------------------------------------------------- IMAP


@dataclass
class ImapTarget:
    name: str
    account: imapload.Account
    pid: Callable[[], int]


def run_imap(targets: list[ImapTarget], reps: int, messages: int, res: Results, deadline: float,
             profile: Path | None, gw_profile_target: Any) -> None:
    batch = max(1, messages // 5)
    for t in targets:
        print(f"  filling {t.name}: APPEND {messages} × 10 KiB", flush=True)
        try:
            with measured(t.pid()) as m:
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
                prof = start_profile(profile, gw_profile_target, f"{key}-{rep}") \
                    if rep == 0 and t.name == "gateway" else None
                try:
                    with measured(t.pid()) as m:
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


def start_profile(folder: Path | None, target: Any, name: str) -> subprocess.Popen[bytes] | None:
    if folder is None or target is None or getattr(target, "name", "") != "gateway":
        return None
    spy = VENV_BIN / "py-spy"
    if not spy.exists():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    # --gil: only the thread holding the GIL is sampled, so shares are of the CPU Python uses;
    # --subprocesses: the SMTP processes too (smtp.processes > 1).
    return subprocess.Popen([str(spy), "record", "-p", str(target.pid()), "-r", "100", "--threads", "--gil",
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


# --------------------------------------------------------------------------- table


def ratio(a: float | None, b: float | None, *, higher_is_better: bool) -> str:
    if a is None or b is None or a != a or b != b or a == 0 or b == 0:
        return "–"
    return f"{(a / b if higher_is_better else b / a):.2f}"


def table(res: Results, smtp_loads: list[SmtpLoad]) -> str:
    d = res.data

    def get(m: str, t: str) -> Series:
        return d.get(m, {}).get(t, Series())

    out = ["### SMTP: accepted and stored (smtp-source; gateway: sealed + committed before 250)", "",
           "| load | unit | gateway | Postfix → maildir | ratio | Postfix → discard | ratio |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for load in [*smtp_loads, SmtpLoad("big", "SMTP 20 MiB, 1 session", 1, 0, 0)]:
        for suffix, unit, fmt, better in (("rate", "msg/s", "{:.1f}", True),
                                          ("accept_rate", "msg/s accepted (smtp-source time)", "{:.1f}", True),
                                          ("cpu_ms", "CPU ms/msg", "{:.2f}", False),
                                          ("rss", "peak memory, sum of RSS, MiB", "{:.0f}", False),
                                          ("pss", "peak memory, sum of PSS, MiB", "{:.0f}", False)):
            m = f"{load.key}.{suffix}"
            if m not in d:
                continue
            g, pm, pd = get(m, "gateway"), get(m, "postfix-maildir"), get(m, "postfix-discard")
            label = load.label if suffix == "rate" else ""
            out.append(f"| {label} | {unit} | {g.show(fmt)} | {pm.show(fmt)} | "
                       f"{ratio(g.median, pm.median, higher_is_better=better)} | {pd.show(fmt)} | "
                       f"{ratio(g.median, pd.median, higher_is_better=better)} |")
    if "big.raise" in d:
        for m, label in (("big.idle_p50", "10 KiB probe latency idle, p50"),
                         ("big.during_p50", "probe latency during 20 MiB, p50"),
                         ("big.during_max", "probe latency during 20 MiB, max"),
                         ("big.raise", "latency raise (max during − idle p50)")):
            g, pm, pd = get(m, "gateway"), get(m, "postfix-maildir"), get(m, "postfix-discard")
            out.append(f"| {label} | ms | {g.show('{:.1f}')} | {pm.show('{:.1f}')} | – | {pd.show('{:.1f}')} | – |")
        g, pm, pd = (get("big.probes", n) for n in ("gateway", "postfix-maildir", "postfix-discard"))
        out.append(f"| probe messages per 20 MiB message (their CPU is in the 20 MiB CPU ms/msg) | count | "
                   f"{g.show('{:.0f}')} | {pm.show('{:.0f}')} | – | {pd.show('{:.0f}')} | – |")
    out += ["", "Ratios: gateway/reference for msg/s (higher is better); reference/gateway for CPU and memory "
            "(higher is better: above 1 the gateway uses less).", ""]
    out += ["### IMAP (5,000 × 10 KiB in INBOX; plaintext LOGIN on loopback for both)", "",
            "| measure | unit | gateway | Dovecot | ratio |", "| --- | --- | --- | --- | --- |"]
    rows = [("imap.headers", "LOGIN+SELECT+UID FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)", "s", "{:.3f}", False),
            ("imap.headers_cpu_ms", "  server CPU for it", "ms", "{:.0f}", False),
            ("imap.bodies", "LOGIN+SELECT+UID FETCH 1:* BODY.PEEK[]", "s", "{:.3f}", False),
            ("imap.search_subject", "UID SEARCH SUBJECT needle (50 hits)", "s", "{:.3f}", False),
            ("imap.search_body", "UID SEARCH BODY marker (50 hits)", "s", "{:.3f}", False),
            ("imap.single", "single UID FETCH BODY.PEEK[], p50 of 200", "ms", "{:.2f}", False),
            ("imap.single_p95", "  p95", "ms", "{:.2f}", False),
            ("imap.clients50", "50 clients × 4 (SELECT + FETCH 100 headers)", "pairs/s", "{:.0f}", True),
            ("imap.clients50_rss", "  peak memory, sum of RSS", "MiB", "{:.0f}", False),
            ("imap.clients50_pss", "  peak memory, sum of PSS", "MiB", "{:.0f}", False),
            ("imap.append", "APPEND 10 KiB, one connection (per batch)", "msg/s", "{:.0f}", True),
            ("imap.append_cpu_ms", "  server CPU per APPEND", "ms", "{:.2f}", False)]
    for m, label, unit, fmt, better in rows:
        if m not in d:
            continue
        g, dv = get(m, "gateway"), get(m, "dovecot")
        out.append(f"| {label} | {unit} | {g.show(fmt)} | {dv.show(fmt)} | "
                   f"{ratio(g.median, dv.median, higher_is_better=better)} |")
    out += ["", "Ratios: gateway speed / Dovecot speed (for times: Dovecot time / gateway time); for memory and "
            "CPU: Dovecot / gateway. Above 1 the gateway does better.", ""]
    if res.notes:
        out += ["Notes:", *[f"- {n}" for n in res.notes]]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="repetitions of every load (default 3)")
    ap.add_argument("--quick", action="store_true", help="small counts, for a smoke test of the harness")
    ap.add_argument("--only", choices=("smtp", "imap"), help="run one half only")
    ap.add_argument("--json", type=Path, help="also write the raw figures to this file")
    ap.add_argument("--profile", type=Path, help="py-spy raw profiles of the gateway, first rep of each load")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (servers are stopped)")
    ap.add_argument("--smtp-processes", type=int, default=os.cpu_count() or 1, metavar="N",
                    help="the gateway's smtp.processes (default: one per CPU, as Postfix and Dovecot "
                         "spread over the cores; %(default)s here)")
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
    gw = Gateway(root, smtp_processes=args.smtp_processes)
    pf = Postfix(root / "postfix", free_port())
    dc = Dovecot(root / "dovecot", free_port())
    (root / "postfix").mkdir()
    (root / "dovecot").mkdir()
    try:
        print(f"temporary folder {root}", flush=True)
        gw.prepare()
        gw.start()
        print(f"gateway pid {gw.pid}: MX 127.0.0.1:{gw.ports['mx']}, IMAP 127.0.0.1:{gw.ports['imap']}, "
              f"smtp.processes = {gw.smtp_processes}", flush=True)
        if args.only != "imap":
            pf.start()
            print(f"postfix master pid {pf.pid}: 127.0.0.1:{pf.port}", flush=True)
            targets = [
                SmtpTarget("gateway", gw.ports["mx"], gw.patient, lambda: gw.pid, gw.stored),
                SmtpTarget("postfix-maildir", pf.port, "box@maildir.test", lambda: pf.pid, pf.maildir_count,
                           pf.wait_drained),
                SmtpTarget("postfix-discard", pf.port, "box@discard.test", lambda: pf.pid, None, pf.wait_drained),
            ]
            run_smtp(targets, smtp_loads, args.reps, res, deadline, args.profile)
            run_big(targets, args.reps, big_count, res, deadline)
            pf.stop()
        if args.only != "smtp":
            dc.start()
            print(f"dovecot master pid {dc.pid}: 127.0.0.1:{dc.port}", flush=True)
            if wait_port(gw.ports["imap"], 30) and asyncio.run(imapload.answers(gw.ports["imap"])):
                imap_targets = [
                    ImapTarget("gateway", imapload.Account(gw.ports["imap"], gw.pro, gw.password), lambda: gw.pid),
                    ImapTarget("dovecot", imapload.Account(dc.port, Dovecot.USER, Dovecot.PASSWORD), lambda: dc.pid),
                ]
                run_imap(imap_targets, args.reps, imap_messages, res, deadline, args.profile,
                         _named("gateway", lambda: gw.pid))
            else:
                res.notes.append("gateway IMAP port did not answer: IMAP part not available")
            dc.stop()
        hwm = procstat.vm_hwm_kib(gw.pid) / 1024
        res.notes.append(f"gateway process VmHWM at the end: {hwm:.0f} MiB; messages stored: {gw.stored()}; "
                         f"smtp.processes = {gw.smtp_processes}")
    finally:
        gw.stop()
        pf.stop()
        dc.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    res.notes.append(f"total wall time {time.monotonic() - started:.0f} s")
    print()
    print(table(res, smtp_loads))
    if args.json:
        args.json.write_text(json.dumps(res.to_json(), indent=1))
    return 0


@dataclass
class _named:  # a tiny stand-in with .name and .pid() for the profiler
    name: str
    pid: Callable[[], int]


if __name__ == "__main__":
    sys.exit(main())
