"""The CDA narrative block as HTML (gateway.web.patient.narrative) and the French wording of
documents (gateway.web.patient.healthview), byte for byte: hostile narratives in, safe HTML out."""

from __future__ import annotations

import pytest

from gateway.web.patient import healthview, narrative
from healthdocs import xmlsafe
from healthdocs.model import Archive, Coded, Document, Found

NS = 'xmlns="urn:hl7-org:v3"'


def render(inner: str, *, extra_ns: str = "") -> str:
    return narrative.render(xmlsafe.parse(f"<text {NS}{extra_ns}>{inner}</text>".encode()))


@pytest.mark.parametrize(("inner", "expected"), [
    # the vocabulary, mapped
    ("<paragraph>Hémoglobine : 14 g/dL</paragraph>", "<p>Hémoglobine : 14 g/dL</p>"),
    ("<list><item>un</item><item>deux</item></list>", "<ul><li>un</li><li>deux</li></ul>"),
    ('<list listType="ordered" styleCode="BigRoman"><item>un</item></list>',
     '<ol class="cda-bigroman"><li>un</li></ol>'),
    ("<paragraph>a<br/>b<sub>2</sub><sup>3</sup></paragraph>", "<p>a<br>b<sub>2</sub><sup>3</sup></p>"),
    ('<content styleCode="Bold Italics">x</content>', '<span class="cda-bold cda-italics">x</span>'),
    ('<table><caption>T</caption><thead><tr><th scope="row" colspan="2">A</th></tr></thead>'
     '<tbody><tr><td rowspan="3">1</td></tr></tbody></table>',
     '<table><caption>T</caption><thead><tr><th colspan="2" scope="row">A</th></tr></thead>'
     '<tbody><tr><td rowspan="3">1</td></tr></tbody></table>'),
    ('<linkHtml href="https://hopital.example/cr?a=1&amp;b=2">lien</linkHtml>',
     '<a href="https://hopital.example/cr?a=1&amp;b=2" rel="noopener noreferrer">lien</a>'),
    # hostile: text that looks like markup stays text
    ("<paragraph>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;</paragraph>",
     "<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; \"x\"</p>"),
    ("<paragraph>&lt;img src=x onerror=alert(1)&gt;</paragraph>", "<p>&lt;img src=x onerror=alert(1)&gt;</p>"),
    # hostile: attributes other than the allowed ones, and styleCodes off the list
    ('<paragraph ID="a" onclick="x()" style="background:url(//evil)" styleCode="Bold evil&quot; onclick">t'
     '</paragraph>', '<p class="cda-bold">t</p>'),
    ('<table><tr><td colspan="2 onclick=x" rowspan="0" style="x">c</td><th scope="x">h</th></tr></table>',
     "<table><tbody><tr><td>c</td><th>h</th></tr></tbody></table>"),
    # hostile links: only https, http and mailto survive; the text stays
    ('<linkHtml href="javascript:alert(1)">a</linkHtml>', "a"),
    ('<linkHtml href=" jav&#x09;ascript:alert(1)">a</linkHtml>', "a"),
    ('<linkHtml href="data:text/html,&lt;script&gt;">a</linkHtml>', "a"),
    ('<linkHtml href="#ref1">a</linkHtml>', "a"),
    ('<linkHtml href="https://a.example/&quot;onmouseover=&quot;x">a</linkHtml>',
     '<a href="https://a.example/&quot;onmouseover=&quot;x" rel="noopener noreferrer">a</a>'),  # stays in the value
    # dropped with their content: multimedia, footnote references, other namespaces
    ('<renderMultiMedia referencedObject="i1"><caption>photo</caption></renderMultiMedia>après', "après"),
    ('<footnoteRef IDREF="f1"/>x', "x"),
    ('<h:script>alert(1)</h:script><h:iframe src="https://evil.example"/>ok', "ok"),
    ('<h:a href="javascript:x()">clic</h:a>fin', "fin"),
    # unknown CDA elements: their text, escaped, no tag
    ("<script>alert(1)</script><object data='x'>o</object>", "alert(1)o"),
    ("<!-- commentaire --><paragraph>p</paragraph>", "<p>p</p>"),
])
def test_narrative_byte_for_byte(inner: str, expected: str) -> None:
    assert render(inner, extra_ns=' xmlns:h="http://www.w3.org/1999/xhtml"') == expected


def test_depth_is_bounded_and_text_kept() -> None:
    deep = "<content>" * 200 + "fond" + "</content>" * 200
    out = render(deep)
    assert "fond" in out and out.count("<span>") <= narrative.MAX_DEPTH + 1


def test_empty_and_missing_text() -> None:
    assert narrative.render(None) == ""
    assert render("") == ""


def _doc(**kw: object) -> Document:
    base: dict[str, object] = {"entry": "IHE_XDM/SUBSET01/DOC0001.XML", "title": "CR", "level": 1,
                               "body_media_type": "application/pdf"}
    base.update(kw)
    return Document(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("ts", "text"), [
    ("20260115103000+0100", "15 janvier 2026 à 10:30"),
    ("20260701083000+0000", "1er juillet 2026 à 10:30"),  # Paris summer time
    ("202601151030", "15 janvier 2026 à 10:30"),  # no zone: Paris time
    ("20260115", "15 janvier 2026"),
    ("202608", "août 2026"),
    ("2026", "2026"),
    ("20261345", ""),
    ("nonsense", ""),
    (None, ""),
])
def test_french_dates(ts: str | None, text: str) -> None:
    assert healthview.french(healthview.when(ts)) == text


def test_what_a_page_says_of_a_document() -> None:
    doc = _doc(type_code=Coded("11490-0", "2.16.840.1.113883.6.1", "CR hospitalier"),
               class_code=Coded("10", "x", "Compte rendu"), author=" Alex EXEMPLE ", effective="20260115103000+0100",
               created="20250101")
    s = healthview.shown(0, doc, "2", "IHE_XDM.ZIP")
    assert (s.title, s.type_label, s.category, s.date, s.author, s.has_pdf, s.readable, s.type_key) == (
        "CR", "CR hospitalier", "Compte rendu", "15 janvier 2026 à 10:30", "Alex EXEMPLE", True, False, "11490-0")
    bare = healthview.shown(3, _doc(title=None, level=0, body_media_type=None), "2", None)
    assert (bare.title, bare.type_label, bare.author, bare.date, bare.has_pdf) == (
        healthview.NO_TITLE, healthview.NO_TYPE, healthview.NO_AUTHOR, "", False)


def test_positions_skip_damaged_and_invisible_but_stay_stable() -> None:
    hidden = _doc(title="caché", confidentiality=(Coded("INVISIBLE_PATIENT"),))
    found = Found((Archive("2", "IHE_XDM.ZIP", documents=(_doc(title="a"), hidden, _doc(title="b"))),
                   Archive("3", "AUTRE.ZIP", "damaged", "health.corrupt", (_doc(title="c"),))))
    offered = [(s.n, s.title) for s, _ in healthview.documents(found)]
    assert offered == [(0, "a"), (2, "b")]
    assert healthview.pick(found, 1) is None and healthview.pick(found, 3) is None
    picked = healthview.pick(found, 2)
    assert picked is not None and picked[0].title == "b"
    assert healthview.damaged(found) == ["AUTRE.ZIP"]
    assert healthview.documents(None) == []


def test_file_names_are_safe() -> None:
    s = healthview.shown(0, _doc(title='../../etc/passwd:"<x>"'), "2", None)
    assert healthview.filename(s, "pdf") == "etc passwd x.pdf"
