"""Health documents in headless Chromium at phone width (issue 21): an XDM archive delivered
through the real submission path, the patient opens the message, sees each document's title,
type, date and author, opens the PDF and the level-3 rendering, finds them again under
"Mes documents", and exports them; axe-core finds nothing serious on those pages."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from healthdocs import testing as xdm
from tests.web.browser_kit import VIEWPORTS, review
from tests.web.conftest import Site
from tests.web.kit import PATIENT_PASSWORD, activate_http, base_url, new_ins, provision, totp_now
from tests.web.test_documents import HOSTILE, send

PDF = xdm.pdf("Compte rendu de sortie (test)")


def test_documents_on_a_phone(site: Site, browser: Any) -> None:
    url = base_url(site.live)
    ins = new_ins()
    account = activate_http(site.live, ins, provision(site.home, ins))
    archive = xdm.archive(ins, [
        xdm.Doc("DOC0001.XML", xdm.cda_level1(ins, document=PDF), ins),
        xdm.Doc("DOC0002.XML", xdm.cda_level3(ins, effective="20260220081500+0100", sections=(
            ("Hématologie", "<paragraph>Hémoglobine : 14 g/dL</paragraph>"), ("Biochimie", HOSTILE))),
            ins, title="Résultats de biologie", code=xdm.LOINC_LAB, class_code=("11", "Résultat d'examen"))])
    send(site, ins, archive, "Vos documents de sortie")

    context = browser.new_context(viewport=VIEWPORTS["phone"], accept_downloads=True, locale="fr-FR",
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{url}/connexion")
    page.get_by_label("Numéro INS").fill(ins)
    page.get_by_label("Mot de passe").fill(PATIENT_PASSWORD)
    page.get_by_label("Code de vérification").fill(totp_now(account.secret, ahead=1))
    page.get_by_role("button", name="Se connecter").click()
    page.get_by_role("heading", name="Mes messages").wait_for()

    # the message: its documents, in French
    page.locator("ul.threads li a").filter(has_text="Vos documents de sortie").first.click()
    page.get_by_role("link", name=re.compile("Vos documents de sortie")).click()
    page.get_by_role("heading", name="Vos documents de sortie").wait_for()
    section = page.locator("section.documents")
    cards = section.locator("li.document")
    assert cards.count() == 2
    first, second = cards.nth(0).inner_text(), cards.nth(1).inner_text()
    assert "Compte rendu d'hospitalisation" in first and "Compte rendu hospitalier (synthèse)" in first
    assert "15 janvier 2026 à 10:30" in first and "Alex EXEMPLE" in first
    assert "Résultats de biologie" in second and "CR d'examens biologiques" in second
    assert "20 février 2026 à 08:15" in second
    assert page.get_by_role("link", name="IHE_XDM.ZIP").count() == 1  # the original stays downloadable
    message_url = page.url
    state = context.storage_state()
    review(browser, message_url, "document-message", state)

    # the PDF, inline, sandboxed
    pdf_link = page.get_by_role("link", name=re.compile("^Ouvrir le PDF"))
    href = pdf_link.get_attribute("href")
    assert href is not None
    response = page.request.get(f"{url}{href}")
    assert response.status == 200 and response.body() == PDF
    headers = response.headers
    assert headers["content-type"] == "application/pdf" and headers["content-disposition"].startswith("inline;")
    assert "sandbox" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"
    with page.expect_response(lambda r: r.url.endswith(href)) as opened:
        pdf_link.click()
    assert opened.value.status == 200 and opened.value.headers["content-type"] == "application/pdf"
    page.goto(message_url)

    # the level-3 rendering
    page.get_by_role("link", name=re.compile("^Lire le document")).click()
    page.get_by_role("heading", name="Résultats de biologie").wait_for()
    text = page.locator(".narrative").inner_text()
    assert "Hémoglobine : 14 g/dL" in text and "<script>alert(1)</script>" in text  # shown as text
    assert page.locator(".narrative script, .narrative [onclick], .narrative a[href^='javascript']").count() == 0
    assert page.locator(".narrative th", has_text="Examen").count() == 1
    review(browser, page.url, "document-level3", state)

    # "Mes documents"
    page.get_by_role("navigation", name="Navigation principale").get_by_role("link", name="Mes documents").click()
    page.get_by_role("heading", name=re.compile("^Mes documents")).wait_for()
    titles = page.locator("p.doc-title").all_inner_texts()
    assert titles == ["Résultats de biologie", "Compte rendu d'hospitalisation"]  # newest first
    page.get_by_label("Type de document").select_option(label="CR d'examens biologiques (1)")
    page.get_by_role("button", name="Filtrer").click()
    assert page.locator("p.doc-title").all_inner_texts() == ["Résultats de biologie"]
    review(browser, f"{url}/mes-documents", "documents", state)

    # the export holds the PDF
    page.goto(f"{url}/mon-espace")
    with page.expect_download() as info:
        page.get_by_role("button", name="Exporter mes données").click()
    with open(info.value.path(), "rb") as fh, zipfile.ZipFile(io.BytesIO(fh.read())) as z:
        pdfs = [n for n in z.namelist() if n.startswith("documents/") and n.endswith(".pdf")]
        assert len(pdfs) == 1 and z.read(pdfs[0]) == PDF
    blocked = [e for e in errors if "Content Security Policy" in e or "Refused to" in e]
    assert not blocked, blocked
    context.close()
