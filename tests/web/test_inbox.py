"""The inbox over HTTP: replies only where SPEC §4 allows, attachment rules, trash and
delete, search, download headers, lockout after repeated login failures."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from gateway.store.models import Conversation, Patient
from gateway.testing.smtpclient import mailbox_messages
from tests.web.conftest import Site
from tests.web.kit import (
    PATIENT_PASSWORD,
    Account,
    activate_http,
    base_url,
    csrf_of,
    login_http,
    new_ins,
    pro_sends,
    provision,
    totp_now,
    with_attachment,
)


def fresh(site: Site) -> Account:
    ins = new_ins()
    return activate_http(site.live, ins, provision(site.home, ins))


def _conversation(site: Site, account: Account) -> int:
    with site.live.services.db.read() as s:
        mailbox = s.execute(select(Patient.mailbox_id).where(Patient.id == account.patient_id)).scalar_one()
        return int(s.execute(select(Conversation.id).where(Conversation.mailbox_id == mailbox)
                             .order_by(Conversation.id.desc())).scalars().first() or 0)


def _first_message_link(html: str) -> str:
    found = re.search(r'href="(/messages/\d+)"', html)
    assert found, html[:400]
    return found.group(1)


def test_reply_form_absent_and_forged_post_refused_on_ended_conversation(site: Site) -> None:
    a = fresh(site)
    first = pro_sends(site.live, site.world, a.ins, subject="Suivi")
    pro_sends(site.live, site.world, a.ins, subject="[FIN]", extra=f"In-Reply-To: {first}\r\n")
    cid = _conversation(site, a)
    before = len(mailbox_messages(site.live, pro=site.world.pro))
    with login_http(site.live, a) as c:
        page = c.get(f"/conversations/{cid}")
        assert page.status_code == 200 and "repondre" not in page.text and "clos cette conversation" in page.text
        r = c.post(f"/conversations/{cid}/repondre", data={"csrf": csrf_of(page.text), "text": "Et pourtant"})
        assert r.status_code == 403 and "clos cette conversation" in r.text
    assert len(mailbox_messages(site.live, pro=site.world.pro)) == before


def test_attachment_rules_and_reply(site: Site) -> None:
    a = fresh(site)
    pro_sends(site.live, site.world, a.ins, subject="Ordonnance")
    cid = _conversation(site, a)
    with login_http(site.live, a) as c:
        page = c.get(f"/conversations/{cid}")
        assert "10,0 Mo par fichier" in page.text and "15,0 Mo au total" in page.text
        token = csrf_of(page.text)
        url = f"/conversations/{cid}/repondre"
        fake_pdf = {"attachments": ("ordonnance.pdf", b"MZ\x90\x00 this is an executable", "application/pdf")}
        r = c.post(url, data={"csrf": token, "text": "ci-joint"}, files=fake_pdf)
        assert r.status_code == 400 and "ne correspond pas" in r.text
        exe = {"attachments": ("setup.exe", b"MZ\x90\x00", "application/pdf")}
        assert c.post(url, data={"csrf": token, "text": "ci-joint"}, files=exe).status_code == 400
        big = {"attachments": ("gros.txt", b"a" * (10 * 1024 * 1024 + 1), "text/plain")}
        r = c.post(url, data={"csrf": token, "text": "ci-joint"}, files=big)
        assert r.status_code == 400 and "taille maximale" in r.text
        ok = {"attachments": ("note.txt", b"Tension 12/8, pouls 70", "application/octet-stream")}
        r = c.post(url, data={"csrf": token, "text": "Voici mes mesures"}, files=ok)
        assert r.status_code == 200 and "réponse a été envoyée" in r.text
    replies = [m for m in mailbox_messages(site.live, pro=site.world.pro) if b"Voici mes mesures" in m]
    assert len(replies) == 1 and b"Content-Type: text/plain" in replies[0] and b'filename="note.txt"' in replies[0]


def test_download_headers_trash_delete_and_search(site: Site) -> None:
    a = fresh(site)
    html_part = b"<html><body><h1>Piege</h1><script>alert(1)</script></body></html>"
    pro_sends(site.live, site.world, a.ins, subject="Compte rendu opératoire",
              body=with_attachment("Le compte rendu est joint.", "rapport.html", html_part, "text/html"))
    with login_http(site.live, a) as c:
        link = _first_message_link(c.get(f"/conversations/{_conversation(site, a)}").text)
        r = c.get(f"{link}/pieces/0")
        assert r.status_code == 200 and r.content == html_part
        assert r.headers["content-type"] == "application/octet-stream"  # never rendered as HTML
        assert r.headers["content-disposition"].startswith('attachment; filename="rapport.html"')
        assert r.headers["x-content-type-options"] == "nosniff" and "sandbox" in r.headers["content-security-policy"]
        assert c.get(f"{link}/pieces/7").status_code == 404

        found = c.get("/recherche", params={"q": "opératoire compte"})
        assert "Compte rendu opératoire" in found.text and "1 résultat" in found.text
        assert "0 résultat" in c.get("/recherche", params={"q": "radiographie"}).text

        token = csrf_of(c.get(link).text)
        assert "Aucun message non lu" in c.get("/").text  # opened: marked seen
        c.post(f"{link}/non-lu", data={"csrf": token})
        assert "1 message non lu" in c.get("/").text
        r = c.post(f"{link}/corbeille", data={"csrf": token})
        assert "Compte rendu opératoire" not in r.text  # back on the inbox, without it
        trash = c.get("/corbeille").text
        assert "Compte rendu opératoire" in trash
        in_trash = _first_message_link(trash)
        r = c.post(f"{in_trash}/supprimer", data={"csrf": token})
        assert "La corbeille est vide" in r.text
        assert c.get(in_trash).status_code == 404
        assert "0 résultat" in c.get("/recherche", params={"q": "opératoire"}).text


def test_repeated_login_failures_delay_then_lock(site: Site) -> None:
    a = fresh(site)
    with httpx.Client(base_url=base_url(site.live)) as c:
        token = csrf_of(c.get("/connexion").text)
        statuses = []
        for _ in range(5):
            r = c.post("/connexion", data={"ins": a.ins, "password": "mauvais mot de passe", "code": "000000",
                                           "csrf": token})
            statuses.append(r.status_code)
            assert "Identifiant, mot de passe ou code de vérification incorrect." in r.text
        assert statuses == [401] * 5
        # now even the right credentials are refused for a while, with a message that says so
        r = c.post("/connexion", data={"ins": a.ins, "password": PATIENT_PASSWORD,
                                       "code": totp_now(a.secret, ahead=1), "csrf": token})
        assert r.status_code == 429 and "Trop de tentatives" in r.text
        # an unknown INS gets the same generic answer as a wrong password
        r = c.post("/connexion", data={"ins": new_ins(), "password": "x" * 12, "code": "000000", "csrf": token})
        assert r.status_code == 401 and "Identifiant, mot de passe ou code de vérification incorrect." in r.text
