"""Several stateless nodes on one PostgreSQL (issue 7): two real ``gateway serve`` processes.

- concurrent deliveries of 500 messages to one folder through both nodes get 500 distinct
  UIDs, increasing in commit order;
- 1,000 messages queued for a peer that is down, both nodes' workers running: when it comes
  up each message arrives exactly once;
- killing one node mid-delivery loses nothing that got ``250``;
- ``serve`` refuses to start on a schema that is behind when auto-migration is off.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from gateway.accounts import ins_index
from gateway.app.context import Location, open_services
from gateway.store.models import Folder, Message, Patient, QueueEntry
from gateway.store.services import Services
from gateway.testing import pg
from gateway.testing.live import make_home
from gateway.testing.ports import free_port, listen_env, wait_port
from gateway.testing.sink import running_sink
from gateway.testing.world import PASSWORD, World, issue_client_cert, populate

pytestmark = pytest.mark.postgres

PEER = "cabinet-down.example"


@dataclass
class Node:
    name: str
    home: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def port(self, listener: str) -> int:
        return int(self.env[f"GATEWAY__LISTEN__{listener.upper()}"].rsplit(":", 1)[1])

    def start(self) -> None:
        log = open(self.home / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--home", str(self.home)],
                                     env={**os.environ, **self.env}, stdout=log, stderr=log)
        assert wait_port("127.0.0.1", self.port("submission"), 30), (self.home / f"{self.name}.log").read_text()[-3000:]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class Cluster:
    url: str
    world: World
    nodes: list[Node]
    peer_port: int

    def services(self) -> Services:
        home = self.nodes[0].home
        return open_services(Location(home / "gateway.toml", home, True), migrate_schema=False)


@pytest.fixture
def cluster(pg_admin: str, tmp_path: Path) -> Iterator[Cluster]:
    with pg.temporary_database("hmg_cluster") as url:
        home_a = make_home(tmp_path / "a", storage_url=url)
        world = populate(home_a)
        peer_port = free_port()
        svc = open_services(Location(home_a / "gateway.toml", home_a, True))
        try:
            from gateway.accounts.pros import add_trusted_domain

            with svc.db.write() as s:
                add_trusted_domain(s, PEER, route=f"127.0.0.1:{peer_port}", dkim_policy="none", status="active",
                                   origin="manual", tls_required=True)
        finally:
            svc.close()
        home_b = tmp_path / "b"
        shutil.copytree(home_a, home_b)  # same master keys, TLS and database: a second node
        nodes = []
        for name, home in (("a", home_a), ("b", home_b)):
            env = {**listen_env(), "GATEWAY__STORAGE__AUTO_MIGRATE": "false",
                   "GATEWAY__QUEUE__WORKER_INTERVAL_SECONDS": "0.2", "GATEWAY__SERVER__HOSTNAME": f"node-{name}.test"}
            nodes.append(Node(name, home, env))
        c = Cluster(url, world, nodes, peer_port)
        for node in nodes:
            node.start()
        try:
            yield c
        finally:
            for node in nodes:
                node.stop()


def sender(node: Node, world: World, ca: str, count: int, to: str, acked: list[str], lock: threading.Lock,
           stop: threading.Event | None = None) -> None:
    try:
        client = smtplib.SMTP("127.0.0.1", node.port("submission"), timeout=30)
        client.starttls(context=ssl.create_default_context(cafile=ca))
        client.login(world.pro, PASSWORD)
        for _ in range(count):
            if stop is not None and stop.is_set():
                break
            mid = f"<{uuid.uuid4().hex}@clinic.test>"
            raw = (f"From: {world.pro}\r\nTo: {to}\r\nSubject: n\r\nMessage-ID: {mid}\r\n\r\ncorps\r\n").encode()
            client.sendmail(world.pro, [to], raw)
            with lock:
                acked.append(mid)
        client.quit()
    except (OSError, smtplib.SMTPException) as exc:
        if stop is None:
            print("sender stopped:", repr(exc)[:300])


def run_senders(cluster: Cluster, per_thread: int, threads_per_node: int, to: str,
                stop: threading.Event | None = None) -> list[str]:
    ca = str(cluster.nodes[0].home / "tls" / "ca.pem")
    acked: list[str] = []
    lock = threading.Lock()
    workers = [threading.Thread(target=sender, args=(node, cluster.world, ca, per_thread, to, acked, lock, stop))
               for node in cluster.nodes for _ in range(threads_per_node)]
    for w in workers:
        w.start()
    return acked if stop is not None else _join(workers, acked)


def _join(workers: list[threading.Thread], acked: list[str]) -> list[str]:
    for w in workers:
        w.join(300)
    return acked


def inbox_uids(cluster: Cluster) -> list[tuple[int, int]]:
    """(message id, uid) of the open patient's INBOX, in commit (row id) order."""
    svc = cluster.services()
    try:
        with svc.db.read() as s:
            mailbox = s.execute(select(Patient.mailbox_id)
                                .where(ins_index.match(svc.keys, s, cluster.world.patients["open"]))
                                ).scalar_one()
            folder = s.execute(select(Folder.id).where(Folder.mailbox_id == mailbox, Folder.name == "INBOX")
                               ).scalar_one()
            return [(int(i), int(u)) for i, u in s.execute(
                select(Message.id, Message.uid).where(Message.folder_id == folder).order_by(Message.id)).all()]
    finally:
        svc.close()


def test_concurrent_deliveries_through_both_nodes_get_distinct_increasing_uids(cluster: Cluster) -> None:
    acked = run_senders(cluster, per_thread=50, threads_per_node=5, to=cluster.world.patient())
    assert len(acked) == 500
    rows = inbox_uids(cluster)
    uids = [u for _, u in rows]
    assert len(uids) == 500 and len(set(uids)) == 500
    assert uids == sorted(uids), "UIDs must increase in commit order"


def test_queue_for_a_down_peer_is_delivered_exactly_once_by_two_workers(cluster: Cluster) -> None:
    acked = run_senders(cluster, per_thread=100, threads_per_node=5, to=f"dr.x@{PEER}")
    assert len(acked) == 1000
    svc = cluster.services()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # both workers have tried (and failed) at least once
            with svc.db.read() as s:
                untried = s.execute(select(QueueEntry.id).where(QueueEntry.attempts == 0).limit(1)).first()
            if untried is None:
                break
            time.sleep(0.2)
        home = cluster.nodes[0].home
        cert, key, _ = issue_client_cert(home, home / "peer-down", "127.0.0.1", "Cabinet Down")
        with running_sink(cluster.peer_port, str(cert), str(key)) as sink:
            with svc.db.write() as s:  # the retry time has come
                s.execute(update(QueueEntry).where(QueueEntry.status == "pending")
                          .values(next_attempt_at=datetime.now(UTC)))
            deadline = time.monotonic() + 120
            while len(sink.message_ids()) < 1000 and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2.0)  # anything delivered twice would show up now
            received = sink.message_ids()
        assert sorted(received) == sorted(acked), f"{len(received)} received for {len(acked)} queued"
        with svc.db.read() as s:
            statuses = set(s.execute(select(QueueEntry.status).where(QueueEntry.kind == "message")).scalars())
        assert statuses == {"sent"}
    finally:
        svc.close()


def test_killing_a_node_mid_delivery_loses_nothing_acknowledged(cluster: Cluster) -> None:
    stop = threading.Event()
    acked = run_senders(cluster, per_thread=400, threads_per_node=3, to=cluster.world.patient(), stop=stop)
    deadline = time.monotonic() + 60
    while len(acked) < 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    cluster.nodes[1].kill()
    time.sleep(0.5)
    stop.set()
    time.sleep(2.0)
    ids = list(acked)
    svc = cluster.services()
    try:
        from gateway.mailstore.messages import read_message

        with svc.db.read() as s:
            mailbox = s.execute(select(Patient.mailbox_id)
                                .where(ins_index.match(svc.keys, s, cluster.world.patients["open"]))
                                ).scalar_one()
            folder = s.execute(select(Folder.id).where(Folder.mailbox_id == mailbox, Folder.name == "INBOX")
                               ).scalar_one()
            stored = [read_message(s, svc.keys, mailbox or 0, m.id) for m in
                      s.execute(select(Message).where(Message.folder_id == folder)).scalars()]
    finally:
        svc.close()
    import re

    found = [re.search(rb"Message-ID: (<[^>]+>)", m).group(1).decode() for m in stored]  # type: ignore[union-attr]
    assert len(found) == len(set(found))
    assert set(ids) <= set(found), f"{len(set(ids) - set(found))} acknowledged messages lost"


def test_serve_refuses_an_old_schema_without_auto_migration(pg_admin: str, tmp_path: Path) -> None:
    with pg.temporary_database("hmg_old") as url:
        home = make_home(tmp_path / "old", storage_url=url)
        env = {**os.environ, **listen_env(), "GATEWAY__STORAGE__AUTO_MIGRATE": "false"}
        result = subprocess.run([sys.executable, "-m", "gateway", "serve", "--home", str(home)], env=env,
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 1 and "run 'gateway db upgrade' first" in result.stderr
        upgrade = subprocess.run([sys.executable, "-m", "gateway", "db", "upgrade", "--home", str(home)], env=env,
                                 capture_output=True, text=True, timeout=60, check=False)
        assert upgrade.returncode == 0, upgrade.stderr


def test_idle_on_one_node_sees_mail_delivered_through_the_other(cluster: Cluster) -> None:
    """IMAP IDLE on node A is woken by a delivery through node B (PostgreSQL NOTIFY), within a second."""
    import imaplib
    import select as selectmod

    world = cluster.world
    ca = str(cluster.nodes[0].home / "tls" / "ca.pem")
    client = imaplib.IMAP4("127.0.0.1", cluster.nodes[0].port("imap"), timeout=30)
    try:
        client.starttls(ssl.create_default_context(cafile=ca))
        client.login(world.colleague, PASSWORD)
        client.select("INBOX")
        sock = client.socket()
        tag = b"i1"
        sock.sendall(tag + b" IDLE\r\n")
        assert client.readline().startswith(b"+")
        mid = f"<{uuid.uuid4().hex}@clinic.test>"
        raw = (f"From: {world.pro}\r\nTo: {world.colleague}\r\nSubject: idle\r\nMessage-ID: {mid}\r\n"
               "\r\nx\r\n").encode()
        node_b = cluster.nodes[1]
        with smtplib.SMTP("127.0.0.1", node_b.port("submission"), timeout=30) as smtp:
            smtp.starttls(context=ssl.create_default_context(cafile=ca))
            smtp.login(world.pro, PASSWORD)
            smtp.sendmail(world.pro, [world.colleague], raw)
            acked_at = time.monotonic()
        ready, _, _ = selectmod.select([sock], [], [], 5.0)
        assert ready, "no untagged response during IDLE"
        line = client.readline()
        assert line.startswith(b"* ") and line.rstrip().endswith(b"EXISTS"), line
        assert time.monotonic() - acked_at < 1.0
        sock.sendall(b"DONE\r\n")
        while not (line := client.readline()).startswith(tag):
            pass
        assert line.startswith(b"i1 OK")
    finally:
        try:
            client.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def _read_until(client: imaplib.IMAP4, want: bytes, seconds: float) -> list[bytes]:
    """Lines from the server until one contains ``want`` (AssertionError after ``seconds``)."""
    lines: list[bytes] = []
    deadline = time.monotonic() + seconds
    try:
        while True:
            client.socket().settimeout(max(deadline - time.monotonic(), 0.01))
            line = client.readline()
            lines.append(line)
            if want in line:
                return lines
    except TimeoutError:
        raise AssertionError(f"nothing containing {want!r} within {seconds} s; got {lines}") from None
    finally:
        client.socket().settimeout(30)


def test_notify_on_one_node_hears_of_changes_made_through_the_other(cluster: Cluster) -> None:
    """NOTIFY (RFC 5465) on node A, no command sent: an APPEND, a CREATE and new mail in the
    selected mailbox, all made through node B, reach the client within a second (PostgreSQL
    LISTEN/NOTIFY wakes node A's watcher)."""
    world = cluster.world
    ca = ssl.create_default_context(cafile=str(cluster.nodes[0].home / "tls" / "ca.pem"))
    watcher = imaplib.IMAP4("127.0.0.1", cluster.nodes[0].port("imap"), timeout=30)
    actor = imaplib.IMAP4("127.0.0.1", cluster.nodes[1].port("imap"), timeout=30)
    try:
        for client in (watcher, actor):
            client.starttls(ca)
            client.login(world.pro, PASSWORD)
        watcher.select("INBOX")
        sock = watcher.socket()
        sock.sendall(b"n1 NOTIFY SET STATUS (selected (MessageNew MessageExpunge))"
                     b" (personal (MessageNew MessageExpunge MailboxName))\r\n")
        lines = _read_until(watcher, b"n1 ", 10)
        assert lines[-1].startswith(b"n1 OK"), lines
        assert any(line.startswith(b"* STATUS Archive (MESSAGES ") for line in lines), lines
        assert not any(b"STATUS INBOX" in line for line in lines), lines  # the selected one: no STATUS
        raw = f"From: {world.colleague}\r\nTo: {world.pro}\r\nSubject: notify\r\n\r\nx\r\n".encode()
        when = imaplib.Time2Internaldate(time.time())
        cases = [(("APPEND", "Archive"), b"* STATUS Archive ("), (("CREATE", "Projects"), b'"/" Projects'),
                 (("APPEND", "INBOX"), b" EXISTS")]
        for (verb, mailbox), want in cases:
            typ, _ = actor.append(mailbox, "", when, raw) if verb == "APPEND" else actor.create(mailbox)
            assert typ == "OK"
            done_at = time.monotonic()
            lines = _read_until(watcher, want, 5)
            assert time.monotonic() - done_at < 1.0, lines
        sock.sendall(b"n2 NOTIFY NONE\r\n")
        assert _read_until(watcher, b"n2 ", 10)[-1].startswith(b"n2 OK")
    finally:
        for client in (watcher, actor):
            try:
                client.logout()
            except (OSError, imaplib.IMAP4.error):
                pass


def test_an_account_disabled_through_one_node_loses_its_sessions_on_the_other(cluster: Cluster) -> None:
    """Sessions on node A of an account disabled with node B's configuration (the same database):
    an IDLE in a selected mailbox gets ``* BYE`` within a second with no command (the disable's
    pg_notify wakes node A), a session between commands at its next command, and an SMTP
    submission session ``421 4.7.0`` at its next MAIL FROM; node A's sessions of another account
    go on."""
    from gateway.app.cli.main import main

    world = cluster.world
    node_a, node_b = cluster.nodes
    ca = ssl.create_default_context(cafile=str(node_a.home / "tls" / "ca.pem"))
    idle, between, other = (imaplib.IMAP4("127.0.0.1", node_a.port("imap"), timeout=30) for _ in range(3))
    smtp = smtplib.SMTP("127.0.0.1", node_a.port("submission"), timeout=30)
    try:
        for client, who in ((idle, world.colleague), (between, world.colleague), (other, world.pro)):
            client.starttls(ca)
            client.login(who, PASSWORD)
        idle.select("INBOX")
        between.select("INBOX")
        smtp.starttls(context=ca)
        smtp.login(world.colleague, PASSWORD)
        idle.send(b"i1 IDLE\r\n")
        assert idle.readline().startswith(b"+")
        assert main(["--home", str(node_b.home), "pro", "disable", world.colleague]) == 0
        disabled_at = time.monotonic()
        idle.socket().settimeout(10)
        assert idle.readline() == b"* BYE Account disabled by the administrator; closing connection\r\n"
        assert time.monotonic() - disabled_at < 1.0
        assert idle.readline() == b""  # closed
        with pytest.raises(imaplib.IMAP4.abort, match="Account disabled"):
            between.noop()
        assert smtp.mail(world.colleague) == (
            421, b"4.7.0 account disabled by the administrator, closing connection")
        assert other.noop()[0] == "OK"
    finally:
        for client in (idle, between):
            client.shutdown()
        other.logout()
        smtp.close()
