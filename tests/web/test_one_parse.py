"""One MIME parse per delivered message (issue 16), counted through the whole path: an SMTP
submission to a patient and to the professional's own mailbox, IMAP FETCH ENVELOPE and
BODYSTRUCTURE of the professional's copy, and the patient's web inbox (the list and the
conversation page).

The spies count, for the message under test (found by its unique Message-ID): calls of
``imap.message.mime.parse`` (the tree parse that ``gateway.mailstore.parsing.parse`` runs),
and any parse by the ``email`` package made outside one (``email.parser.Parser.parse`` is
where ``message_from_bytes``, ``BytesParser`` and ``BytesHeaderParser`` all end up). DKIM
(dkimpy, on raw bytes) is not an ``email`` parse and is not counted.
"""

from __future__ import annotations

import imaplib
import io
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import parser as email_parser
from typing import IO, Any

import pytest

from gateway.testing.smtpclient import submission_client, transaction
from gateway.testing.world import PASSWORD
from imap.message import mime
from tests.web.conftest import Site
from tests.web.kit import Account, activate_http, login_http, new_ins, provision


@dataclass
class Spy:
    marker: bytes
    tree: int = 0  # mime.parse of the message
    stray: list[str] = field(default_factory=list)  # email-package parses of it outside mime.parse
    inside: threading.local = field(default_factory=threading.local)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spy]:
    found = Spy(f"<{uuid.uuid4().hex}@clinic.test>".encode())
    tree_parse = mime.parse
    email_parse = email_parser.Parser.parse

    def counted_tree(raw: bytes) -> mime.Part:
        if found.marker in raw:
            found.tree += 1
        depth = getattr(found.inside, "depth", 0)
        found.inside.depth = depth + 1
        try:
            return tree_parse(raw)
        finally:
            found.inside.depth = depth

    def counted_email(self: email_parser.Parser, fp: IO[str], headersonly: bool = False) -> Any:
        text = fp.getvalue() if isinstance(fp, io.StringIO) else ""
        if getattr(found.inside, "depth", 0) == 0 and found.marker.decode() in text:
            found.stray.append(threading.current_thread().name)
        return email_parse(self, fp, headersonly)

    monkeypatch.setattr(mime, "parse", counted_tree)
    monkeypatch.setattr(email_parser.Parser, "parse", counted_email)
    yield found


def _message(site: Site, to: list[str], marker: bytes) -> bytes:
    b = "=_un_seul_passage"
    return (f"From: Dr Martin <{site.world.pro}>\r\nTo: {', '.join(to)}\r\n"
            f"Subject: =?utf-8?q?Compte_rendu_d=C3=A9taill=C3=A9?=\r\nMessage-ID: {marker.decode()}\r\n"
            f"Date: Mon, 23 Nov 2026 09:00:00 +0100\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="{b}"\r\n\r\n--{b}\r\n'
            f"Content-Type: text/plain; charset=utf-8\r\n\r\nBonjour,\r\nle compte rendu est joint.\r\n"
            f'--{b}\r\nContent-Type: application/pdf; name="cr.pdf"\r\nContent-Transfer-Encoding: base64\r\n'
            f'Content-Disposition: attachment; filename="cr.pdf"\r\n\r\nJVBERi0xLjQK\r\n--{b}--\r\n').encode()


def test_one_parse_from_smtp_to_imap_and_the_web_inbox(site: Site, spy: Spy) -> None:
    account: Account = activate_http(site.live, (ins := new_ins()), provision(site.home, ins))
    patient = f"{account.ins}@{site.world.patient_domain}"
    with submission_client(site.live, site.world.pro, PASSWORD) as client:
        t = transaction(client, site.world.pro, [patient, site.world.pro], _message(site, [patient], spy.marker))
    assert t.data is not None and t.data[0] == 250, t
    assert spy.tree == 1 and spy.stray == []

    context = ssl.create_default_context(cafile=site.live.ca_file)
    imap = imaplib.IMAP4_SSL("127.0.0.1", site.live.port("imaps"), ssl_context=context, timeout=15)
    try:
        imap.login(site.world.pro, PASSWORD)
        imap.select("INBOX", readonly=True)
        status, data = imap.fetch("1:*", "(ENVELOPE BODYSTRUCTURE)")
        assert status == "OK"
        lines = [part if isinstance(part, bytes) else b"".join(part or ()) for part in data]
        ours = [line for line in lines if spy.marker in line]
        assert len(ours) == 1 and b'"APPLICATION" "PDF"' in ours[0] and b'"cr.pdf"' in ours[0], data
    finally:
        imap.logout()

    with login_http(site.live, account) as web:
        page = web.get("/")
        assert page.status_code == 200 and "Compte rendu détaillé" in page.text, page.text[:400]
        link = page.text.split('href="/conversations/', 1)[1].split('"', 1)[0]
        thread = web.get(f"/conversations/{link}")
        assert thread.status_code == 200 and "Compte rendu détaillé" in thread.text
    assert spy.tree == 1 and spy.stray == []  # the whole path: the one parse at the end of DATA


def test_the_spies_see_a_parse(spy: Spy) -> None:
    """The counting itself: a tree parse and a stray ``email`` parse of the message are seen."""
    raw = b"Message-ID: " + spy.marker + b"\r\nSubject: x\r\n\r\nbody\r\n"
    mime.parse(raw)
    assert spy.tree == 1 and spy.stray == []  # its header parse is inside the tree parse
    email_parser.BytesParser().parsebytes(raw, headersonly=True)
    assert len(spy.stray) == 1
