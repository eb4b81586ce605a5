"""Gateway nodes for the benchmarks: one node, or several on one PostgreSQL database.

Node i listens on 127.0.0.(i+1), every listener on the same port as node 0's, so a client
reaches node i by its address alone (imaptest's clients alternate between the addresses a
host name resolves to; ``bench/compare.py`` sends half of each load to each address). Every
node after the first runs from a copy of node 0's home: same keys, TLS files and database.
Each runs ``bench/gateway_serve.py`` (``gateway serve`` without the outbound worker).

:class:`Gateway` is ``bench/compare.py``'s gateway under test (also ``bench/budgets.py``'s), one
node on SQLite or two on PostgreSQL; ``bench/imaptest_stress.py`` uses :func:`start_nodes`.
"""

# ruff: noqa: S603 - our own venv's Python running bench/gateway_serve.py

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import create_engine, text

from gateway.testing import pg
from gateway.testing.ports import free_port, wait_port

HERE = Path(__file__).resolve().parent
LISTENERS = ("mx", "submission", "submissions", "imap", "imaps", "http")


def node_host(index: int) -> str:
    """Node ``index``'s loopback address (all of 127.0.0.0/8 is loopback on Linux)."""
    return f"127.0.0.{index + 1}"


class Node:
    """One ``bench/gateway_serve.py`` process; ``ports`` maps listener names (``LISTENERS``, and
    ``metrics`` for ``[metrics] listen``) to ports, all bound on :func:`node_host`."""

    def __init__(self, home: Path, index: int, ports: Mapping[str, int], *, env: Mapping[str, str] | None = None,
                 hostname: str | None = None, ready: tuple[str, ...] = ("imap",), repo: Path | None = None) -> None:
        self.home, self.index, self.ports, self.ready = home, index, dict(ports), ready
        self.repo = repo or HERE.parent  # the checkout whose bench/gateway_serve.py (and gateway) runs
        self.host = node_host(index)
        self.name = f"node{index}"
        self.env = {**os.environ, **(env or {})}
        for listener, port in self.ports.items():
            key = "METRICS__LISTEN" if listener == "metrics" else f"LISTEN__{listener.upper()}"
            self.env[f"GATEWAY__{key}"] = f"{self.host}:{port}"
        if hostname:
            self.env["GATEWAY__SERVER__HOSTNAME"] = hostname
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} is not running"
        return self.proc.pid

    def start(self) -> None:
        with (self.home / f"{self.name}.log").open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, str(self.repo / "bench" / "gateway_serve.py"),
                                          str(self.home)], env=self.env, cwd=self.repo, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for listener in self.ready:
            if not wait_port(self.host, self.ports[listener], 60):
                self.stop()
                raise RuntimeError(f"{self.name} did not listen on {self.host}:{self.ports[listener]}; "
                                   f"see {self.home}/{self.name}.log")

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


def start_nodes(stack: ExitStack, home: Path, count: int, ports: Mapping[str, int], *,
                env: Mapping[str, str] | None = None, hostname: str | None = None,
                ready: tuple[str, ...] = ("imap",), repo: Path | None = None) -> list[Node]:
    """Start ``count`` nodes from ``home`` (prepared, its database shared when ``count`` > 1);
    each is stopped when ``stack`` closes. Node i > 0 runs from a copy of ``home`` beside it;
    ``hostname`` (``server.hostname``) is prefixed ``nodeI.`` per node when there are several."""
    nodes = []
    for i in range(count):
        node_home = home
        if i:
            node_home = home.parent / f"{home.name}-node{i}"
            shutil.copytree(home, node_home)  # same keys, TLS and database: another node
        name = f"node{i}.{hostname}" if hostname and count > 1 else hostname
        node = Node(node_home, i, ports, env=env, hostname=name, ready=ready, repo=repo)
        stack.callback(node.stop)
        node.start()
        nodes.append(node)
    return nodes


def shared_database(stack: ExitStack, prefix: str) -> str:
    """A new, empty PostgreSQL database for the nodes, dropped when ``stack`` closes; its URL."""
    return stack.enter_context(pg.temporary_database(prefix))


def database_backends(url: str) -> list[int]:
    """Process ids of the PostgreSQL backends connected to ``url``'s database now: their CPU and
    memory are the database's share of the work, which an embedded SQLite spends inside the
    gateway. Read from /proc (a backend's title is ``postgres: ... USER DATABASE HOST(PORT) STATE``),
    cheap enough for a sampler, and without a connection of its own."""
    name = f" {url.rsplit('/', 1)[1]} ".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            title = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres:") and name in title:
            found.append(int(entry))
    return found


def count_messages(url: str) -> int:
    """Messages stored (sealed) in the nodes' shared database."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM messages")).scalar_one())
    finally:
        engine.dispose()


class Gateway:
    """The gateway under test: one node on embedded SQLite, or ``nodes`` nodes (bench/nodes.py: node i
    on 127.0.0.(i+1), same ports) sharing a fresh PostgreSQL database that is dropped at :meth:`stop`."""

    def __init__(self, root: Path, *, smtp_processes: int = 1, nodes: int = 1, name: str = "gateway") -> None:
        self.name = name
        self.home = root / name
        self.node_count = nodes
        self.smtp_processes = smtp_processes
        self.ports = {listener: free_port() for listener in (*LISTENERS, "metrics")}
        self.repo: Path | None = None  # another checkout to run (bench/budgets.py --repo); None: this one
        self.url: str | None = None  # the shared PostgreSQL database (nodes > 1)
        self.nodes: list[Node] = []
        self.stack = ExitStack()
        self.patient = ""
        self.pro = ""
        self.password = ""

    @property
    def env(self) -> dict[str, str]:
        """Settings for every node on top of the environment (listen addresses: bench/nodes.py)."""
        return {
            # plaintext IMAP LOGIN on loopback, as Dovecot is configured here (no TLS on either side)
            "GATEWAY__TLS__ALLOW_AUTH_WITHOUT_TLS": "true",
            "GATEWAY__LOGGING__LEVEL": "warning",
            "GATEWAY__SMTP__PROCESSES": str(self.smtp_processes),
        }

    def prepare(self) -> None:
        from gateway.testing.live import make_home
        from gateway.testing.world import PASSWORD, populate

        if self.node_count > 1:
            self.url = shared_database(self.stack, "hmg_bench")
        make_home(self.home, hostname="mx.bench.gateway.test", storage_url=self.url)
        world = populate(self.home)
        self.patient, self.pro, self.password = world.patient(), world.pro, PASSWORD
        subprocess.run([str(Path(sys.executable).with_name("gateway")), "--home", str(self.home), "domain", "trust",
                        "add", "bench.test", "--no-tls-required", "--dkim", "none",
                        "--description", "benchmark private link"], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self.nodes = start_nodes(self.stack, self.home, self.node_count, self.ports, env=self.env,
                                 ready=("mx", "imap"), repo=self.repo)

    def endpoints(self, listener: str) -> list[tuple[str, int]]:
        """(address, port) of ``listener`` on every node."""
        return [(node.host, self.ports[listener]) for node in self.nodes]

    @property
    def pid(self) -> int:
        """The first node's serving process (profiles, VmHWM)."""
        return self.nodes[0].pid

    def pids(self) -> list[int]:
        """Every node's process tree, and the PostgreSQL backends serving the shared database."""
        return [node.pid for node in self.nodes] + (database_backends(self.url) if self.url else [])

    def stored(self) -> int:
        """Messages stored (sealed) in the database: what the patient's and pro's folders hold."""
        if self.url:
            return count_messages(self.url)
        with sqlite3.connect(f"file:{self.home / 'gateway.db'}?mode=ro", uri=True, timeout=30) as db:
            return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])

    def stop(self) -> None:
        """Stop every node, then drop the shared database (if any)."""
        self.stack.close()
        self.nodes = []
