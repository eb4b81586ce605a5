"""Master key rotation mid-load, no restart (issue 14, "Done when" 1).

Two ``gateway serve`` nodes on one PostgreSQL database (each with its own copy of the key
file, one of them with two SMTP processes) and one node on SQLite (its own installation).
SMTP submission, IMAP reads and patient web logins run against all three; mid-load the
PostgreSQL installation rotates by the documented multi-node procedure (``keys rotate
--prepare`` on node A, its key file copied to node B, ``keys rotate`` on A) and the SQLite
one by a plain ``keys rotate``, both in small batches. Shown: no 4xx/5xx SMTP reply, no IMAP
``NO``/``BAD``, no HTTP 5xx; every message acknowledged before and after is readable on every
node; the same processes served throughout.
"""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gateway.accounts import ins_index
from gateway.accounts.pros import add_pro, hosted_domain
from gateway.app.context import Location, open_services
from gateway.mailstore.messages import read_message
from gateway.store.models import DataKey, Folder, Message, Patient
from gateway.testing import pg
from gateway.testing.bulkkeys import add_patients
from gateway.testing.live import make_home
from gateway.testing.world import HOSTED, PASSWORD, World, populate
from routing.ins import synthetic_ins
from tests.keys.kit import (
    PATIENT_PASSWORD,
    ServeProcess,
    activate,
    cli,
    csrf_of,
    gateway,
    imap_read,
    send,
    submission,
    totp,
)
from tests.keys.test_backup import patient_message_rows

pytestmark = pytest.mark.postgres

LOAD_BEFORE_S = 4.0
LOAD_AFTER_S = 6.0
MIN_ACKED = 60  # messages acknowledged before the rotation, and after it
BULK_PATIENTS = 1500
BATCH = 50  # small batches: the rotation spans many transactions while the load runs


@dataclass
class Installation:
    name: str
    world: World
    nodes: list[ServeProcess]
    pros: list[str]  # read over IMAP
    bulk: list[str]  # INS of open patients without a web account
    web: list[str]  # INS of activated patients
    secrets: dict[str, str] = field(default_factory=dict)


@dataclass
class Record:
    """What the clients saw."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: list[tuple[str, str, str, float]] = field(default_factory=list)  # installation, recipient, mid, when
    problems: list[str] = field(default_factory=list)
    smtp: int = 0
    imap: int = 0
    web: int = 0

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)


def _setup(name: str, root: Path, url: str | None, seed: int) -> tuple[Path, World, list[str], list[str], list[str]]:
    home = make_home(root / name, storage_url=url, extra_config="\n[web]\nlogin_delay_after = 50\n")
    world = populate(home, seed=seed)
    svc = open_services(Location(home / "gateway.toml", home, True))
    rng = random.Random(seed)
    try:
        pros = [f"dr.{name}{i}@{HOSTED}" for i in range(6)]
        with svc.db.write() as s:
            domain = hosted_domain(s, HOSTED)
            assert domain is not None
            for address in pros:
                add_pro(s, svc.keys, address, domain, password=PASSWORD)
        bulk = add_patients(svc.db, svc.ring, BULK_PATIENTS, seed=seed + 1000, batch=BULK_PATIENTS)
    finally:
        svc.close()
    web: list[str] = []
    while len(web) < 4:
        ins = synthetic_ins(rng)
        if ins not in bulk and ins not in world.patients.values() and ins not in web:
            web.append(ins)
    return home, world, [*pros, world.colleague, world.pharmacy], bulk[:40], web


def _code(home: Path, ins: str) -> str:
    status, out, err = cli("--home", str(home), "patient", "add", ins)
    assert status == 0, err
    found = re.search(r"activation code: (\S+)", out)
    assert found
    return found.group(1)


@pytest.fixture
def installations(pg_admin: str, tmp_path: Path) -> Iterator[list[Installation]]:
    with pg.temporary_database("hmg_rotation") as url:
        home_a, world_pg, pros_pg, bulk_pg, web_pg = _setup("a", tmp_path, url, 11)
        codes_pg = {ins: _code(home_a, ins) for ins in web_pg}
        home_b = tmp_path / "b"
        shutil.copytree(home_a, home_b)  # a second node: same database, its own copy of the key file
        home_s, world_s, pros_s, bulk_s, web_s = _setup("s", tmp_path, None, 12)
        codes_s = {ins: _code(home_s, ins) for ins in web_s}
        node_a = ServeProcess.make(home_a, GATEWAY__SERVER__HOSTNAME="node-a.test", GATEWAY__SMTP__PROCESSES="2")
        node_b = ServeProcess.make(home_b, GATEWAY__SERVER__HOSTNAME="node-b.test")
        node_s = ServeProcess.make(home_s)
        nodes = [node_a, node_b, node_s]
        try:
            for node in nodes:
                node.start()
            node_a.wait_log("SMTP process accepting")
            cluster = Installation("pg", world_pg, [node_a, node_b], pros_pg, bulk_pg, web_pg)
            single = Installation("sqlite", world_s, [node_s], pros_s, bulk_s, web_s)
            # Activation on the node that will NOT log the patient in later (its key then uncached there).
            for inst, codes in ((cluster, codes_pg), (single, codes_s)):
                for i, ins in enumerate(inst.web):
                    node = inst.nodes[(i + 1) % len(inst.nodes)]
                    status, secret = activate(f"http://127.0.0.1:{node.port('http')}", ins, codes[ins])
                    assert status == 200, (inst.name, status)
                    inst.secrets[ins] = secret
            yield [cluster, single]
        finally:
            for node in nodes:
                node.stop()


def _smtp_load(inst: Installation, node: ServeProcess, record: Record, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    world = inst.world
    targets = ([f"{ins}@{world.patient_domain}" for ins in inst.bulk + inst.web] + inst.pros)
    while not stop.is_set():
        try:
            with submission(node.port("submission"), node.ca, world.pro, PASSWORD) as client:
                for _ in range(5):  # a new connection now and then: node A's two SMTP processes both serve
                    to = rng.choice(targets)
                    mid, code, text = send(client, world.pro, to)
                    with record.lock:
                        record.smtp += 1
                        if code == 250:
                            record.acked.append((inst.name, to, mid, time.monotonic()))
                        else:
                            record.problems.append(f"SMTP {node.home.name} to {to}: {code} {text}")
                    time.sleep(0.02)
        except Exception as exc:  # a refused connection or login is a failure too
            record.problem(f"SMTP {node.home.name}: {exc!r}")
            time.sleep(0.2)


def _imap_load(inst: Installation, node: ServeProcess, record: Record, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        user = rng.choice(inst.pros)
        read = imap_read(node.port("imap"), node.ca, user, PASSWORD)
        with record.lock:
            record.imap += 1
            record.problems += [f"IMAP {node.home.name} {user}: {r}" for r in read.refusals]
        time.sleep(0.05)


def _web_load(inst: Installation, node: ServeProcess, patients: list[str], record: Record, stop: threading.Event,
              started: threading.Event, clients: dict[str, httpx.Client]) -> None:
    """Once the rotation has started: log each patient in (its key not cached on this node), then
    keep asking for the inbox (which opens every message summary with the patient's key)."""
    started.wait(60)
    base = f"http://127.0.0.1:{node.port('http')}"
    for ins in patients:
        c = httpx.Client(follow_redirects=True, timeout=60)
        r = c.post(f"{base}/connexion", data={"ins": ins, "password": PATIENT_PASSWORD,
                                              "code": totp(inst.secrets[ins], 1),
                                              "csrf": csrf_of(c.get(f"{base}/connexion").text)})
        if r.status_code != 200 or "Mes messages" not in r.text:
            record.problem(f"web login {node.home.name}: HTTP {r.status_code}")
        clients[ins] = c
    while not stop.is_set():
        for ins in patients:
            r = clients[ins].get(f"{base}/")
            with record.lock:
                record.web += 1
                if r.status_code != 200 or "Mes messages" not in r.text:
                    record.problems.append(f"web inbox {node.home.name}: HTTP {r.status_code}")
        time.sleep(0.1)


def _rotate(inst: Installation, record: Record, done: dict[str, float]) -> None:
    a = inst.nodes[0].home
    if len(inst.nodes) > 1:  # several nodes, each its own key file: prepare, copy, then rotate
        prepared = gateway("keys", "rotate", "--prepare", "--home", str(a))
        if prepared.returncode != 0:
            record.problem(f"prepare: {prepared.stderr}")
        for node in inst.nodes[1:]:
            shutil.copy2(a / "keys" / "master.keys", node.home / "keys" / "master.keys")
    result = gateway("keys", "rotate", "--batch-size", str(BATCH), "--home", str(a), timeout=300)
    if result.returncode != 0 or "re-wrapped" not in result.stdout:
        record.problem(f"rotate {inst.name}: {result.returncode} {result.stdout} {result.stderr}")
    done[inst.name] = time.monotonic()
    print(f"{inst.name}: {result.stdout.strip()}")


def _stored(home: Path, ins_or_pro: str, patient_domain: str) -> set[str]:
    """Message-IDs decrypted from the recipient's INBOX with this node's key file."""
    svc = open_services(Location(home / "gateway.toml", home, True), migrate_schema=False)
    try:
        with svc.db.read() as s:
            if ins_or_pro.endswith("@" + patient_domain):
                mailbox = s.execute(select(Patient.mailbox_id)
                                    .where(ins_index.match(svc.keys, s, ins_or_pro.split("@")[0]))).scalar_one()
            else:
                from gateway.store.models import ProAccount

                mailbox = s.execute(select(ProAccount.mailbox_id)
                                    .where(ProAccount.address == ins_or_pro)).scalar_one()
            folder = s.execute(select(Folder.id).where(Folder.mailbox_id == mailbox, Folder.name == "INBOX")
                               ).scalar_one()
            out = set()
            for m in s.execute(select(Message).where(Message.folder_id == folder)).scalars():
                found = re.search(rb"Message-ID: (<[^>]+>)", read_message(s, svc.keys, mailbox or 0, m.id))
                if found:
                    out.add(found.group(1).decode())
            return out
    finally:
        svc.close()


def _wait_for(record: Record, counts: Callable[[tuple[str, str, str, float]], bool], at_least: float) -> None:
    """At least ``at_least`` seconds and MIN_ACKED acknowledged messages that ``counts`` (bounded: 180 s)."""
    start = time.monotonic()
    while time.monotonic() - start < 180:
        with record.lock:
            enough = sum(1 for a in record.acked if counts(a)) >= MIN_ACKED
        if enough and time.monotonic() - start >= at_least:
            return
        time.sleep(0.1)


def test_rotation_mid_load_on_two_postgresql_nodes_and_one_sqlite_node(installations: list[Installation]) -> None:
    record = Record()
    stop = threading.Event()
    rotation_started = threading.Event()
    web_clients: dict[str, httpx.Client] = {}
    pids = {node.home.name: node.proc.pid for inst in installations for node in inst.nodes}  # type: ignore[union-attr]
    threads = []
    seed = 0
    for inst in installations:
        for i, node in enumerate(inst.nodes):
            for _ in range(2):
                seed += 1
                threads.append(threading.Thread(target=_smtp_load, args=(inst, node, record, stop, seed)))
            seed += 1
            threads.append(threading.Thread(target=_imap_load, args=(inst, node, record, stop, seed)))
            logins = [ins for j, ins in enumerate(inst.web) if j % len(inst.nodes) == i]
            threads.append(threading.Thread(target=_web_load, args=(inst, node, logins, record, stop,
                                                                    rotation_started, web_clients)))
    for t in threads:
        t.start()
    rotated: dict[str, float] = {}
    try:
        _wait_for(record, lambda a: True, LOAD_BEFORE_S)
        rotation_at = time.monotonic()
        rotators = [threading.Thread(target=_rotate, args=(inst, record, rotated)) for inst in installations]
        for t in rotators:
            t.start()
        rotation_started.set()
        for t in rotators:
            t.join(300)
        end = max(rotated.values(), default=time.monotonic())
        _wait_for(record, lambda a: a[3] > end, LOAD_AFTER_S)
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    assert record.problems == [], record.problems[:20]
    assert set(rotated) == {"pg", "sqlite"}
    before = [a for a in record.acked if a[3] < rotation_at]
    during = [a for a in record.acked if rotation_at <= a[3] <= max(rotated.values())]
    after = [a for a in record.acked if a[3] > max(rotated.values())]
    print(f"acknowledged: {len(before)} before the rotation, {len(during)} during, {len(after)} after; "
          f"rotation took {', '.join(f'{k} {v - rotation_at:.1f} s' for k, v in rotated.items())}; "
          f"{record.imap} IMAP sessions, {record.web} web pages")
    assert len(before) >= MIN_ACKED and during and len(after) >= MIN_ACKED, (len(before), len(during), len(after))
    assert record.imap > 20 and record.web > 10

    for inst in installations:
        for node in inst.nodes:  # no restart: the same processes, still serving
            assert node.alive() and node.proc is not None and node.proc.pid == pids[node.home.name]
        svc = open_services(Location(inst.nodes[0].home / "gateway.toml", inst.nodes[0].home, True),
                            migrate_schema=False)
        try:
            with svc.db.read() as s:
                assert set(s.execute(select(DataKey.master_version).distinct()).scalars()) == {2}
        finally:
            svc.close()
        mine = [(to, mid) for name, to, mid, _ in record.acked if name == inst.name]
        svc = open_services(Location(inst.nodes[0].home / "gateway.toml", inst.nodes[0].home, True),
                            migrate_schema=False)
        try:
            with svc.db.read() as s:
                web_rows = {ins: patient_message_rows(s, svc.keys, ins) for ins in inst.web}
        finally:
            svc.close()
        assert sum(len(rows) for rows in web_rows.values()) > 5
        recipients = {to for to, _ in mine}
        for node in inst.nodes:
            # pros over IMAP, on this node
            for pro in inst.pros:
                wanted = {mid for to, mid in mine if to == pro}
                read = imap_read(node.port("imap"), node.ca, pro, PASSWORD)
                assert read.refusals == [] and wanted <= read.message_ids, (node.home.name, pro)
            # patients: decrypted with this node's key file; web patients also through its web inbox
            for to in recipients - set(inst.pros):
                wanted = {mid for t, mid in mine if t == to}
                assert wanted <= _stored(node.home, to, inst.world.patient_domain), (node.home.name, to)
            base = f"http://127.0.0.1:{node.port('http')}"
            for ins in inst.web:
                page = web_clients[ins].get(f"{base}/")  # web sessions live in the database: any node
                assert page.status_code == 200 and "Mes messages" in page.text
                for row in web_rows[ins]:
                    r = web_clients[ins].get(f"{base}/messages/{row}")
                    assert r.status_code == 200 and "voici vos résultats" in r.text, (node.home.name, ins, row)
        for node in inst.nodes:
            log = node.log.read_text(errors="replace")
            assert "Traceback" not in log and '"level": "error"' not in log, log[-3000:]
    for c in web_clients.values():
        with contextlib.suppress(Exception):
            c.close()
