"""Transcripts: MAIL and RCPT, their syntax, parameters (RFC 1870, 3461, 6152, 6531, 4954 §5),
the recipient limit, the policy's verdicts, the memory budget for SIZE, failures of the host."""

from __future__ import annotations

import logging

import pytest

from smtp import replies
from smtp.params import MailParams, RcptParams
from smtp.policy import Limits
from smtp.session import SessionConfig
from smtp.testing import HOST, TLS, Memory, transcript

SMALL = SessionConfig(hostname=HOST, limits=Limits(max_message_size=1000, max_recipients=3))
EHLO = """
    S: 220 mx.test ESMTP service ready
    C: HELO client.peer.test
    S: 250 mx.test hello
"""


def run(script: str, memory: Memory | None = None, config: SessionConfig = SMALL) -> Memory:
    memory = memory if memory is not None else Memory()
    transcript(EHLO + script, memory, config).close()
    return memory


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("MAIL FROM:<s@peer.test>", replies.SENDER_OK),
        ("mail from:<s@peer.test>", replies.SENDER_OK),  # RFC 5321 §2.4: any case
        ("MAIL FROM: <s@peer.test>", replies.SENDER_OK),  # a space after the colon, tolerated
        ("MAIL FROM:<>", replies.SENDER_OK),  # the null reverse-path (DSN, MDN) on MX
        ("MAIL FROM:<@relay.test,@other.test:s@peer.test>", replies.SENDER_OK),  # source route dropped
        ('MAIL FROM:<"odd>name"@peer.test>', replies.SENDER_OK),  # ">" quoted in the local part
        ("MAIL FROM:s@peer.test", replies.MAIL_SYNTAX),
        ("MAIL s@peer.test", replies.MAIL_SYNTAX),
        ("MAIL FROM:<s@peer.test", replies.MAIL_SYNTAX),
        ("MAIL FROM:<@relay.test s@peer.test>", replies.MAIL_SYNTAX),
        ("MAIL FROM:<nobody>", replies.MALFORMED_ADDRESS),  # the policy's verdict
        ("MAIL FROM:<s@peer.test> SIZE=1000", replies.SENDER_OK),
        ("MAIL FROM:<s@peer.test> SIZE=1001", replies.MESSAGE_TOO_BIG),  # RFC 1870 §6.1
        ("MAIL FROM:<s@peer.test> SIZE=ten", replies.SIZE_INVALID),
        ("MAIL FROM:<s@peer.test> BODY=8BITMIME", replies.SENDER_OK),
        ("MAIL FROM:<s@peer.test> BODY=BINARYMIME", replies.BODY_INVALID),
        ("MAIL FROM:<s@peer.test> SMTPUTF8=yes", replies.SMTPUTF8_INVALID),
        ("MAIL FROM:<s@peer.test> RET=HDRS ENVID=QQ+2B1", replies.SENDER_OK),
        ("MAIL FROM:<s@peer.test> RET=ALL", replies.DSN_PARAM_INVALID),
        ("MAIL FROM:<s@peer.test> SIZE=1 SIZE=2", replies.PARAM_DUPLICATE),
        ("MAIL FROM:<s@peer.test> XFORWARD=1", replies.MAIL_PARAMS_UNRECOGNIZED),
        ("MAIL FROM:<s@peer.test> =x", replies.SYNTAX_ERROR),
    ],
)
def test_mail_from(line: str, reply: replies.Reply) -> None:
    run(f"C: {line}\nS: {reply.line()}")


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("RCPT TO:<r@patients.test>", replies.RECIPIENT_OK),
        ("RCPT TO:<r@patients.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;r+40patients.test", replies.RECIPIENT_OK),
        ("RCPT TO:<r@patients.test> NOTIFY=NEVER,SUCCESS", replies.DSN_PARAM_INVALID),
        ("RCPT TO:<r@patients.test> ORCPT=bad", replies.DSN_PARAM_INVALID),
        ("RCPT TO:<r@patients.test> SIZE=10", replies.RCPT_PARAMS_UNRECOGNIZED),
        ("RCPT TO:<>", replies.RCPT_SYNTAX),
        ("RCPT TO:r@patients.test", replies.RCPT_SYNTAX),
        ("RCPT <r@patients.test>", replies.RCPT_SYNTAX),
        ("RCPT TO:<nobody>", replies.MALFORMED_ADDRESS),
    ],
)
def test_rcpt_to(line: str, reply: replies.Reply) -> None:
    run(f"C: MAIL FROM:<s@peer.test>\nS: {replies.SENDER_OK.line()}\nC: {line}\nS: {reply.line()}")


def test_parameters_reach_the_envelope_decoded() -> None:
    memory = run("""
        C: MAIL FROM:<s@peer.test> SIZE=20 RET=HDRS ENVID=QQ+2B1 BODY=8BITMIME
        C: RCPT TO:<r@patients.test> NOTIFY=FAILURE ORCPT=rfc822;r+40patients.test
        C: DATA
        S: 250 2.1.0 sender OK
        S: 250 2.1.5 recipient OK
        S: 354 end data with <CR><LF>.<CR><LF>
        C: hello
        C: .
        S: 250 2.0.0 message accepted for delivery (id M1)
    """)
    envelope = memory.deliveries[0].envelope
    assert envelope.params == MailParams(size=20, body="8BITMIME", ret="HDRS", envid="QQ+1")
    assert envelope.recipients[0].params == RcptParams(frozenset({"FAILURE"}), ("rfc822", "r@patients.test"))


def test_policy_verdicts_are_sent_as_they_are_and_refused_recipients_are_not_kept() -> None:
    refusal = replies.Reply(550, "5.1.1", "no such patient mailbox")
    memory = run(f"""
        C: MAIL FROM:<s@peer.test>
        C: RCPT TO:<gone@patients.test>
        C: DATA
        C: RCPT TO:<r@patients.test>
        C: DATA
        S: 250 2.1.0 sender OK
        S: {refusal.line()}
        S: 503 5.5.1 need RCPT command first
        S: 250 2.1.5 recipient OK
        S: 354 end data with <CR><LF>.<CR><LF>
        C: .
        S: 250 2.0.0 message accepted for delivery (id M1)
    """, Memory(refuse={"gone@patients.test": refusal}))
    assert [r.address for r in memory.deliveries[0].envelope.recipients] == ["r@patients.test"]


def test_recipient_limit() -> None:
    """RFC 5321 §4.5.3.1.10: 452 beyond the limit; those accepted stay."""
    memory = run("""
        C: MAIL FROM:<s@peer.test>
        C: RCPT TO:<a@patients.test>
        C: RCPT TO:<b@patients.test>
        C: RCPT TO:<c@patients.test>
        C: RCPT TO:<d@patients.test>
        C: DATA
        S: 250 2.1.0 sender OK
        S: 250 2.1.5 recipient OK
        S: 250 2.1.5 recipient OK
        S: 250 2.1.5 recipient OK
        S: 452 4.5.3 too many recipients
        S: 354 end data with <CR><LF>.<CR><LF>
        C: .
        S: 250 2.0.0 message accepted for delivery (id M1)
    """)
    assert len(memory.deliveries[0].envelope.recipients) == 3


def test_null_sender_and_submission_rules() -> None:
    config = SessionConfig(hostname=HOST, listener="submission")
    transcript("""
        S: 220 mx.test ESMTP service ready
        C: EHLO client.test
        C: AUTH PLAIN AGRyQGNsaW5pYy50ZXN0AHNlY3JldA==
        C: MAIL FROM:<>
        C: MAIL FROM:<dr@clinic.test>
        C: MAIL FROM:<dr@clinic.test>
        S: 250-mx.test hello
        S: 250-PIPELINING
        S: 250-SIZE 26214400
        S: 250-8BITMIME
        S: 250-ENHANCEDSTATUSCODES
        S: 250-DSN
        S: 250-SMTPUTF8
        S: 250 AUTH PLAIN LOGIN
        S: 235 2.7.0 authentication successful
        S: 550 5.7.1 the empty sender address <> is not accepted here
        S: 250 2.1.0 sender OK
        S: 503 5.5.1 nested MAIL command
    """, config=config, tls=TLS).close()


def test_a_421_verdict_at_mail_closes_the_session() -> None:
    """RFC 5321 §3.8: the host's 421 (e.g. the account was suspended since AUTH) ends the
    transaction and the connection; nothing more is read."""
    suspended = replies.Reply(421, "4.7.0", "account disabled by the administrator, closing connection")
    memory = run(f"""
        C: MAIL FROM:<dr@clinic.test>
        C: RCPT TO:<r@patients.test>
        C: DATA
        S: {suspended.line()}
        S: [close]
    """, Memory(refuse={"dr@clinic.test": suspended}))
    assert memory.deliveries == [] and memory.resets >= 1


def test_size_without_room_in_the_memory_budget_is_a_temporary_refusal() -> None:
    """RFC 1870 §6.2: 452 4.3.1 when SIZE does not fit now; the transaction does not start."""
    memory = run("""
        C: MAIL FROM:<s@peer.test> SIZE=900
        C: RCPT TO:<r@patients.test>
        C: MAIL FROM:<s@peer.test> SIZE=100
        S: 452 4.3.1 insufficient system storage, try again later
        S: 503 5.5.1 need MAIL command first
        S: 250 2.1.0 sender OK
    """, Memory(room=500))
    assert memory.held == 0  # room_for only asks


@pytest.mark.parametrize("what", ["mail", "rcpt", "helo"])
def test_a_failing_host_answers_451_without_internals_and_the_session_goes_on(
        what: str, caplog: pytest.LogCaptureFixture) -> None:
    memory = Memory(fail={what})
    script = {"helo": "S: 220 mx.test ESMTP service ready\nC: HELO again.test",
              "mail": EHLO + "C: MAIL FROM:<s@peer.test>",
              "rcpt": EHLO + "C: MAIL FROM:<s@peer.test>\nS: 250 2.1.0 sender OK\nC: RCPT TO:<r@patients.test>"}[what]
    with caplog.at_level(logging.ERROR, logger="smtp.session"):
        client = transcript(script + """
            S: 451 4.3.0 temporary failure, please retry
            C: NOOP
            S: 250 2.0.0 OK
        """, memory, SMALL)
    assert b"internal detail" not in b"".join(o.data for o in client.outputs)
    [record] = [r for r in caplog.records if r.getMessage() == "smtp command failed"]
    assert record.exc_info is not None and "internal detail" in str(record.exc_info[1])
    client.close()
