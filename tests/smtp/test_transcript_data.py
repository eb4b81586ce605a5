"""Transcripts: DATA (RFC 5321 §4.1.1.4, §4.5.2), SMTP smuggling, NUL, size, the memory budget,
pipelining after the end of data (RFC 2920), the policy's after-DATA verdict and delivery."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from smtp import replies
from smtp.dataparse import BareLineEndings
from smtp.policy import Limits
from smtp.session import SessionConfig
from smtp.testing import HOST, TLS, Client, Memory, transcript

LIMIT = 2000
CONFIG = SessionConfig(hostname=HOST, limits=Limits(max_message_size=LIMIT))
OPEN = b"HELO c.test\r\nMAIL FROM:<s@peer.test>\r\nRCPT TO:<r@patients.test>\r\nDATA\r\n"
OPENED = ["250 mx.test hello", replies.SENDER_OK.line(), replies.RECIPIENT_OK.line(), replies.START_DATA.line()]
MODES: tuple[BareLineEndings, ...] = ("reject", "normalize")


def client(memory: Memory | None = None, mode: BareLineEndings | None = None) -> Client:
    c = Client(memory, replace(CONFIG, bare_line_endings=mode))
    c.greeting()
    assert c.send(OPEN) == OPENED
    return c


def submission_client(config: SessionConfig) -> Client:
    """Authenticated on the submission listener, in a transaction after ``354``."""
    c = Client(None, config, tls=TLS)
    c.greeting()
    auth = base64.b64encode(b"\0dr@clinic.test\0secret").decode()
    assert c.send(f"EHLO c.test\r\nAUTH PLAIN {auth}\r\n".encode())[-1] == replies.AUTH_SUCCESS.line()
    assert c.send(b"MAIL FROM:<dr@clinic.test>\r\nRCPT TO:<r@patients.test>\r\nDATA\r\n") == [
        replies.SENDER_OK.line(), replies.RECIPIENT_OK.line(), replies.START_DATA.line()]
    return c


def test_message_is_delivered_with_dot_stuffing_undone() -> None:
    memory = Memory()
    client = transcript("""
        S: 220 mx.test ESMTP service ready
        C: HELO c.test
        C: MAIL FROM:<s@peer.test>
        C: RCPT TO:<r@patients.test>
        C: DATA
        S: 250 mx.test hello
        S: 250 2.1.0 sender OK
        S: 250 2.1.5 recipient OK
        S: 354 end data with <CR><LF>.<CR><LF>
        C: Subject: dots
        C:
        C: ..leading dot
        C: ...
        C: .
        S: 250 2.0.0 message accepted for delivery (id M1)
        C: DATA
        S: 503 5.5.1 need MAIL command first
    """, memory, CONFIG)
    assert memory.deliveries[0].message == b"Subject: dots\r\n\r\n.leading dot\r\n..\r\n"
    client.close()


def test_empty_message_and_data_with_an_argument() -> None:
    with client() as c:
        assert c.send(b".\r\n") == ["250 2.0.0 message accepted for delivery (id M1)"]
        c.send(b"MAIL FROM:<s@peer.test>\r\nRCPT TO:<r@patients.test>\r\n")
        assert c.line("DATA now") == [replies.SYNTAX_ERROR.line()]
    assert c.memory.deliveries[0].message == b""


SMUGGLING_ENDINGS = {
    "lf_dot_lf": b"\n.\n",
    "lf_dot_crlf": b"\n.\r\n",
    "cr_dot_cr": b"\r.\r",
    "cr_dot_lf": b"\r.\n",
    "crlf_dot_lf": b"\r\n.\n",
    "crlf_dot_cr": b"\r\n.\r",
    "lf_dot_cr_lf": b"\n.\r\n",
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ending", list(SMUGGLING_ENDINGS), ids=[f"smtp_smuggling_{k}" for k in SMUGGLING_ENDINGS])
def test_smtp_smuggling_does_not_split_a_message(ending: str, mode: BareLineEndings) -> None:
    """Both modes: the fake end never ends the data and the smuggled commands never run. "reject"
    refuses the message; "normalize" refuses it for a bare CR, else stores ONE message holding them."""
    smuggled = (b"MAIL FROM:<s@peer.test>\r\nRCPT TO:<r@patients.test>\r\nDATA\r\n"
                b"From: spoof@peer.test\r\nSubject: smuggled\r\n\r\nspoofed\r\n")
    fake = SMUGGLING_ENDINGS[ending]
    with client(mode=mode) as c:
        answer = c.send(b"Subject: first\r\n\r\nbody" + fake + smuggled + b".\r\nNOOP\r\n")
        if mode == "reject":
            assert answer == [replies.BARE_LINE_ENDING.line(), replies.OK.line()]  # in step: nothing smuggled ran
            assert c.outputs[-1].events and not c.memory.deliveries
        elif b"\r" in fake.replace(b"\r\n", b""):
            assert answer == [replies.BARE_CR.line(), replies.OK.line()]
            assert c.outputs[-1].events and not c.memory.deliveries
        else:
            assert answer == ["250 2.0.0 message accepted for delivery (id M1)", replies.OK.line()]
            (only,) = c.memory.deliveries  # one message, the smuggled commands inside it
            assert only.message == b"Subject: first\r\n\r\nbody\r\n\r\n" + smuggled
            assert only.envelope.sender == "s@peer.test" and len(only.envelope.recipients) == 1


def test_bare_line_endings_default_per_listener() -> None:
    """Issue 17 item 7: the MX refuses bare LF, submission normalises it; a setting overrides."""
    assert SessionConfig(listener="mx").data_line_endings == "reject"
    assert SessionConfig(listener="submission").data_line_endings == "normalize"
    assert SessionConfig(listener="submissions").data_line_endings == "normalize"
    assert SessionConfig(listener="submission", bare_line_endings="reject").data_line_endings == "reject"
    assert SessionConfig(listener="mx", bare_line_endings="normalize").data_line_endings == "normalize"


LF_MESSAGE = b"From: dr@clinic.test\nTo: r@patients.test\nSubject: LPS\n\nBonjour,\n..point\n"


def test_bare_lf_message_is_accepted_on_submission_and_stored_with_crlf() -> None:
    with submission_client(SessionConfig(hostname=HOST, listener="submission", starttls=True)) as c:
        assert c.send(LF_MESSAGE + b"\r\n.\r\nNOOP\r\n") == [
            "250 2.0.0 message accepted for delivery (id M1)", replies.OK.line()]
    assert c.memory.deliveries[0].message == (
        b"From: dr@clinic.test\r\nTo: r@patients.test\r\nSubject: LPS\r\n\r\nBonjour,\r\n.point\r\n\r\n")


def test_bare_lf_message_is_refused_on_the_mx() -> None:
    with client() as c:
        assert c.send(LF_MESSAGE + b"\r\n.\r\nNOOP\r\n") == [replies.BARE_LINE_ENDING.line(), replies.OK.line()]
    assert not c.memory.deliveries


def test_bare_cr_is_refused_on_submission_too() -> None:
    with submission_client(SessionConfig(hostname=HOST, listener="submission", starttls=True)) as c:
        assert c.send(b"Subject: x\r\n\r\nold\rmac\r\n.\r\nNOOP\r\n") == [
            replies.BARE_CR.line(), replies.OK.line()]
    assert not c.memory.deliveries


@pytest.mark.parametrize("vector", [b"\r\n\x00.\r\n", b"\r\n\x00\r\n", b"text\x00text\r\n"],
                         ids=["nul_dot_smuggling", "nul_line", "nul_inside"])
def test_nul_refuses_the_message(vector: bytes) -> None:
    with client() as c:
        assert c.send(b"Subject: nul\r\n\r\nbody" + vector + b"more\r\n.\r\nNOOP\r\n") == [
            replies.NUL_IN_MESSAGE.line(), replies.OK.line()]
    assert not c.memory.deliveries


def test_oversized_message_is_read_to_its_end_and_refused() -> None:
    with client() as c:
        line = b"x" * 98 + b"\r\n"
        for _ in range(3 * LIMIT // len(line)):
            assert c.send(line) == []
        assert c.session.data_reader is not None and c.session.data_reader.buffered <= LIMIT
        assert c.send(b".\r\nNOOP\r\n") == [replies.MESSAGE_TOO_BIG.line(), replies.OK.line()]
    assert not c.memory.deliveries


def test_commands_pipelined_after_the_end_of_data_run() -> None:
    with client() as c:
        assert c.send(b"x\r\n.\r\nMAIL FROM:<s@peer.test>\r\nRCPT TO:<q@patients.test>\r\nDATA\r\ny\r\n.\r\n") == [
            "250 2.0.0 message accepted for delivery (id M1)", replies.SENDER_OK.line(),
            replies.RECIPIENT_OK.line(), replies.START_DATA.line(), "250 2.0.0 message accepted for delivery (id M2)"]
    assert [d.message for d in c.memory.deliveries] == [b"x\r\n", b"y\r\n"]


def test_message_sent_with_the_commands_in_one_chunk() -> None:
    with Client(config=CONFIG) as c:
        c.greeting()
        assert c.send(OPEN + b"hi\r\n.\r\nQUIT\r\n") == [*OPENED, "250 2.0.0 message accepted for delivery (id M1)",
                                                         replies.CLOSING.line()]
        assert c.outputs[-1].closes and c.outputs[-1].message_bytes == len(b"hi\r\n.\r\nQUIT\r\n")


def test_policy_refusal_after_data_and_delivery_failure() -> None:
    refusal = replies.Reply(550, "5.7.1", "sender address does not match the From: header")
    with client(Memory(refuse={"data": refusal})) as c:
        assert c.send(b"x\r\n.\r\n") == [refusal.line()]
        assert not c.memory.deliveries
    with client(Memory(fail={"deliver"})) as c:
        assert c.send(b"x\r\n.\r\nRSET\r\n") == [replies.TEMPORARY_FAILURE.line(), replies.OK.line()]
        assert c.session.envelope is None  # the transaction is over whatever the answer


def test_delivery_refused_with_its_own_reply_mailbox_full() -> None:
    """The host refuses the message (every recipient's mailbox full, RFC 3463 X.2.2): its reply,
    not 451, nothing stored, and the transaction is over."""
    with client(Memory(full={"r@patients.test"})) as c:
        assert c.send(b"x\r\n.\r\nRSET\r\n") == ["452 4.2.2 mailbox full, try again later", replies.OK.line()]
        assert replies.MAILBOX_FULL.line() == "452 4.2.2 mailbox full, try again later"
        assert not c.memory.deliveries and c.session.envelope is None


def test_memory_budget_without_room_refuses_the_message_temporarily() -> None:
    memory = Memory(room=100)
    with client(memory) as c:
        assert c.send(b"x" * 50 + b"\r\n") == []
        assert memory.held >= 52
        assert c.send(b"y" * 200 + b"\r\n") == []  # no room for it: nothing more is stored
        assert c.session.data_reader is not None and c.session.data_reader.stored == 0
        assert c.send(b".\r\nNOOP\r\n") == [replies.INSUFFICIENT_STORAGE.line(), replies.OK.line()]
    assert not memory.deliveries and memory.held == 0 and memory.releases >= 1


def test_declared_size_is_held_before_354_and_released_after() -> None:
    memory = Memory(room=1000)
    with Client(memory, CONFIG) as c:
        c.greeting()
        c.send(b"HELO c\r\nMAIL FROM:<s@peer.test> SIZE=800\r\nRCPT TO:<r@patients.test>\r\n")
        assert c.line("DATA") == [replies.START_DATA.line()]
        assert memory.held == 800
        assert c.send(b"x\r\n.\r\n") == ["250 2.0.0 message accepted for delivery (id M1)"]
        assert memory.held == 0


def test_closing_mid_data_stores_nothing_and_gives_the_room_back() -> None:
    memory = Memory(room=1000)
    c = client(memory)
    c.send(b"x" * 100)
    c.close()
    assert not memory.deliveries and memory.held == 0 and c.session.closed
