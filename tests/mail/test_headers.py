"""Trace headers added on the way in: ``Received:``, and for submission ``Message-ID:``/``Date:``."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

from gateway.delivery.headers import parse_headers, trace_headers

AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def _stamp(raw: bytes, protocol: str) -> bytes:
    stamped, _ = trace_headers(raw, parse_headers(raw), hostname="mx.gateway.test", helo="client.clinic.test",
                               peer="192.0.2.7", protocol=protocol, queue_id="q1", now=AT)
    return stamped


def _head(stamped: bytes) -> list[bytes]:
    return stamped.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def test_submission_adds_a_date_when_the_client_omits_it() -> None:
    raw = b"From: dr.martin@clinic.test\r\nSubject: x\r\n\r\nbody\r\n"
    for protocol in ("ESMTPSA", "ESMTPA", "UTF8SMTPSA"):
        stamped = _stamp(raw, protocol)
        dates = [line for line in _head(stamped) if line.lower().startswith(b"date:")]
        assert dates == [b"Date: " + email.utils.format_datetime(AT).encode()]
        assert stamped.endswith(raw) and b"\r\nMessage-ID: <" in stamped


def test_a_date_present_is_kept_and_not_doubled() -> None:
    raw = b"From: dr.martin@clinic.test\r\ndate: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nbody\r\n"
    stamped = _stamp(raw, "ESMTPSA")
    assert [line for line in _head(stamped) if line.lower().startswith(b"date:")] == [
        b"date: Mon, 2 Mar 2026 10:00:00 +0100"]


def test_relayed_mail_gets_no_date() -> None:
    """RFC 5321 §6.4: only submission repairs a missing Date; the MX stores what it received."""
    raw = b"From: dr.b@hopital.test\r\nMessage-ID: <a@hopital.test>\r\n\r\nbody\r\n"
    for protocol in ("ESMTPS", "ESMTP", "UTF8SMTPS"):
        assert not any(line.lower().startswith(b"date:") for line in _head(_stamp(raw, protocol)))


def test_utf8_headers_are_read_as_utf8() -> None:
    """RFC 6532: an SMTPUTF8 message's From: in raw UTF-8 gives its author (the From: rules
    after DATA need it); bytes that are not UTF-8 give no author, never a crash."""
    raw = "From: Médecin Dupré <médecin@hôpital.test>\r\nSubject: Résultats\r\n\r\nbody\r\n".encode()
    info = parse_headers(raw)
    assert [str(a) for a in info.from_addresses] == ["médecin@xn--hpital-ixa.test"]
    assert info.subject == "Résultats"
    broken = parse_headers(b"From: M\xe9decin <m\xe9decin@h.test>\r\nSubject: R\xe9sultats\r\n\r\nbody\r\n")
    assert broken.from_addresses == ()
