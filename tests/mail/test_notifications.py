"""SPEC §7: delivery to an open patient with a personal address queues one content-free notice."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import select

from gateway.outbound.queue import MSG_PURPOSE
from gateway.store.models import QueueEntry
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.smtpclient import submission_client, transaction
from gateway.testing.world import PASSWORD, World, populate

SUBJECT = "Résultat anatomopathologique confidentiel"


def send(world: World, live: LiveGateway) -> None:
    raw = (f"From: Dr Martin <{world.pro}>\r\nTo: {world.patient()}\r\nSubject: {SUBJECT}\r\n"
           f"Message-ID: <{uuid.uuid4().hex}@clinic.test>\r\n\r\nTexte confidentiel\r\n").encode()
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [world.patient()], raw)
    assert t.data is not None and t.data[0] == 250


def notifications(live: LiveGateway) -> list[tuple[QueueEntry, bytes]]:
    svc = live.services
    with svc.db.read() as s:
        rows = list(s.execute(select(QueueEntry).where(QueueEntry.kind == "notification")).scalars())
        out = []
        for row in rows:
            assert row.data_key_id is not None
            out.append((row, svc.keys.system_by_id(s, row.data_key_id).open(MSG_PURPOSE, row.uuid, row.message_sealed)))
        return out


def test_one_content_free_notification_per_interval(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    world = populate(home)
    with live_gateway(home) as live:
        send(world, live)
        send(world, live)
        found = notifications(live)
    assert len(found) == 1
    entry, message = found[0]
    assert entry.domain == "perso.example"
    for secret in (SUBJECT.encode(), "Résultat".encode(), b"Texte confidentiel", b"Martin", world.pro.encode(),
                   world.patients["open"].encode()):
        assert secret not in message
    assert b"Auto-Submitted: auto-generated" in message
