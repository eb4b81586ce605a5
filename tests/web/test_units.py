"""Pure parts of the inbox: password strength, attachment sniffing, HTML sanitising, MIME
reading, TOTP replay guard, history wording."""

from __future__ import annotations

import pyotp
import pytest

from gateway.testing.store import Store
from gateway.web.patient import mailview, totp
from gateway.web.patient.history import describe_action, describe_actor
from gateway.web.patient.passwords import strength_problem
from gateway.web.patient.uploads import kind_of, safe_filename
from tests.web.kit import with_attachment


@pytest.mark.parametrize("password", ["court", "motdepasse123", "azertyuiop123", "aaaaaaaaaaaaaaa", "123456789012345",
                                      "abcdefghijklmnop", "x 180012345678901 y", "98765432109876"])
def test_weak_passwords_are_refused(password: str) -> None:
    assert strength_problem(password, ins="180012345678901") is not None


@pytest.mark.parametrize("password", ["Une phrase de passe bien longue 42", "cheval agrafe pile correcte"])
def test_good_passwords_pass(password: str) -> None:
    assert strength_problem(password, ins="180012345678901") is None


@pytest.mark.parametrize(("name", "data", "expected"), [
    ("a.pdf", b"%PDF-1.7 ...", "application/pdf"),
    ("a.PDF", b"%PDF-1.7 ...", "application/pdf"),
    ("a.pdf", b"MZ\x90\x00", None),  # an executable named .pdf
    ("a.jpg", b"\xff\xd8\xff\xe0rest", "image/jpeg"),
    ("a.png", b"\x89PNG\r\n\x1a\nrest", "image/png"),
    ("a.tiff", b"II*\x00rest", "image/tiff"),
    ("a.tif", b"MM\x00*rest", "image/tiff"),
    ("a.rtf", b"{\\rtf1\\ansi hello}", "application/rtf"),
    ("a.txt", b"tension 12/8", "text/plain"),
    ("a.txt", b"\x00\x01binary", None),
    ("a.html", b"<html>", None),
    ("a.svg", b"<svg onload=x>", None),
    ("pdf", b"%PDF-", None),
])
def test_attachment_kind_is_sniffed(name: str, data: bytes, expected: str | None) -> None:
    assert kind_of(name, data) == expected


def test_safe_filename() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Users\\x\\scan.pdf") == "scan.pdf"
    assert safe_filename('a"b<c>.pdf') == "abc.pdf"
    assert safe_filename("...") == "piece-jointe"


def test_sanitise_removes_active_and_remote_content() -> None:
    html = ('<p style="color:red" onclick="x()">ok<script>bad()</script></p><img src="http://t.example/p.gif">'
            '<img src="cid:part1"><img src="data:image/gif;base64,R0lGOD==" onerror="x()">'
            '<a href="javascript:x()">a</a><a href="data:text/html,<script>">b</a><object data="x"></object>')
    clean = mailview.sanitise_html(html)
    for bad in ("script", "onclick", "onerror", "style=", "t.example", "cid:", "javascript:", "data:text",
                "<object"):
        assert bad not in clean
    assert 'src="data:image/gif;base64,R0lGOD=="' in clean and "<p>ok</p>" in clean


def test_view_reads_text_html_attachments_and_receipt_request() -> None:
    raw = (b"From: =?utf-8?q?Dr_M=C3=A9lanie_Petit?= <m.petit@clinic.test>\r\nSubject: =?utf-8?q?R=C3=A9sultats?=\r\n"
           b"Date: Mon, 23 Nov 2026 09:00:00 +0100\r\nDisposition-Notification-To: m.petit@clinic.test\r\n"
           b"MIME-Version: 1.0\r\n" + with_attachment("Texte é", "scanner.pdf", b"%PDF-1.4 x"))
    view = mailview.view(raw)
    assert view.summary.sender_name == "Dr Mélanie Petit" and view.summary.subject == "Résultats"
    assert view.text is not None and "Texte é" in view.text and view.html is None
    assert [(p.filename, p.content_type, p.size) for p in view.attachments] == [("scanner.pdf", "application/pdf", 10)]
    assert view.wants_receipt
    found = mailview.attachment(raw, 0)
    assert found is not None and found[1] == b"%PDF-1.4 x"
    assert mailview.attachment(raw, 1) is None


def test_view_decodes_utf8_headers() -> None:
    """RFC 6532 (issue 17): headers in raw UTF-8, as an SMTPUTF8 message carries them."""
    raw = ("From: Médecin Dupré <médecin@hôpital.test>\r\nTo: Patient <1234567890123@patients.test>\r\n"
           "Subject: Résultats d'analyse\r\nDate: Mon, 23 Nov 2026 09:00:00 +0100\r\n\r\nBonjour\r\n").encode()
    view = mailview.view(raw)
    assert (view.summary.sender_name, view.summary.sender_address) == ("Médecin Dupré", "médecin@hôpital.test")
    assert view.summary.subject == "Résultats d'analyse" and view.to.startswith("Patient <")
    assert "médecin" in mailview.plain_text(mailview.parse(raw))
    latin1 = b"From: M\xe9decin <m@h.test>\r\nSubject: R\xe9sultats\r\n\r\nx\r\n"  # not UTF-8: shown, never a crash
    shown = mailview.view(latin1).summary
    assert shown.subject == "R\ufffdsultats" and shown.sender_name == "M\ufffddecin"
    assert all(not 0xD800 <= ord(c) <= 0xDFFF for c in shown.subject + shown.sender_name)


def test_broken_message_still_shows() -> None:
    view = mailview.view(b"garbage without headers\r\n\r\n\xff\xfe")
    assert view.summary.subject == "(sans objet)" and view.summary.sender_name == "(expéditeur inconnu)"


def test_totp_codes_are_single_use_with_one_step_of_drift(store: Store) -> None:
    import random
    from datetime import UTC, datetime, timedelta

    from gateway.accounts.patients import provision
    from routing.ins import synthetic_ins

    rng = random.Random(5)
    with store.db.write() as session:
        first, second = ((p.mailbox_id, p.id) for p in (
            provision(session, store.keys, synthetic_ins(rng), email=None, now=datetime.now(UTC),
                      opposition_window=timedelta(days=42), code_validity=timedelta(days=42)).patient
            for _ in range(2)))
    secret = totp.new_secret()
    guard = totp.ReplayGuard(store.db)  # in the database: a second node sees the same used steps
    other_node = totp.ReplayGuard(store.db)
    now = 1_800_000_000.0
    code = pyotp.TOTP(secret).at(now)
    assert totp.verify(secret, code, guard=(guard, first), now=now)
    assert not totp.verify(secret, code, guard=(other_node, first), now=now)  # replay, even elsewhere
    assert totp.verify(secret, code, guard=(guard, second), now=now)  # another patient's guard entry
    assert totp.verify(secret, pyotp.TOTP(secret).at(now + 30), guard=(guard, first), now=now)  # next step
    assert not totp.verify(secret, pyotp.TOTP(secret).at(now - 90), now=now)
    assert not totp.verify(secret, "12 34", now=now) and not totp.verify(secret, None, now=now)
    assert totp.qr_data_uri(totp.provisioning_uri(secret, "1*********01")).startswith("data:image/png;base64,")


def test_history_wording() -> None:
    assert describe_action("mail.deliver") == "Message reçu"
    assert describe_action("web.message.view") == "Lecture d'un message"
    assert describe_actor("patient:4", 4) == "Vous"
    assert describe_actor("pro:dr@clinic.test", 4) == "Professionnel dr@clinic.test"
    assert describe_actor("admin:cli", 4) == "Administrateur de la messagerie"
