""""Mon espace": notification settings, password change, new TOTP, export, closing the space
and asking for deletion."""

from __future__ import annotations

import io
import json
import re
import zipfile

from sqlalchemy import select

from gateway.accounts.patients import personal_email
from gateway.store.models import Patient, WebSession
from gateway.testing.smtpclient import submission_client, transaction
from gateway.testing.store import by_id
from gateway.testing.world import PASSWORD
from tests.web.conftest import Site
from tests.web.kit import PATIENT_PASSWORD, Account, activate_http, csrf_of, login_http, new_ins, pro_sends, provision
from tests.web.kit import totp_now as code_for


def fresh(site: Site) -> Account:
    ins = new_ins()
    return activate_http(site.live, ins, provision(site.home, ins))


def _patient(site: Site, account: Account) -> Patient:
    with site.live.services.db.read() as s:
        return s.execute(select(Patient).where(Patient.id == account.patient_id)).scalar_one()


def test_settings_password_totp_and_export(site: Site) -> None:
    a = fresh(site)
    pro_sends(site.live, site.world, a.ins, subject="Bilan sanguin")
    with login_http(site.live, a) as c:
        page = c.get("/mon-espace")
        token = csrf_of(page.text)
        assert f"{a.ins}@{site.world.patient_domain}" in page.text

        r = c.post("/mon-espace/notifications", data={"csrf": token, "email": "pas une adresse", "notify": "oui"})
        assert r.status_code == 400
        r = c.post("/mon-espace/notifications", data={"csrf": token, "email": "moi@perso.example", "notify": "oui"})
        assert "réglages sont enregistrés" in r.text and 'value="moi@perso.example"' in r.text
        with site.live.services.db.read() as s:
            patient = by_id(s, Patient, a.patient_id)
            assert patient is not None and patient.notifications_enabled
            assert personal_email(s, site.live.services.keys, patient) == "moi@perso.example"
        c.post("/mon-espace/notifications", data={"csrf": token, "email": "moi@perso.example"})
        assert not _patient(site, a).notifications_enabled

        new_password = "Un autre mot de passe tout aussi long"
        r = c.post("/mon-espace/mot-de-passe", data={"csrf": token, "current_password": "faux mot de passe",
                                                     "password": new_password, "confirmation": new_password})
        assert r.status_code == 400 and "incorrect" in r.text
        r = c.post("/mon-espace/mot-de-passe", data={"csrf": token, "current_password": PATIENT_PASSWORD,
                                                     "password": "azertyuiop123", "confirmation": "azertyuiop123"})
        assert r.status_code == 400 and "trop courant" in r.text
        r = c.post("/mon-espace/mot-de-passe", data={"csrf": token, "current_password": PATIENT_PASSWORD,
                                                     "password": new_password, "confirmation": new_password})
        assert "mot de passe est changé" in r.text

        r = c.post("/mon-espace/double-authentification", data={"csrf": token, "current_password": new_password,
                                                                "code": code_for(a.secret)})
        found = re.search(r'<code class="secret"[^>]*>([A-Z2-7 ]+)</code>', r.text)
        assert found, r.text[:300]
        new_secret = found.group(1).replace(" ", "")
        assert new_secret != a.secret
        r = c.post("/mon-espace/double-authentification/confirmer",
                   data={"csrf": token, "code": code_for(a.secret)})
        assert r.status_code == 400  # a code of the old application does not confirm the new one
        r = c.post("/mon-espace/double-authentification/confirmer", data={"csrf": token, "code": code_for(new_secret)})
        assert "nouvelle application" in r.text

        r = c.post("/mon-espace/export", data={"csrf": token})
        assert r.headers["content-type"] == "application/zip" and "attachment" in r.headers["content-disposition"]
        archive = zipfile.ZipFile(io.BytesIO(r.content))
        index = json.loads(archive.read("index.json"))
        assert [m["subject"] for m in index["messages"]] == ["Bilan sanguin"]
        assert b"Subject: Bilan sanguin" in archive.read(index["messages"][0]["file"])
        history = c.get("/mon-espace/historique").text
        for text in ("Export de vos données", "Changement de mot de passe", "Nouvelle application",
                     "Modification des avis par courriel"):
            assert text in history


def test_close_my_space(site: Site) -> None:
    a = fresh(site)
    with login_http(site.live, a) as c:
        token = csrf_of(c.get("/mon-espace").text)
        r = c.post("/mon-espace/fermer", data={"csrf": token, "current_password": PATIENT_PASSWORD})
        assert r.status_code == 400  # confirmation box not ticked
        r = c.post("/mon-espace/fermer", data={"csrf": token, "current_password": PATIENT_PASSWORD, "confirm": "oui"})
        assert "Espace fermé" in r.text
        assert c.get("/").url.path == "/connexion"
    patient = _patient(site, a)
    assert patient.state == "closed" and patient.closed_at is not None and patient.purge_after is not None
    with site.live.services.db.read() as s:
        assert s.execute(select(WebSession).where(WebSession.patient_id == a.patient_id)).first() is None
    with submission_client(site.live, site.world.pro, PASSWORD) as client:
        t = transaction(client, site.world.pro, [f"{a.ins}@{site.world.patient_domain}"], b"Subject: x\r\n\r\nx\r\n")
    assert t.rcpts[0][0] >= 500  # no more mail


def test_request_deletion(site: Site) -> None:
    a = fresh(site)
    with login_http(site.live, a) as c:
        token = csrf_of(c.get("/mon-espace").text)
        r = c.post("/mon-espace/suppression", data={"csrf": token, "current_password": PATIENT_PASSWORD,
                                                    "confirm": "oui"})
        assert "Demande de suppression enregistrée" in r.text
    patient = _patient(site, a)
    assert patient.deletion_requested_at is not None and patient.state == "closed"
