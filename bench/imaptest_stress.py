"""imaptest's stress mode against the gateway (one node on SQLite, two nodes on one PostgreSQL)
and against Debian's Dovecot, back to back (issue 18).

imaptest itself is built by hand outside the repository (see bench/README.md, "imaptest stress
mode"); give its path with ``--imaptest``. Every server gets the same ten accounts
(``stress1@clinic.test`` ... ``stress10@clinic.test``, one password), hashed argon2id with the
gateway's parameters (``gateway.accounts.pros``: 64 MiB, t = 3, one lane) on both sides, and
LOGIN on the plain port (``tls.allow_auth_without_tls`` on loopback; Dovecot ``ssl = no``).

    .venv/bin/python bench/imaptest_stress.py --imaptest /work/ext/imaptest/src/imaptest \\
        --mbox ../shared/imaptest/stress.mbox --secs 60 --clients 10 [--users 10] \\
        [--target gateway1 --target gateway2 --target dovecot] [--rounds 3] [--profile DIR]

On two nodes one imaptest process drives both, its clients alternating between them
(:func:`start_gateway`). Each run starts its servers afresh; ``--rounds N`` repeats the
targets, interleaved. Printed per run: errors, commands (the sum of imaptest's totals) and
per second, the server's CPU over the run (process trees; the gateway's PostgreSQL backends
included) per command, and imaptest's last full ``ms/cmd avg`` line. ``--profile DIR``: py-spy
raw profiles of each gateway node over the run, every thread (summarise with
``bench/profile_top.py``). ``--serve TARGET`` starts a target and waits (to run imaptest by
hand); the ports are printed.
"""

from __future__ import annotations

import argparse
import imaplib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

# bench/ holds scripts named like our packages (bench/imap.py): our siblings go last on the path
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

import procstat  # noqa: E402
from nodes import LISTENERS, database_backends, shared_database, start_nodes  # noqa: E402
from refservers import Dovecot  # noqa: E402

from gateway.accounts.pros import add_hosted_domain, add_pro, hash_password  # noqa: E402
from gateway.app.context import Location, open_services  # noqa: E402
from gateway.testing.live import make_home  # noqa: E402
from gateway.testing.ports import free_port  # noqa: E402

DOMAIN = "clinic.test"
PASSWORD = "stress password"  # noqa: S105 - synthetic local accounts
USERS = 10
ROUND_ROBIN = "gateway-nodes.stress.test"


def user_format() -> str:
    return f"stress%d@{DOMAIN}"


def gateway_home(root: Path, url: str | None) -> Path:
    home = make_home(root, storage_url=url)
    config = home / "gateway.toml"
    config.write_text(config.read_text().replace("[tls]\n", "[tls]\nallow_auth_without_tls = true\n", 1))
    svc = open_services(Location(config, home, True))
    try:
        with svc.db.write() as session:
            domain = add_hosted_domain(session, DOMAIN)
            for i in range(1, USERS + 1):
                add_pro(session, svc.keys, user_format() % i, domain, password=PASSWORD)
    finally:
        svc.close()
    return home


Server = tuple[str, int, Callable[[], list[int]]]  # imaptest's host and port; the server's root processes


def start_gateway(stack: ExitStack, root: Path, nodes: int, repo: Path | None = None) -> Server:
    """Start the nodes (:func:`nodes.start_nodes`); returns the host and port imaptest connects to,
    and the nodes' processes with the PostgreSQL backends of their database.

    imaptest connects its clients in turn to each address its ``host`` resolves to, on one port:
    node i listens on 127.0.0.(i+1), same port, and the name ``ROUND_ROBIN`` resolves to them all
    in imaptest's private /etc/hosts (:func:`run_imaptest`), so one imaptest process (its
    checkpoints included) drives both nodes, clients alternating between them.
    """
    url = shared_database(stack, "hmg_stress") if nodes > 1 else None
    ports = {name: free_port() for name in LISTENERS}
    env = {"PYTHONPATH": str(repo)} if repo else None
    started = start_nodes(stack, gateway_home(root / "a", url), nodes, ports, hostname="gateway.test", env=env,
                          repo=repo)

    def pids() -> list[int]:
        return [node.pid for node in started] + (database_backends(url) if url else [])

    return (ROUND_ROBIN if nodes > 1 else started[0].host), ports["imap"], pids


class StressDovecot(Dovecot):
    """bench/refservers.py's private Dovecot, with the ten stress accounts (ARGON2ID, same cost)."""

    def write_config(self) -> None:
        super().write_config()
        lines = []
        for i in range(1, USERS + 1):
            # libsodium's argon2id string (the gateway's own hash function): Dovecot reads the same PHC form
            lines.append(f"{user_format() % i}:{{ARGON2ID}}{hash_password(PASSWORD)}:{self.uid}:{self.gid}::"
                         f"{self.root}/mail/%u\n")
        (self.root / "passwd").write_text("".join(lines))


def start_dovecot(stack: ExitStack, root: Path) -> Server:
    root.mkdir(parents=True)
    root.chmod(0o755)  # Dovecot's mail user must reach its folders below
    dovecot = StressDovecot(root, free_port())
    stack.callback(dovecot.stop)
    dovecot.start()
    return "127.0.0.1", dovecot.port, lambda: [dovecot.pid]


def create_folders(port: int, users: int, names: list[str]) -> None:
    """CREATE ``names`` in each account first: imaptest's COPY answers a TRYCREATE with a CREATE
    and counts that CREATE's ALREADYEXISTS as an error when another client created it first."""
    for i in range(1, users + 1):
        with imaplib.IMAP4("127.0.0.1", port) as imap:
            imap.login(user_format() % i, PASSWORD)
            for name in names:
                imap.create(name)
            imap.logout()


def run_imaptest(binary: str, host: str, port: int, args: argparse.Namespace, log: Path) -> str:
    """Run imaptest; returns its output. For ``ROUND_ROBIN`` it runs in a mount namespace of its own
    where /etc/hosts (bind-mounted over, for this process only) gives the name every node's address."""
    command = [binary, f"host={host}", f"port={port}", f"user={user_format()}", f"users=1-{args.users}",
               f"pass={PASSWORD}", f"clients={args.clients}", f"secs={args.secs}", f"mbox={args.mbox}",
               f"seed={args.seed}", *args.extra]
    print("$", " ".join(command), flush=True)
    if host == ROUND_ROBIN:
        hosts = log.parent / "hosts"
        hosts.write_text(f"127.0.0.1 localhost\n127.0.0.1 {ROUND_ROBIN}\n127.0.0.2 {ROUND_ROBIN}\n")
        command = ["unshare", "--mount", "sh", "-c", f'mount --bind {hosts} /etc/hosts && exec "$@"', "-", *command]
    with log.open("w") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=args.secs + 300,  # noqa: S603
                       env={**os.environ, "LD_LIBRARY_PATH": "/usr/lib/dovecot"}, check=False)
    return log.read_text(errors="replace")


def summary(output: str) -> dict[str, Any]:
    """From imaptest's output: errors, the last report's totals per command (its 'Totals:' table),
    and the mean latency per command over the run, ms (each ``ms/cmd avg`` line covers the
    seconds printed above it: weighted by their counts)."""
    errors = len(re.findall(r"^Error: ", output, re.M))
    totals: dict[str, int] = {}
    lines = output.splitlines()
    names: list[str] = []
    if "Totals:" in lines:
        at = len(lines) - 1 - lines[::-1].index("Totals:")
        rows = [line.split() for line in lines[at + 1:] if line.strip()]
        names, values = rows[0], rows[-1]  # names, the share of clients running each, the counts
        totals = {n: int(v) for n, v in zip(names, values, strict=False) if v.isdigit()}
    weighted = [0.0] * len(names)
    counted = [0] * len(names)
    block = [0] * len(names)
    for line in lines:
        cells = line.split()
        if re.match(r"\s*(\d+\s+)+\d+/\s*\d+", line) and len(cells) >= len(names):  # one second's counts
            block = [b + int(c) for b, c in zip(block, cells[:len(names)], strict=True)]
        elif line.endswith("ms/cmd avg") and names:
            for i, avg in enumerate(int(v) for v in cells[:len(names)]):
                weighted[i] += avg * block[i]
                counted[i] += block[i]
            block = [0] * len(names)
    averages = {n: round(w / c) for n, w, c in zip(names, weighted, counted, strict=True) if c}
    return {"errors": errors, "totals": totals, "ms_avg": averages}


def start_profiles(folder: Path, target: str, pids: list[int]) -> list[subprocess.Popen[bytes]]:
    """py-spy on each process for the run: every thread (not only the GIL holder, so that the
    password hashing threads show beside the event loop), idle samples left out."""
    spy = Path(sys.executable).with_name("py-spy")
    folder.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen([str(spy), "record", "-p", str(pid), "-r", "100", "--threads", "--nonblocking",  # noqa: S603
                              "-f", "raw", "-o", str(folder / f"{target}-node{i}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i, pid in enumerate(pids)]


def stop_profiles(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imaptest", default="/work/ext/imaptest/src/imaptest")
    parser.add_argument("--mbox", default=str(HERE.parent.parent / "shared" / "imaptest" / "stress.mbox"))
    parser.add_argument("--secs", type=int, default=60)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--users", type=int, default=1, help="accounts used (1: all clients on one account)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", action="append", choices=["gateway1", "gateway2", "dovecot"])
    parser.add_argument("--serve", choices=["gateway1", "gateway2", "dovecot"])
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--create", action="append", default=[], help="folder to create in each account first")
    parser.add_argument("--repo", type=Path, metavar="DIR",
                        help="run the gateway nodes from this checkout (A/B against another commit)")
    parser.add_argument("--rounds", type=int, default=1, help="run the targets this many times, interleaved")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy raw profiles of every gateway node during the run (needs .venv/bin/py-spy)")
    parser.add_argument("extra", nargs="*", help="more imaptest arguments")
    args = parser.parse_args()
    with ExitStack() as stack:
        root = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hmg-stress-")))
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)  # Dovecot's mail user must reach its folders below
        targets = [args.serve] if args.serve else (args.target or ["gateway1", "gateway2", "dovecot"])
        for round_ in range(1, (1 if args.serve else args.rounds) + 1):
            for target in targets:
                if not stress(target, root / f"{target}-{round_}", args):
                    return


def stress(target: str, root: Path, args: argparse.Namespace) -> bool:
    """One imaptest run against ``target`` in fresh servers (``--serve``: start them and wait);
    prints the figures. False when serving ended (nothing more to run)."""
    with ExitStack() as servers:
        if target == "dovecot":
            host, port, pids = start_dovecot(servers, root)
        else:
            host, port, pids = start_gateway(servers, root, 2 if target == "gateway2" else 1, args.repo)
        create_folders(port, args.users, args.create)
        if args.serve:
            print(f"{target}: {host} port {port}, users {user_format()} 1-{USERS}, password {PASSWORD!r}", flush=True)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})  # then the servers are stopped
            return False
        profiles = start_profiles(args.profile, root.name, pids()[:2 if target == "gateway2" else 1]) \
            if args.profile and target != "dovecot" else []
        cpu0 = {pid: procstat.tree_cpu_seconds(pid) for pid in pids()}
        try:
            output = run_imaptest(args.imaptest, host, port, args, root.parent / f"{root.name}.out")
        finally:
            cpu = sum(procstat.tree_cpu_seconds(pid) - cpu0.get(pid, 0.0) for pid in pids())
            stop_profiles(profiles)
    s = summary(output)
    total = sum(s["totals"].values())
    print(f"{root.name}: errors {s['errors']}, commands {total} ({total / args.secs:.1f}/s), server CPU {cpu:.1f} s "
          f"({1e3 * cpu / max(total, 1):.1f} ms/command), totals {s['totals']}, ms/cmd avg {s['ms_avg']}", flush=True)
    time.sleep(1)
    return True


if __name__ == "__main__":
    main()
