"""End to end in headless Chromium: a patient provisioned by the CLI activates, enrols TOTP,
reads a professional's mail, downloads an attachment, replies, logs out; failures and the
opposition path. Screenshots and an axe-core check of the main pages."""

from __future__ import annotations

import email
import email.policy
import imaplib
import importlib.util
import re
import ssl
from typing import Any

from sqlalchemy import select

from gateway.accounts import ins_index
from gateway.store.models import Patient
from gateway.testing.smtpclient import mailbox_messages, submission_client, transaction
from gateway.testing.world import PASSWORD
from tests.web.browser_kit import review
from tests.web.conftest import Site
from tests.web.kit import (
    PATIENT_PASSWORD,
    base_url,
    new_ins,
    pro_sends,
    provision,
    totp_now,
    with_attachment,
)

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82")


def _state(site: Site, ins: str) -> str:
    with site.live.services.db.read() as s:
        return str(s.execute(select(Patient.state).where(
            ins_index.match(site.live.services.keys, s, ins))).scalar_one())


def _imap_fetch_all(site: Site, user: str) -> list[bytes] | None:
    """The professional's INBOX over IMAP, when the IMAP listener runs in this gateway."""
    try:
        port = site.live.port("imap")
        conn = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    except OSError:
        return None
    try:
        conn.starttls(ssl.create_default_context(cafile=site.live.ca_file))
        conn.login(user, PASSWORD)
        conn.select("INBOX", readonly=True)
        _, data = conn.uid("SEARCH", "ALL")
        out: list[bytes] = []
        for uid in data[0].split():
            _, parts = conn.uid("FETCH", uid, "(BODY.PEEK[])")
            out.extend(p[1] for p in parts if isinstance(p, tuple))
        conn.logout()
        return out
    except (imaplib.IMAP4.error, OSError):
        return None


def test_patient_journey(site: Site, browser: Any) -> None:
    world, live, url = site.world, site.live, base_url(site.live)
    ins = new_ins()
    code = provision(site.home, ins)
    review(browser, f"{url}/activation", "activation")

    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True, locale="fr-FR")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # a wrong activation code is refused
    page.goto(f"{url}/activation")
    page.get_by_label("Numéro INS").fill(ins)
    page.get_by_label("Code d'activation").fill("AAAA-BBBB-CCCC")
    page.get_by_role("button", name="Continuer").click()
    assert page.get_by_role("alert").inner_text().startswith("Numéro INS ou code d'activation incorrect")

    # the right one: password (a weak one first), then TOTP enrolment
    page.get_by_label("Numéro INS").fill(ins)
    page.get_by_label("Code d'activation").fill(code.lower())
    page.get_by_role("button", name="Continuer").click()
    page.get_by_label("Nouveau mot de passe").fill("motdepasse123")
    page.get_by_label("Confirmer le mot de passe").fill("motdepasse123")
    page.get_by_role("button", name="Continuer").click()
    assert "trop courant" in page.get_by_role("alert").inner_text()
    page.get_by_label("Nouveau mot de passe").fill(PATIENT_PASSWORD)
    page.get_by_label("Confirmer le mot de passe").fill(PATIENT_PASSWORD)
    page.get_by_role("button", name="Continuer").click()
    assert page.locator("img[alt^='QR code']").get_attribute("src", timeout=5000).startswith("data:image/png;base64,")
    secret = page.locator("code.secret").inner_text().replace(" ", "")
    page.get_by_label("Code à 6 chiffres").fill(f"{(int(totp_now(secret)) + 500_000) % 1_000_000:06d}")
    page.get_by_role("button", name="Valider").click()
    assert "Code incorrect" in page.get_by_role("alert").inner_text()
    page.get_by_label("Code à 6 chiffres").fill(totp_now(secret))
    page.get_by_role("button", name="Valider").click()
    page.get_by_role("heading", name="Mes messages").wait_for()
    assert "activée" in page.get_by_role("status").inner_text()
    assert _state(site, ins) == "open"

    # a professional writes, with a PDF and a read-receipt request
    first = pro_sends(live, world, ins, subject="Vos résultats d'analyse",
                      extra=f"Disposition-Notification-To: {world.pro}\r\n",
                      body=with_attachment("Bonjour,\r\nvoici vos résultats.", "résultats.pdf", PDF))
    page.reload()
    thread = page.locator("ul.threads li.unread a").first
    assert "Dr Martin" in thread.inner_text() and "Vos résultats d'analyse" in thread.inner_text()
    state = context.storage_state()
    review(browser, f"{url}/", "inbox", state)
    thread.click()
    page.get_by_role("link", name=re.compile("Vos résultats d'analyse")).click()
    page.get_by_role("heading", name="Vos résultats d'analyse").wait_for()
    assert "voici vos résultats" in page.locator(".text-mail").inner_text()
    message_url = page.url
    review(browser, message_url, "message", state)
    page.reload()  # opened three times: one MDN
    mdns = [m for m in mailbox_messages(live, pro=world.pro) if b"disposition-notification" in m]
    assert len(mdns) == 1 and first.encode() in mdns[0]

    # the attachment is downloaded, never shown inline
    with page.expect_download() as info:
        page.get_by_role("link", name="résultats.pdf").click()
    download = info.value
    assert download.suggested_filename == "résultats.pdf"
    with open(download.path(), "rb") as fh:
        assert fh.read() == PDF

    # reply with a PNG
    page.get_by_label("Votre réponse").fill("Merci docteur, bien reçu.")
    page.get_by_label("Pièces jointes (facultatif)").set_input_files(
        files=[{"name": "photo.png", "mimeType": "image/png", "buffer": PNG}])
    page.get_by_role("button", name="Envoyer la réponse").click()
    assert "réponse a été envoyée" in page.get_by_role("status").inner_text()
    replies = [m for m in mailbox_messages(live, pro=world.pro) if b"Merci docteur" in m]
    assert len(replies) == 1
    reply = email.message_from_bytes(replies[0], policy=email.policy.default)
    assert str(reply["In-Reply-To"]) == first and ins in str(reply["From"])
    assert [p.get_filename() for p in reply.iter_attachments()] == ["photo.png"]
    if importlib.util.find_spec("gateway.imap_adapter.listener") is not None:  # the professional's IMAP client sees it
        over_imap = _imap_fetch_all(site, world.pro)
        assert over_imap is not None and any(b"Merci docteur" in m for m in over_imap)

    # log out; a wrong password is refused with the generic message; then log in again
    page.get_by_role("button", name="Se déconnecter").click()
    assert "déconnecté" in page.get_by_role("status").inner_text()
    page.get_by_label("Numéro INS").fill(ins)
    page.get_by_label("Mot de passe").fill("pas le bon mot de passe")
    page.get_by_label("Code de vérification").fill(totp_now(secret, ahead=1))
    page.get_by_role("button", name="Se connecter").click()
    assert "incorrect" in page.get_by_role("alert").inner_text()
    page.get_by_label("Numéro INS").fill(ins)
    page.get_by_label("Mot de passe").fill(PATIENT_PASSWORD)
    page.get_by_label("Code de vérification").fill(totp_now(secret, ahead=1))
    page.get_by_role("button", name="Se connecter").click()
    page.get_by_role("heading", name="Mes messages").wait_for()
    page.goto(f"{url}/mon-espace/historique")
    history = page.locator("table.history").inner_text()
    assert "Activation de votre espace" in history and "Téléchargement d'une pièce jointe" in history
    assert "Tentative de connexion échouée" in history and "Professionnel dr.martin@clinic.test" in history
    review(browser, f"{url}/mon-espace", "myspace", context.storage_state())
    blocked = [e for e in errors if "Content Security Policy" in e or "Refused to" in e]
    assert not blocked, blocked  # the pages need nothing the strict CSP forbids
    context.close()


def test_opposition_closes_the_space(site: Site, browser: Any) -> None:
    world, live, url = site.world, site.live, base_url(site.live)
    ins = new_ins()
    code = provision(site.home, ins)
    review(browser, f"{url}/opposition", "opposition")
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    page.goto(f"{url}/opposition")
    page.get_by_label("Numéro INS").fill(ins)
    page.get_by_label("Code d'activation").fill(code)
    page.get_by_label("Je confirme").check()
    page.get_by_role("button", name="Enregistrer mon opposition").click()
    page.get_by_role("heading", name="Opposition enregistrée").wait_for()
    assert _state(site, ins) == "opposed"
    # the code is spent: neither activation nor a second opposition
    page.goto(f"{url}/activation")
    page.get_by_label("Numéro INS").fill(ins)
    page.get_by_label("Code d'activation").fill(code)
    page.get_by_role("button", name="Continuer").click()
    assert "incorrect" in page.get_by_role("alert").inner_text()
    context.close()
    # mail to the opposed space is refused at RCPT time
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [f"{ins}@{world.patient_domain}"], b"Subject: x\r\n\r\nx\r\n")
    assert t.rcpts[0][0] >= 500


def test_login_page_review(site: Site, browser: Any) -> None:
    review(browser, f"{base_url(site.live)}/connexion", "login")
