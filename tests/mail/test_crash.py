"""Durability (SPEC §7): ``kill -9`` while a client streams messages loses nothing that got ``250``."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import ssl
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from gateway.testing.live import make_home
from gateway.testing.ports import listen_env, wait_port
from gateway.testing.world import PASSWORD, World, populate

BODY = ("Ligne de compte rendu médical synthétique.\r\n" * 4000).encode()  # ~180 KB


def start(home: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--home", str(home)],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host, port = env["GATEWAY__LISTEN__SUBMISSION"].rsplit(":", 1)
    assert wait_port(host, int(port), 30), "gateway did not start"
    return proc


def stream(world: World, port: int, ca: str, acked: list[str], sent: list[str], stop: threading.Event) -> None:
    try:
        client = smtplib.SMTP("127.0.0.1", port, timeout=20)
        client.starttls(context=ssl.create_default_context(cafile=ca))
        client.login(world.pro, PASSWORD)
        while not stop.is_set():
            mid = f"<{uuid.uuid4().hex}@clinic.test>"
            raw = (f"From: {world.pro}\r\nTo: {world.patient()}\r\nSubject: crash\r\nMessage-ID: {mid}\r\n\r\n"
                   ).encode() + BODY
            sent.append(mid)
            client.sendmail(world.pro, [world.patient()], raw)
            acked.append(mid)
    except (OSError, smtplib.SMTPException):
        return  # the server died under us: expected


def stored_messages(home: Path, ins: str) -> list[bytes]:
    from gateway.accounts.patients import by_ins
    from gateway.app.context import Location, open_services
    from gateway.mailstore.folders import find_folder
    from gateway.mailstore.messages import list_folder, read_message

    svc = open_services(Location(home / "gateway.toml", home, True))
    try:
        with svc.db.read() as session:
            patient = by_ins(session, svc.keys, ins)
            assert patient is not None and patient.mailbox_id is not None
            folder = find_folder(session, patient.mailbox_id, "INBOX")
            assert folder is not None
            rows = list_folder(session, patient.mailbox_id, folder.id)
            return [read_message(session, svc.keys, patient.mailbox_id, m.id) for m in rows]
    finally:
        svc.close()


def test_kill_9_during_delivery_loses_nothing_acknowledged(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    world = populate(home)
    env = listen_env()
    port = int(env["GATEWAY__LISTEN__SUBMISSION"].rsplit(":", 1)[1])
    ca = str(home / "tls" / "ca.pem")
    proc = start(home, env)
    acked: list[str] = []
    sent: list[str] = []
    stop = threading.Event()
    client = threading.Thread(target=stream, args=(world, port, ca, acked, sent, stop), daemon=True)
    client.start()
    deadline = time.monotonic() + 60
    while len(acked) < 25 and time.monotonic() < deadline and client.is_alive():
        time.sleep(0.01)
    time.sleep(0.037)  # land somewhere inside a transaction
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    stop.set()
    client.join(30)
    assert len(acked) >= 25, "the client did not get going"

    proc = start(home, env)  # restarts cleanly on the same files (SQLite WAL recovery)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0

    stored = stored_messages(home, world.patients["open"])
    ids = [re.search(rb"Message-ID: (<[^>]+>)", m).group(1).decode() for m in stored]  # type: ignore[union-attr]
    assert len(ids) == len(set(ids)), "a message is stored twice"
    assert set(acked) <= set(ids), f"{len(set(acked) - set(ids))} acknowledged messages lost"
    assert set(ids) <= set(sent)
    for message in stored:  # nothing half-stored: every copy is complete
        assert message.endswith(BODY)
