"""Golden checks of the DSN (RFC 3464), MDN (RFC 8098) and patient notification builders."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage, Message

import pytest

from gateway.accounts.patients import provision
from gateway.outbound import queue
from gateway.outbound.dsn import DsnRecipient, build_dsn, header_block, notices
from gateway.outbound.mdn import NoMdnRequested, build_mdn, mdn_addresses
from gateway.outbound.notify import NOTIFICATION_TEXT, build_notification, notification_due, queue_notification
from gateway.outbound.values import Envelope, Outcome, QueuedRecipient, RecipientResult
from gateway.testing.store import Store

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
INS = "185057800608491"
ORIGINAL = (b"From: Dr A <dr@clinic.test>\r\nTo: b@remote.test\r\nSubject: Compte rendu confidentiel\r\n"
            b"Message-ID: <orig@clinic.test>\r\n\r\nCorps du message\r\n")


def _parse(raw: bytes) -> EmailMessage:
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only (RFC 5322 §2.1)
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _parts(msg: Message) -> list[EmailMessage]:
    payload = msg.get_payload()
    assert isinstance(payload, list)
    return [p for p in payload if isinstance(p, EmailMessage)]


def _blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    assert isinstance(payload, list)
    return [p for p in payload if isinstance(p, Message)]


def _text(part: EmailMessage) -> str:
    content = part.get_content()
    assert isinstance(content, str)
    return content


def _failed() -> DsnRecipient:
    return DsnRecipient("b@remote.test", "failed", "5.1.1", original_recipient="rfc822;b@remote.test",
                        diagnostic="smtp; 550 5.1.1 no such user", remote_mta="dns; mx.remote.test",
                        last_attempt=NOW)


@pytest.mark.parametrize(("ret", "third"), [("HDRS", "text/rfc822-headers"), (None, "text/rfc822-headers"),
                                            ("FULL", "message/rfc822")])
def test_failure_dsn_structure(ret: str | None, third: str) -> None:
    raw = build_dsn(reporting_mta="mail.gateway.test", to="dr@clinic.test", recipients=[_failed()],
                    original=ORIGINAL, now=NOW, envid="ENV-1", ret=ret, arrival=NOW - timedelta(hours=1),
                    message_id="<dsn1@mail.gateway.test>")
    msg = _parse(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"  # RFC 6522 §3
    assert msg["From"] == "MAILER-DAEMON@mail.gateway.test" and msg["To"] == "dr@clinic.test"
    assert msg["Auto-Submitted"] == "auto-replied" and msg["Message-ID"] == "<dsn1@mail.gateway.test>"
    assert "Échec" in str(msg["Subject"])
    human, status, returned = _parts(msg)
    assert human.get_content_type() == "text/plain"
    text = _text(human)
    assert "n'a pas pu être remis" in text and "could not be delivered" in text and "b@remote.test" in text
    assert status.get_content_type() == "message/delivery-status"
    per_message, per_rcpt = _blocks(status)
    assert per_message["Reporting-MTA"] == "dns; mail.gateway.test"
    assert per_message["Original-Envelope-Id"] == "ENV-1" and per_message["Arrival-Date"]
    assert per_rcpt["Final-Recipient"] == "rfc822; b@remote.test"
    assert per_rcpt["Original-Recipient"] == "rfc822;b@remote.test"
    assert per_rcpt["Action"] == "failed" and per_rcpt["Status"] == "5.1.1"
    assert per_rcpt["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user"
    assert per_rcpt["Remote-MTA"] == "dns; mx.remote.test"
    assert returned.get_content_type() == third
    if third == "message/rfc822":  # RFC 3461 §4.3 RET=FULL: the whole message
        [inner] = _parts(returned)
        assert inner["Subject"] == "Compte rendu confidentiel" and "Corps du message" in _text(inner)
    else:  # headers only
        assert "Subject: Compte rendu confidentiel" in _text(returned)
        assert b"Corps du message" not in raw


def test_delay_dsn_says_until_when_and_returns_headers_only() -> None:
    until = NOW + timedelta(days=4)
    rcpt = DsnRecipient("b@remote.test", "delayed", "4.2.1", diagnostic="smtp; 450 4.2.1 busy",
                        will_retry_until=until)
    msg = _parse(build_dsn(reporting_mta="mail.gateway.test", to="dr@clinic.test", recipients=[rcpt],
                           original=ORIGINAL, now=NOW, ret="FULL"))
    human, status, returned = _parts(msg)
    block = _blocks(status)[1]
    assert block["Action"] == "delayed" and block["Will-Retry-Until"] == email.utils.format_datetime(until)
    assert "retardée" in str(msg["Subject"]) and "réessayons" in _text(human)
    assert returned.get_content_type() == "text/rfc822-headers"


def test_dsn_for_utf8_addresses() -> None:
    """Issue 17 (SMTPUTF8): a DSN to a UTF-8 sender about a UTF-8 recipient: To: in raw UTF-8
    (RFC 6532), Final-Recipient as RFC 6533's "utf-8" type with \\x{...} escapes (ASCII part)."""
    r = DsnRecipient("réception+x@remote.test", "failed", "5.6.7", diagnostic="X-Gateway; no SMTPUTF8")
    raw = build_dsn(reporting_mta="mx.gateway.test", to="médecin@clinic.test", recipients=[r],
                    original=b"From: a@b.test\r\n\r\nx\r\n", now=datetime(2026, 1, 1, tzinfo=UTC))
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert "To: médecin@clinic.test".encode() in head.split(b"\r\n")
    assert b"Final-Recipient: utf-8; r\\x{E9}ception\\x{2B}x@remote.test\r\n" in raw
    report = email.message_from_bytes(raw, policy=policy.default)
    assert str(report["To"]) == "médecin@clinic.test"


def test_dsn_needs_a_recipient() -> None:
    with pytest.raises(ValueError):
        build_dsn(reporting_mta="m.test", to="a@b.test", recipients=[], original=ORIGINAL, now=NOW)


def _result(address: str, outcome: Outcome, notify: tuple[str, ...] = ()) -> RecipientResult:
    return RecipientResult(QueuedRecipient(address, notify), outcome, 550, "5.1.1", "smtp; 550 5.1.1 x")


@pytest.mark.parametrize(("notify", "failed", "delayed", "success"), [
    ((), True, False, False),  # RFC 3461 §4.1: default is FAILURE only
    (("NEVER",), False, False, False),
    (("SUCCESS",), False, False, True),
    (("FAILURE", "DELAY"), True, True, False),
    (("SUCCESS", "FAILURE", "DELAY"), True, True, True),
])
def test_notify_decides(notify: tuple[str, ...], failed: bool, delayed: bool, success: bool) -> None:
    env = Envelope("dr@clinic.test", (QueuedRecipient("b@remote.test", notify),))
    r = [_result("b@remote.test", "permanent", notify)]
    assert bool(notices(env, r, "failed", now=NOW)) is failed
    assert bool(notices(env, r, "delayed", now=NOW)) is delayed
    assert bool(notices(env, r, "relayed", now=NOW)) is success


def test_never_a_dsn_about_a_dsn() -> None:
    env = Envelope(None, (QueuedRecipient("b@remote.test", ("SUCCESS", "FAILURE")),))
    assert notices(env, [_result("b@remote.test", "permanent", ("FAILURE",))], "failed", now=NOW) == []


def test_header_block() -> None:
    assert header_block(ORIGINAL).endswith(b"Message-ID: <orig@clinic.test>\r\n")
    assert header_block(b"A: b\n\nbody") == b"A: b\n"


def test_mdn_structure() -> None:
    original = {"From": "dr@clinic.test", "Disposition-Notification-To": "Dr A <dr@clinic.test>",
                "Message-ID": "<orig@clinic.test>", "Subject": "Compte rendu confidentiel",
                "Date": "Mon, 02 Mar 2026 08:00:00 +0000"}
    raw = build_mdn(original, reporting_ua="mail.gateway.test; gateway", final_recipient="1850599123456@patients.test",
                    now=NOW, message_id="<mdn1@mail.gateway.test>")
    msg = _parse(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "disposition-notification"  # RFC 8098 §3
    assert msg["To"] == "dr@clinic.test" and msg["In-Reply-To"] == "<orig@clinic.test>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert b"Compte rendu" not in raw  # the original subject is not repeated
    human, report = _parts(msg)
    assert "a été affiché" in _text(human)
    assert report.get_content_type() == "message/disposition-notification"
    [fields] = _blocks(report)
    assert fields["Reporting-UA"] == "mail.gateway.test; gateway"
    assert fields["Final-Recipient"] == "rfc822; 1850599123456@patients.test"
    assert fields["Original-Message-ID"] == "<orig@clinic.test>"
    assert fields["Disposition"] == "automatic-action/MDN-sent-automatically; displayed"


def test_mdn_from_a_parsed_message_and_without_request() -> None:
    parsed = email.message_from_bytes(ORIGINAL.replace(b"\r\n\r\n", b"\r\nDisposition-Notification-To: "
                                                       b"<a@clinic.test>, <b@clinic.test>\r\n\r\n"))
    assert isinstance(parsed, Message)
    assert mdn_addresses(parsed) == ["a@clinic.test", "b@clinic.test"]
    with pytest.raises(NoMdnRequested):
        build_mdn(email.message_from_bytes(ORIGINAL), reporting_ua="m.test", final_recipient="p@x.test", now=NOW)


def test_mdn_to_a_utf8_address_writes_it_raw() -> None:
    """Issue 17 (SMTPUTF8): a read receipt to ``médecin@hôpital.test`` carries the address in raw
    UTF-8 (RFC 6532 §3.2; it then travels with SMTPUTF8), never as an RFC 2047 encoded-word, which
    RFC 2047 §5 forbids in an address."""
    original = {"From": "médecin@hôpital.test", "Message-ID": "<idn@xn--hpital-ixa.test>",
                "Disposition-Notification-To": "Médecin Dupré <médecin@hôpital.test>"}
    raw = build_mdn(original, reporting_ua="mail.gateway.test; gateway", final_recipient="1850599123456@patients.test",
                    now=NOW)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert "To: médecin@hôpital.test".encode() in head.split(b"\r\n")
    assert b"=?" not in head.replace(b"Subject: =?", b"")  # the subject alone may be encoded
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert str(msg["To"]) == "médecin@hôpital.test" and len(msg.get_all("To") or []) == 1
    assert msg.get_content_type() == "multipart/report"


def test_patient_reply_to_a_utf8_address_writes_it_raw() -> None:
    """The same for a patient's reply from the web inbox (gateway/delivery/replies.py)."""
    from gateway.delivery.replies import compose
    from routing.address import Address, parse_address

    raw = compose(author=Address("1850599123456", "patients.test"), to=parse_address("médecin@hôpital.test"),
                  subject="Re: Résultats", text="Merci docteur", in_reply_to="<idn@xn--hpital-ixa.test>",
                  references=["<idn@xn--hpital-ixa.test>"], hostname="mail.gateway.test")
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert "To: médecin@xn--hpital-ixa.test".encode() in head.split(b"\r\n")
    assert b"=?" not in head
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert str(msg["To"]) == "médecin@xn--hpital-ixa.test" and str(msg["Subject"]) == "Re: Résultats"
    assert msg.get_content().strip() == "Merci docteur"


def test_patient_reply_to_an_ascii_address_stays_ascii() -> None:
    from gateway.delivery.replies import compose
    from routing.address import Address, parse_address

    raw = compose(author=Address("1850599123456", "patients.test"), to=parse_address("dr@clinic.test"),
                  subject="Re: Résultats", text="Merci", in_reply_to=None, references=[], hostname="m.test")
    assert raw.isascii()  # no SMTPUTF8 needed: the subject as an encoded-word (RFC 2047)


def test_notification_to_a_utf8_personal_address_writes_it_raw() -> None:
    """The web settings accept ``rené@…`` as a personal address: the notice's To: is raw UTF-8
    (RFC 6532 §3.2), never an encoded-word."""
    raw = build_notification(to="rené@perso.example", hostname="mail.gateway.test", now=NOW)
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert "To: rené@perso.example".encode() in head
    assert not any(line.startswith(b"To:") and b"=?" in line for line in head)
    assert str(email.message_from_bytes(raw, policy=policy.default)["To"]) == "rené@perso.example"


def test_notification_is_content_free() -> None:
    raw = build_notification(to="someone@personal.example", hostname="mail.gateway.test", now=NOW)
    msg = _parse(raw)
    assert msg["From"] == "no-reply@mail.gateway.test" and msg["To"] == "someone@personal.example"
    assert msg["Auto-Submitted"] == "auto-generated"
    body = _text(msg)
    assert NOTIFICATION_TEXT in body
    for leak in (b"clinic", b"Compte", b"dr@", b"orig@"):
        assert leak not in raw


def test_notification_rate_limit() -> None:
    hour = timedelta(minutes=60)
    assert notification_due(None, NOW, hour)
    assert not notification_due(NOW - timedelta(minutes=59), NOW, hour)
    assert notification_due(NOW - hour, NOW, hour)


def test_queue_notification_once_per_interval(store: Store) -> None:
    interval, age = timedelta(minutes=60), timedelta(hours=24)
    with store.db.write() as s:
        patient = provision(s, store.keys, INS, email="someone@personal.example", now=NOW,
                            opposition_window=timedelta(days=42), code_validity=timedelta(days=42),
                            open_now=True).patient
        first = queue_notification(s, store.keys, patient, hostname="mail.gateway.test", now=NOW,
                                   interval=interval, max_age=age)
        again = queue_notification(s, store.keys, patient, hostname="mail.gateway.test",
                                   now=NOW + timedelta(minutes=30), interval=interval, max_age=age)
        later = queue_notification(s, store.keys, patient, hostname="mail.gateway.test",
                                   now=NOW + interval, interval=interval, max_age=age)
        assert first is not None and again is None and later is not None
        assert first.kind == "notification" and first.domain == "personal.example"
        assert patient.last_notified_at == NOW + interval
        patient.notifications_enabled = False
        assert queue_notification(s, store.keys, patient, hostname="mail.gateway.test",
                                  now=NOW + 3 * interval, interval=interval, max_age=age) is None
    with store.db.write() as s:
        claimed = queue.claim_due(s, store.keys, owner="t", now=NOW + interval, lease=interval, limit=5)
    assert len(claimed) == 2
    assert claimed[0].envelope.mail_from is None  # null reverse-path: no bounce loop
    assert claimed[0].envelope.recipients[0].notify == ("NEVER",)
    assert _text(_parse(claimed[0].message)).startswith(NOTIFICATION_TEXT)
