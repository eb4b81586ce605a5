"""Mailbox quotas over SMTP (RFC 9208 limits, RFC 3463 X.2.2), real smtplib on loopback
against the submission listener, both stores (GATEWAY_TEST_STORE).

A mailbox at its limit is refused at RCPT with ``452 4.2.2`` (temporary: the sender keeps
the message and retries, so a patient over quota loses nothing); one that a message would
take over its limit is refused after DATA when no other recipient takes the message, and
nothing is stored; when others take it, it is stored for all (the full mailbox was below
its limit at RCPT) and the next RCPT gets ``452 4.2.2``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from gateway.accounts import ins_index
from gateway.mailstore import quota
from gateway.store.models import Patient, ProAccount
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.smtpclient import mailbox_messages, submission_client, transaction
from gateway.testing.world import PASSWORD, World, populate

FULL = (452, "4.2.2 mailbox full, try again later")


@pytest.fixture(scope="module")
def world_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway]]:
    home = make_home(tmp_path_factory.mktemp("gw") / "home")
    world = populate(home)
    with live_gateway(home) as live:
        yield world, live


def message(sender: str, to: str, size: int = 0) -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: quota\r\nMessage-ID: <{uuid.uuid4().hex}@clinic.test>\r\n"
            f"\r\nBonjour,\r\n{'z' * size}\r\n").encode()


def _mailbox(live: LiveGateway, *, ins: str | None = None, pro: str | None = None) -> int:
    with live.services.db.read() as session:
        if ins is not None:
            found = session.execute(select(Patient.mailbox_id).where(
                ins_index.match(live.services.keys, session, ins))).scalar_one()
        else:
            found = session.execute(select(ProAccount.mailbox_id).where(ProAccount.address == pro)).scalar_one()
    assert found is not None
    return int(found)


@pytest.fixture
def patient_box(world_live: tuple[World, LiveGateway]) -> Iterator[int]:
    """The open patient's mailbox, its limits back to the default after the test."""
    world, live = world_live
    mailbox_id = _mailbox(live, ins=world.patients["open"])
    yield mailbox_id
    with live.services.db.write() as session:
        quota.set_limits(session, mailbox_id, storage_kib=None, messages=None)


def _limit(live: LiveGateway, mailbox_id: int, **limits: int | None) -> quota.Usage:
    with live.services.db.write() as session:
        quota.set_limits(session, mailbox_id, **limits)
        return quota.usage(session, mailbox_id)


def test_full_patient_mailbox_gets_452_at_rcpt_others_still_served(world_live: tuple[World, LiveGateway],
                                                                   patient_box: int) -> None:
    world, live = world_live
    with submission_client(live, world.pro, PASSWORD) as client:  # one message at least (0: no limit)
        assert transaction(client, world.pro, [world.patient()], message(world.pro, world.patient())).data
    used = _limit(live, patient_box)
    _limit(live, patient_box, messages=used.messages)  # at the limit: full
    before = len(mailbox_messages(live, ins=world.patients["open"]))
    colleague = len(mailbox_messages(live, pro=world.colleague))
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [world.patient(), world.colleague], message(world.pro, world.colleague))
    assert t.rcpts == [FULL, (250, "2.1.5 recipient OK")]
    assert t.data is not None and t.data[0] == 250
    assert len(mailbox_messages(live, ins=world.patients["open"])) == before  # nothing for the full one
    assert len(mailbox_messages(live, pro=world.colleague)) == colleague + 1
    _limit(live, patient_box, messages=None)  # back to the default (none): the retry gets through
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [world.patient()], message(world.pro, world.patient()))
    assert t.rcpts == [(250, "2.1.5 recipient OK")] and t.data is not None and t.data[0] == 250
    assert len(mailbox_messages(live, ins=world.patients["open"])) == before + 1


def test_declared_size_over_the_room_gets_452_at_rcpt(world_live: tuple[World, LiveGateway],
                                                      patient_box: int) -> None:
    world, live = world_live
    used = _limit(live, patient_box)
    _limit(live, patient_box, storage_kib=used.kib + 4)  # room for about 4 KiB
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [world.patient()], None, mail_options=["SIZE=10000"])
        assert t.rcpts == [FULL]  # RFC 1870 SIZE= tells it before the data is sent
        t = transaction(client, world.pro, [world.patient()], None, mail_options=["SIZE=1000"])
        assert t.rcpts == [(250, "2.1.5 recipient OK")]


def test_message_over_the_room_refused_after_data_when_no_one_takes_it(world_live: tuple[World, LiveGateway],
                                                                       patient_box: int) -> None:
    world, live = world_live
    used = _limit(live, patient_box)
    _limit(live, patient_box, storage_kib=used.kib + 2)
    before = len(mailbox_messages(live, ins=world.patients["open"]))
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [world.patient()], message(world.pro, world.patient(), size=8000))
    assert t.rcpts == [(250, "2.1.5 recipient OK")]  # below its limit at RCPT, no SIZE= declared
    assert t.data == FULL  # nothing stored; the sender keeps it and retries
    assert len(mailbox_messages(live, ins=world.patients["open"])) == before
    # A small one still fits.
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [world.patient()], message(world.pro, world.patient()))
    assert t.data is not None and t.data[0] == 250
    assert len(mailbox_messages(live, ins=world.patients["open"])) == before + 1


def test_message_over_the_room_stored_for_all_when_another_takes_it(world_live: tuple[World, LiveGateway],
                                                                    patient_box: int) -> None:
    world, live = world_live
    used = _limit(live, patient_box)
    _limit(live, patient_box, storage_kib=used.kib + 2)
    before = len(mailbox_messages(live, ins=world.patients["open"]))
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [world.patient(), world.colleague],
                        message(world.pro, world.patient(), size=8000))
        assert t.rcpts == [(250, "2.1.5 recipient OK")] * 2 and t.data is not None and t.data[0] == 250
        # One message over its limit at most; from now on it is full at RCPT.
        t = transaction(client, world.pro, [world.patient()], None)
        assert t.rcpts == [FULL]
    assert len(mailbox_messages(live, ins=world.patients["open"])) == before + 1
