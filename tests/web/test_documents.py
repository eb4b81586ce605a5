"""Health documents in the web inbox over HTTP (issue 21): archives delivered through the real
submission path (so the sealed summaries are the pipeline's), the message page lists each
document in French, the PDF is served inline with a sandboxing CSP, a level-3 CDA's narrative
is sanitised, another patient gets 404, "Mes documents" is newest first and filters by type,
every opening is in the access history, and the export holds each document."""

from __future__ import annotations

import io
import json
import re
import zipfile

import httpx

from gateway.testing.smtpclient import submission_client, transaction
from gateway.testing.world import PASSWORD
from healthdocs import testing as xdm
from tests.web.conftest import Site
from tests.web.kit import Account, activate_http, csrf_of, login_http, new_ins, provision

HOSTILE = ('<paragraph styleCode="Bold" ID="p1" onclick="steal()">Glycémie &lt;script&gt;alert(1)&lt;/script&gt;'
           '</paragraph><linkHtml href="javascript:alert(1)">piège</linkHtml>'
           '<renderMultiMedia referencedObject="img1"/>'
           '<table><thead><tr><th scope="col">Examen</th><th>Valeur</th></tr></thead>'
           '<tbody><tr><td>Potassium</td><td colspan="1" style="color:red">4,2 mmol/L</td></tr></tbody></table>')


def fresh(site: Site) -> Account:
    ins = new_ins()
    return activate_http(site.live, ins, provision(site.home, ins))


def send(site: Site, ins: str, archive: bytes, subject: str) -> None:
    """A professional's software sends the archive over submission (the real pipeline)."""
    to = f"{ins}@{site.world.patient_domain}"
    raw = xdm.message(archive, sender=site.world.pro, to=to, subject=subject)
    with submission_client(site.live, site.world.pro, PASSWORD) as client:
        t = transaction(client, site.world.pro, [to], raw)
    assert t.data is not None and t.data[0] == 250, t


def level3(ins: str, *, effective: str = "20260220081500+0100") -> bytes:
    return xdm.archive(ins, [xdm.Doc("DOC0001.XML", xdm.cda_level3(
        ins, effective=effective, sections=(("Biochimie", HOSTILE),)), ins, title="Résultats de biologie",
        code=xdm.LOINC_LAB, class_code=("11", "Résultat d'examen"))])


def message_link(c: httpx.Client, subject: str) -> str:
    inbox = c.get("/").text
    conv = re.search(r'href="(/conversations/\d+)"[^>]*>(?:(?!</a>).)*' + re.escape(subject), inbox, re.S)
    page = c.get(conv.group(1)).text if conv else inbox
    found = re.search(r'href="(/messages/\d+)"', page)
    assert found, page[:500]
    return found.group(1)


def test_documents_listed_opened_and_guarded(site: Site) -> None:
    a, b = fresh(site), fresh(site)
    send(site, a.ins, xdm.level1(a.ins), "Compte rendu")
    with login_http(site.live, a) as c:
        url = message_link(c, "Compte rendu")
        page = c.get(url).text
        assert "Documents de santé" in page and "Compte rendu d&#39;hospitalisation" in page
        assert "Compte rendu hospitalier (synthèse)" in page  # the type code's display name
        assert "15 janvier 2026 à 10:30" in page and "Alex EXEMPLE" in page, page[page.find("doc-meta"):][:600]
        assert "IHE_XDM.ZIP" in page  # the original archive stays downloadable
        pdf_url = re.search(r'href="(/messages/\d+/documents/0/pdf)"', page)
        assert pdf_url, page
        r = c.get(pdf_url.group(1))
        assert r.status_code == 200 and r.content.startswith(b"%PDF-") and r.content == xdm.pdf()
        assert r.headers["content-type"] == "application/pdf"
        assert r.headers["content-disposition"].startswith('inline; filename="Compte_rendu_d_hospitalisation.pdf"')
        assert r.headers["x-content-type-options"] == "nosniff"
        csp = r.headers["content-security-policy"]
        assert "sandbox" in csp and "default-src 'none'" in csp
        assert c.get(pdf_url.group(1) + "?telecharger=1").headers["content-disposition"].startswith("attachment;")
        assert c.get(url + "/documents/1").status_code == 404
        assert c.get(url + "/documents/0").status_code == 200
        history = c.get("/mon-espace/historique").text
        assert "Ouverture d&#39;un document de santé (PDF)" in history
        assert "Compte rendu d&#39;hospitalisation" not in history  # never the title
    with login_http(site.live, b) as other:
        assert other.get(pdf_url.group(1)).status_code == 404
        assert other.get(url + "/documents/0").status_code == 404
        assert "Aucun document" in other.get("/mes-documents").text


def test_level3_narrative_is_sanitised(site: Site) -> None:
    a = fresh(site)
    send(site, a.ins, level3(a.ins), "Biologie")
    with login_http(site.live, a) as c:
        url = message_link(c, "Biologie")
        page = c.get(url).text
        assert "Lire le document" in page and "Résultats de biologie" in page
        doc = c.get(url + "/documents/0")
        assert doc.status_code == 200
        html = doc.text.split('<div class="narrative">', 1)[1].split("</article>", 1)[0]
        assert '<p class="cda-bold">Glycémie &lt;script&gt;alert(1)&lt;/script&gt;</p>' in html
        assert "piège" in html and "javascript" not in html and "steal" not in html and "onclick" not in html
        assert "<script" not in html and "style=" not in html and "img1" not in html
        assert '<th scope="col">Examen</th>' in html and "<td colspan=\"1\">4,2 mmol/L</td>" in html
        assert "20 février 2026 à 08:15" in doc.text
        assert c.get(url + "/documents/0/pdf").status_code == 404  # no PDF in a level-3 document


def test_my_documents_newest_first_and_filtered(site: Site) -> None:
    a = fresh(site)
    send(site, a.ins, level3(a.ins, effective="20250301090000+0100"), "Ancien bilan")
    send(site, a.ins, xdm.several(a.ins), "Plusieurs documents")
    send(site, a.ins, level3(a.ins, effective="20261001090000+0200"), "Bilan récent")
    with login_http(site.live, a) as c:
        page = c.get("/mes-documents").text
        titles = re.findall(r'<p class="doc-title"><strong>([^<]+)</strong>', page)
        assert len(titles) == 5 and titles[0] == "Résultats de biologie" and titles[-1] == "Résultats de biologie"
        assert page.index("1er octobre 2026") < page.index("15 janvier 2026") < page.index("1er mars 2025")
        assert "Ordonnance" in titles and "Prescription (1)" in page
        only = c.get("/mes-documents", params={"type": "57833-6"}).text
        assert re.findall(r'<p class="doc-title"><strong>([^<]+)</strong>', only) == ["Ordonnance"]
        assert "(1 sur 5)" in only
        assert len(re.findall(r'class="doc-title"', c.get("/mes-documents", params={"type": "nope"}).text)) == 5


def test_export_holds_each_document(site: Site) -> None:
    a = fresh(site)
    send(site, a.ins, xdm.level1(a.ins), "Compte rendu")
    send(site, a.ins, level3(a.ins), "Biologie")
    with login_http(site.live, a) as c:
        r = c.post("/mon-espace/export", data={"csrf": csrf_of(c.get("/mon-espace").text)})
        assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        names = z.namelist()
        pdfs = [n for n in names if n.startswith("documents/") and n.endswith(".pdf")]
        assert len(pdfs) == 1 and z.read(pdfs[0]) == xdm.pdf()
        pages = [n for n in names if n.startswith("documents/") and n.endswith(".html")]
        cards = [n for n in pages if n.endswith("-fiche.html")]
        assert len(cards) == 2 and len(pages) == 3
        narrative = z.read(next(n for n in pages if n not in cards)).decode()
        assert "Potassium" in narrative and "javascript" not in narrative and "Content-Security-Policy" in narrative
        card = z.read(next(n for n in cards if "hospitalisation" in n)).decode()
        assert "15 janvier 2026 à 10:30" in card and "Alex EXEMPLE" in card and ".pdf" in card
        index = json.loads(z.read("index.json"))
        listed = [d for m in index["messages"] for d in m.get("documents", [])]
        assert {d["title"] for d in listed} == {"Compte rendu d'hospitalisation", "Résultats de biologie"}


def test_a_pdf_that_is_not_one_is_never_served(site: Site) -> None:
    """A level-1 CDA that says ``application/pdf`` but holds HTML: no PDF route, no bytes."""
    a = fresh(site)
    fake = b"<html><script>alert(document.cookie)</script></html>"
    send(site, a.ins, xdm.archive(a.ins, [xdm.Doc("DOC0001.XML", xdm.cda_level1(a.ins, document=fake), a.ins)]),
         "Faux PDF")
    with login_http(site.live, a) as c:
        url = message_link(c, "Faux PDF")
        assert "Ouvrir le PDF" in c.get(url).text  # the summary says PDF: the check is at opening
        r = c.get(url + "/documents/0/pdf")
        assert r.status_code == 404 and b"alert(document.cookie)" not in r.content
        page = c.get(url + "/documents/0")
        assert page.status_code == 200 and "ne peut pas être affiché" in page.text and "script" not in page.text.split(
            "<main", 1)[1]
