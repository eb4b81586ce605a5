"""The admin console in headless Chromium: an admin logs in with password + TOTP and uses every page."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from routing.ins import synthetic_ins
from tests.admin_web.conftest import ADMIN, ADMIN_PASSWORD, AdminSite
from tests.admin_web.test_api import liste, queued_entry


def log_in(page: Page, site: AdminSite) -> None:
    page.goto(site.url + "/admin/")
    expect(page).to_have_url(site.url + "/admin/login")
    page.get_by_label("Identifiant").fill(ADMIN)
    page.get_by_label("Mot de passe").fill(ADMIN_PASSWORD)
    page.get_by_label("Code à usage unique").fill(site.code())
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="Tableau de bord")).to_be_visible()


def test_console_journey(site: AdminSite, browser: Any, tmp_path: Path) -> None:
    context = browser.new_context(locale="fr-FR")
    errors: list[str] = []
    try:
        page = context.new_page()
        # CSP violations and script errors (HTTP errors the journey provokes on purpose are not counted)
        page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        log_in(page, site)

        # dashboard: figures and two server-rendered charts
        expect(page.locator("#fig-created")).not_to_have_text("0")
        assert page.locator("figure svg polyline").count() == 5
        expect(page.locator("svg title").first).to_have_text("Espaces patients par jour")

        # trusted domains: add, suspend, resume
        page.get_by_role("link", name="Domaines de confiance").click()
        page.get_by_label("Nom de domaine").fill("navigateur.example")
        page.get_by_label("Description").fill("ajouté au navigateur")
        page.get_by_label("Connexions simultanées au MX par adresse de l'opérateur (facultatif)").fill("120")
        page.get_by_label("Adresses d'envoi de l'opérateur (IP ou CIDR, séparées par des virgules)").fill(
            "192.0.2.0/24")
        page.get_by_role("button", name="Ajouter").click()
        expect(page.get_by_role("status")).to_have_text("Domaine ajouté à la liste de confiance.")
        row = page.locator("#domains tr", has_text="navigateur.example")
        expect(row).to_contain_text("120 par adresse (192.0.2.0/24)")
        row.get_by_role("button", name="Suspendre navigateur.example").click()
        expect(page.locator("#domains tr", has_text="navigateur.example")).to_contain_text("suspendu")
        page.locator("#domains tr", has_text="navigateur.example").get_by_role("button").click()
        expect(page.locator("#domains tr", has_text="navigateur.example")).to_contain_text("actif")

        # liste blanche import: preview, then apply
        xml = tmp_path / "liste.xml"
        xml.write_bytes(liste("import-nav-1.example", "import-nav-2.example"))
        page.get_by_role("link", name="Importer la liste blanche (XML)").click()
        page.get_by_label("Fichier XML").set_input_files(str(xml))
        page.get_by_role("button", name="Voir l'aperçu").click()
        expect(page.locator("#import-counts")).to_contain_text("2 ajout(s)")
        expect(page.locator("pre.diff")).to_contain_text("+ import-nav-1.example")
        page.get_by_role("button", name="Appliquer l'import").click()
        expect(page.get_by_role("status")).to_have_text("Liste blanche importée.")
        expect(page.locator("#domains")).to_contain_text("import-nav-2.example")

        # professionals: create, disable
        page.get_by_role("link", name="Professionnels").click()
        page.get_by_label("Adresse (domaine hébergé)").fill("dr.nav@clinic.test")
        page.get_by_role("button", name="Créer", exact=True).click()
        expect(page.get_by_role("status")).to_have_text("Compte professionnel créé.")
        page.get_by_role("button", name="Désactiver dr.nav@clinic.test").click()
        expect(page.locator("#pros tr", has_text="dr.nav@clinic.test")).to_contain_text("désactivé")

        # patients: provision, then look up by INS (state and history, no content)
        ins = synthetic_ins(random.Random(777))
        page.get_by_role("link", name="Patients").click()
        page.get_by_label("INS", exact=True).fill(ins)
        page.get_by_role("button", name="Créer l'espace").click()
        expect(page.locator("#created")).to_contain_text("Code d'activation")
        page.get_by_label("INS du patient").fill(ins)
        page.get_by_role("button", name="Rechercher").click()
        expect(page.locator("#patient-state-value")).to_have_text("provisioned")
        expect(page.locator("#history")).to_contain_text("patient.provision")
        expect(page.locator("#history")).to_contain_text(f"admin:{ADMIN}")
        page.get_by_label("INS du patient").fill("123")
        page.get_by_role("button", name="Rechercher").click()
        expect(page.get_by_role("alert")).to_contain_text("INS invalide")

        # outbound queue: retry, cancel
        entry = queued_entry(site)
        page.get_by_role("link", name="File d'envoi").click()
        page.get_by_role("button", name=f"Réessayer {entry[:8]}").click()
        expect(page.get_by_role("status")).to_have_text("Nouvel essai programmé.")
        page.get_by_role("button", name=f"Annuler {entry[:8]}").click()
        expect(page.get_by_role("status")).to_have_text("Entrée annulée.")
        expect(page.locator("#queue")).not_to_contain_text(entry[:8])

        # audit trail: search, verify, export
        page.get_by_role("link", name="Journal d'audit").click()
        page.get_by_label("Acteur").fill(f"admin:{ADMIN}")
        page.get_by_label("Action").fill("queue.admin.*")
        page.get_by_role("button", name="Rechercher").click()
        expect(page.locator("#audit tbody tr", has_text=f"queue:{entry}")).to_have_count(2)
        assert all(a.startswith("queue.admin.") for a in page.locator("#audit tbody td:nth-child(4)").all_inner_texts())
        page.get_by_role("button", name="Vérifier la chaîne").click()
        expect(page.locator("#verify-result")).to_contain_text("Chaîne intacte")
        with page.expect_download() as download:
            page.get_by_role("link", name="JSON Lines").click()
        assert download.value.suggested_filename == "audit.jsonl"

        page.get_by_role("button", name="Se déconnecter").click()
        expect(page).to_have_url(site.url + "/admin/login")
        page.goto(site.url + "/admin/audit")
        expect(page).to_have_url(site.url + "/admin/login")
        assert not errors, errors
    finally:
        context.close()
