"""The mailbox access page (issue 19) in headless Chromium: a mailbox created with a type from
the Professionnels page, then granted to a professional from its Accès page; axe-core finds
nothing serious on either page (checked in a context that lets axe in, after the journey ran
under the real CSP)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.admin_web.conftest import AdminSite
from tests.admin_web.test_browser import log_in
from tests.web.browser_kit import axe_violations


def test_access_page_journey_and_accessibility(site: AdminSite, browser: Any) -> None:
    context = browser.new_context(locale="fr-FR")
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        log_in(page, site)
        page.get_by_role("link", name="Professionnels").click()
        page.get_by_label("Adresse (domaine hébergé)").fill("nav-secretariat@clinic.test")
        page.get_by_label("Type de boîte").select_option("organisational")
        page.get_by_role("button", name="Créer").click()
        row = page.locator("#pros tr", has_text="nav-secretariat@clinic.test")
        expect(row).to_contain_text("organisationnelle")
        row.get_by_role("link", name="Accès à nav-secretariat@clinic.test").click()
        expect(page.get_by_role("heading", name="Accès à la boîte nav-secretariat@clinic.test")).to_be_visible()
        page.get_by_label("Adresse de la boîte personnelle du professionnel").fill(site.world.pro)
        page.get_by_role("button", name="Donner accès").click()
        expect(page.get_by_role("status")).to_have_text("Accès accordé.")
        expect(page.locator("#grantees")).to_contain_text(site.world.pro)
        state = context.storage_state()
        assert errors == []
    finally:
        context.close()
    checking = browser.new_context(bypass_csp=True, storage_state=state, locale="fr-FR")
    try:
        page = checking.new_page()
        for url in (site.url + "/admin/pros", site.url + "/admin/pros/nav-secretariat@clinic.test/access"):
            response = page.goto(url)
            assert response is not None and response.status == 200, url
            problems = axe_violations(page)
            assert not problems, [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in problems]
    finally:
        checking.close()
