"""Health documents over SMTP (issue 21): real smtplib on loopback against the submission
listener, both stores (GATEWAY_TEST_STORE). The rules are tested in the pipeline
(tests/mail/test_health_documents.py); here, what the sender sees on the wire and what the
patient's mailbox holds afterwards."""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from gateway.mailstore import summaries
from gateway.store.models import QueueEntry
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.smtpclient import mailbox_messages, mx_client, submission_client, transaction
from gateway.testing.world import PASSWORD, World, populate
from healthdocs import testing as kit
from routing import reasons
from routing.ins import synthetic_ins

RNG = random.Random(2122)
OTHER = synthetic_ins(RNG)


@pytest.fixture(scope="module")
def world_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway]]:
    home = make_home(tmp_path_factory.mktemp("gw") / "home")
    world = populate(home)
    with live_gateway(home) as live:
        yield world, live


def _send(live: LiveGateway, world: World, rcpts: list[str], archive: bytes, subject: str = "Document de santé"
          ) -> tuple[int, str] | None:
    raw = kit.message(archive, sender=world.pro, to=rcpts[0], subject=subject)
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, rcpts, raw)
        assert client.noop()[0] == 250  # the session is still there
    return t.data


def _patient_summaries(live: LiveGateway, ins: str) -> list[summaries.Summary]:
    """The summaries of the patient's messages, as computed from the stored bytes (the one sealed at
    delivery is the same: tests/store/test_summaries.py)."""
    return [summaries.compute(raw) for raw in mailbox_messages(live, ins=ins)]


def _reply(reason: str) -> tuple[int, str]:
    outcome = reasons.CATALOGUE[reason]
    return outcome.code, f"{outcome.enhanced} {outcome.text}"


def test_matching_archive_delivered_and_listed(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    ins = world.patients["open"]
    before = len(_patient_summaries(live, ins))
    subject = f"documents {uuid.uuid4().hex}"
    data = _send(live, world, [world.patient()], kit.several(ins), subject)
    assert data is not None and data[0] == 250
    listed = _patient_summaries(live, ins)
    assert len(listed) == before + 1
    [health] = [x.health for x in listed if x.shown.subject == subject]
    assert health is not None
    assert [d.title for d in health.documents] == ["Compte rendu d'hospitalisation", "Résultats de biologie",
                                                  "Ordonnance"]


@pytest.mark.parametrize(("archive", "reason"), [
    (lambda ins: kit.other_patient(ins, OTHER), "data.document_other_patient"),
    (kit.invisible, "data.document_invisible_patient"),
])
def test_refused_with_the_catalogue_reply_nothing_stored(world_live: tuple[World, LiveGateway],
                                                         archive: object, reason: str) -> None:
    world, live = world_live
    ins = world.patients["open"]
    before = len(mailbox_messages(live, ins=ins))
    data = _send(live, world, [world.patient()], archive(ins))  # type: ignore[operator]
    assert data == _reply(reason)
    assert len(mailbox_messages(live, ins=ins)) == before


def test_refused_patient_beside_a_colleague_sender_gets_a_dsn(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    ins = world.patients["open"]
    before, colleague = len(mailbox_messages(live, ins=ins)), len(mailbox_messages(live, pro=world.colleague))
    with live.services.db.read() as s:
        dsns = s.execute(select(func.count()).select_from(QueueEntry).where(QueueEntry.kind == "dsn")).scalar_one()
    data = _send(live, world, [world.patient(), world.colleague], kit.other_patient(ins, OTHER))
    assert data is not None and data[0] == 250  # the colleague took it
    assert len(mailbox_messages(live, ins=ins)) == before
    assert len(mailbox_messages(live, pro=world.colleague)) == colleague + 1
    with live.services.db.read() as s:
        assert s.execute(select(func.count()).select_from(QueueEntry)
                         .where(QueueEntry.kind == "dsn")).scalar_one() == dsns + 1


@pytest.mark.parametrize("archive", [lambda ins: kit.zip_bomb(ins, size=64 * 1024 * 1024), kit.traversal, kit.xxe,
                                     lambda ins: kit.xxe(ins, in_cda=True)])
def test_hostile_archives_neither_crash_nor_store_anything_unsafe(world_live: tuple[World, LiveGateway],
                                                                  archive: object) -> None:
    world, live = world_live
    ins = world.patients["open"]
    sent = archive(ins)  # type: ignore[operator]
    subject = f"hostile {uuid.uuid4().hex}"
    data = _send(live, world, [world.patient()], sent, subject)
    assert data is not None and data[0] == 250  # delivered as an ordinary attachment
    [stored] = [m for m in mailbox_messages(live, ins=ins) if subject.encode() in m]
    assert base64.encodebytes(sent)[:76] in stored.replace(b"\r\n", b"\n")  # the archive as sent, unchanged
    assert b"root:" not in stored  # no entity was resolved into anything stored
    [health] = [x.health for x in _patient_summaries(live, ins) if x.shown.subject == subject]
    assert health is not None and [a.status for a in health.archives] == ["damaged"]
    assert all(d.level == 0 for d in health.documents)  # nothing listed as readable


@pytest.mark.parametrize(("archive", "code"), [(lambda ins: kit.level1(ins), 250),
                                               (lambda ins: kit.other_patient(ins, OTHER), 550)])
def test_over_the_mx_from_a_trusted_operator(world_live: tuple[World, LiveGateway], archive: object,
                                             code: int) -> None:
    """The same check for mail from another operator (its server then returns the DSN to its sender)."""
    world, live = world_live
    ins = world.patients["open"]
    before = len(mailbox_messages(live, ins=ins))
    sender = f"dr.b@{world.peer.domain}"
    raw = kit.message(archive(ins), sender=sender, to=world.patient())  # type: ignore[operator]
    with mx_client(live, world.peer.client_context(live.ca_file)) as client:
        t = transaction(client, sender, [world.patient()], world.peer.sign(raw))
    assert t.rcpts == [(250, "2.1.5 recipient OK")]
    if code == 250:
        assert t.data is not None and t.data[0] == 250, t.data
        assert len(mailbox_messages(live, ins=ins)) == before + 1
    else:
        assert t.data == _reply("data.document_other_patient")
        assert len(mailbox_messages(live, ins=ins)) == before
