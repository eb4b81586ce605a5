"""Conversations (SPEC §4): a professional opens, the patient replies inside, [FIN] ends it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from gateway.accounts import ins_index
from gateway.delivery.replies import ReplyRefused, send_reply
from gateway.store.models import Conversation, Patient
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.smtpclient import mailbox_messages, submission_client, transaction
from gateway.testing.world import PASSWORD, World, populate


@pytest.fixture
def world_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway]]:
    home = make_home(tmp_path_factory.mktemp("gw") / "home")
    world = populate(home)
    with live_gateway(home) as live:
        yield world, live


def send(world: World, live: LiveGateway, *, subject: str = "Résultats", extra: str = "",
         in_reply_to: str | None = None, sender: str | None = None) -> str:
    author = sender or world.pro
    mid = f"<{uuid.uuid4().hex}@clinic.test>"
    thread = f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n" if in_reply_to else ""
    raw = (f"From: {author}\r\nTo: {world.patient()}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n{thread}{extra}"
           f"\r\nBonjour\r\n").encode()
    with submission_client(live, author, PASSWORD) as client:
        t = transaction(client, author, [world.patient()], raw)
    assert t.data is not None and t.data[0] == 250
    return mid


def conversations(live: LiveGateway, world: World) -> list[Conversation]:
    with live.services.db.read() as s:
        mailbox = s.execute(select(Patient.mailbox_id)
                            .where(ins_index.match(live.services.keys, s, world.patients["open"]))).scalar_one()
        return list(s.execute(select(Conversation).where(Conversation.mailbox_id == mailbox)
                              .order_by(Conversation.id)).scalars())


def patient_key(live: LiveGateway, world: World) -> tuple[int, int]:
    """The open patient's row key ``(mailbox_id, id)``."""
    with live.services.db.read() as s:
        mailbox_id, pid = s.execute(select(Patient.mailbox_id, Patient.id)
                                    .where(ins_index.match(live.services.keys, s, world.patients["open"]))).one()
        return int(mailbox_id), int(pid)


def reply(live: LiveGateway, world: World, conversation_id: int, text: str = "Merci docteur") -> None:
    rt = live.gateway.mail
    mailbox_id, pid = patient_key(live, world)
    send_reply(rt.directory, rt.pipeline, live.services.keys, mailbox_id=mailbox_id, patient_id=pid,
               conversation_id=conversation_id, subject="Re: Résultats", text=text)


def test_patient_reply_reaches_the_professional_and_threads(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    first = send(world, live)
    (conv,) = conversations(live, world)
    reply(live, world, conv.id)
    inbox = mailbox_messages(live, pro=world.pro)
    assert len(inbox) == 1 and f"In-Reply-To: {first}".encode() in inbox[0]
    assert f"From: {world.patient()}".encode() in inbox[0]
    assert len(mailbox_messages(live, ins=world.patients["open"], folder="Sent")) == 1
    send(world, live, subject="Re: Re: Résultats", in_reply_to=first)  # the same conversation continues
    assert len(conversations(live, world)) == 1


def test_fin_ends_the_conversation(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    first = send(world, live)
    send(world, live, subject="[FIN]", in_reply_to=first)
    (conv,) = conversations(live, world)
    assert conv.ended_at is not None
    with pytest.raises(ReplyRefused) as err:
        reply(live, world, conv.id)
    assert err.value.verdict is not None and err.value.verdict.reason == "rcpt.conversation_ended"
    assert mailbox_messages(live, pro=world.pro) == []


def test_x_mss_mes_fin_ends_the_conversation(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    send(world, live, extra="X-MSS-MES: FIN\r\n")
    (conv,) = conversations(live, world)
    assert conv.ended_at is not None


def test_reply_goes_to_reply_to(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    send(world, live, extra=f"Reply-To: {world.colleague}\r\n")
    (conv,) = conversations(live, world)
    reply(live, world, conv.id)
    assert mailbox_messages(live, pro=world.pro) == []
    assert len(mailbox_messages(live, pro=world.colleague)) == 1


def test_no_reply_to_someone_elses_conversation(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    send(world, live)
    (conv,) = conversations(live, world)
    rt = live.gateway.mail
    with live.services.db.read() as s:
        mailbox_id, other = s.execute(select(Patient.mailbox_id, Patient.id).where(
            ins_index.match(live.services.keys, s, world.patients["provisioned"]))).one()
    with pytest.raises(ReplyRefused):
        send_reply(rt.directory, rt.pipeline, live.services.keys, mailbox_id=mailbox_id, patient_id=other,
                   conversation_id=conv.id, subject="x", text="y")


# Issue 15 item 4: one leaked Message-ID let any professional end another's conversation.
@pytest.mark.parametrize("how", ["subject", "header", "reply"])
def test_another_professional_cannot_end_or_join_a_conversation(world_live: tuple[World, LiveGateway],
                                                                how: str) -> None:
    world, live = world_live
    first = send(world, live)
    subject, extra = {"subject": ("[FIN]", ""), "header": ("Re: Résultats", "X-MSS-MES: FIN\r\n"),
                      "reply": ("Re: Résultats", "")}[how]
    send(world, live, subject=subject, extra=extra, in_reply_to=first, sender=world.colleague)
    mine, theirs = conversations(live, world)
    assert mine.ended_at is None  # the owner's conversation goes on
    assert (theirs.ended_at is not None) == (how != "reply")  # the colleague's message started its own
    reply(live, world, mine.id)
    assert len(mailbox_messages(live, pro=world.pro)) == 1
    assert mailbox_messages(live, pro=world.colleague) == []


def test_the_reply_to_address_may_end_the_conversation(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    first = send(world, live, extra=f"Reply-To: {world.colleague.upper()}\r\n")
    send(world, live, subject="[FIN]", in_reply_to=first, sender=world.colleague)
    (conv,) = conversations(live, world)
    assert conv.ended_at is not None
