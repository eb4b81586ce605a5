"""A CDA R2 narrative block (``section/text``, HL7 CDA R2 §4.3.5) as sanitised HTML, pure.

The narrative is XML in the CDA namespace with its own small vocabulary, not HTML: an HTML
sanitiser alone cannot map it (``paragraph``, ``content``, ``item``, ``linkHtml``,
``styleCode``). So the parsed tree (already read through defusedxml by
:mod:`healthdocs.xmlsafe`) is converted by a strict walk that writes only what it knows,
every text and attribute value escaped; then the result goes through nh3 (ammonia) with the
same allow-list, as a second wall. The page's CSP (no script at all) is the third.

Kept, as HTML: ``paragraph`` -> ``p``; ``list`` -> ``ul`` (``ol`` when ``listType="ordered"``),
``item`` -> ``li``; ``table``, ``caption``, ``thead``, ``tbody``, ``tfoot``, ``tr``, ``th``,
``td``, ``col``, ``colgroup``; ``content`` -> ``span``; ``br``; ``sub``, ``sup``;
``linkHtml`` -> ``a`` only with an ``https:``, ``http:`` or ``mailto:`` reference (else its
text alone); ``footnote`` -> ``span``. Attributes: ``styleCode`` tokens -> classes from
:data:`STYLE_CLASSES` (others dropped); ``colspan``/``rowspan`` (1-999) on cells; ``scope``
on ``th``. Dropped with their content: ``renderMultiMedia``, ``footnoteRef`` and any element
outside the CDA namespace (a ``script`` in the XHTML namespace, say). Any other CDA element
keeps its text, escaped, without its tag. IDs, styles, languages and the rest are dropped.
"""

from __future__ import annotations

from html import escape
from xml.etree.ElementTree import Element

import nh3

from healthdocs import values

_NS = "{" + values.CDA + "}"
MAX_DEPTH = 40  # deeper: the text alone
STYLE_CLASSES = {
    "Bold": "cda-bold", "Italics": "cda-italics", "Underline": "cda-underline", "Emphasis": "cda-emphasis",
    "Lrule": "cda-lrule", "Rrule": "cda-rrule", "Toprule": "cda-toprule", "Botrule": "cda-botrule",
    "Arabic": "cda-arabic", "LittleRoman": "cda-littleroman", "BigRoman": "cda-bigroman",
    "LittleAlpha": "cda-littlealpha", "BigAlpha": "cda-bigalpha", "Disc": "cda-disc", "Circle": "cda-circle",
    "Square": "cda-square",
}
_SAME = {"table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td", "col", "colgroup", "br", "sub", "sup"}
_RENAMED = {"paragraph": "p", "content": "span", "item": "li", "footnote": "span"}
_DROPPED = {"renderMultiMedia", "footnoteRef"}
_VOID = {"br", "col"}
_SCOPES = {"row", "col", "rowgroup", "colgroup"}
_SCHEMES = ("https:", "http:", "mailto:")
TAGS = {"p", "ul", "ol", "li", "span", "a", *_SAME}
_ATTRIBUTES: dict[str, set[str]] = {"a": {"href"}, "td": {"colspan", "rowspan"},
                                    "th": {"colspan", "rowspan", "scope"}}
_CLASSES = set(STYLE_CLASSES.values())


def _local(el: Element) -> str | None:
    """The element's name in the CDA namespace; None for any other namespace (or a comment)."""
    tag = el.tag
    if not isinstance(tag, str) or not tag.startswith(_NS):
        return None
    return tag[len(_NS):]


def _classes(el: Element) -> list[str]:
    return sorted({STYLE_CLASSES[t] for t in (el.get("styleCode") or "").split() if t in STYLE_CLASSES})


def _span(value: str | None) -> str | None:
    value = (value or "").strip()
    return value if value.isascii() and value.isdigit() and 1 <= int(value) <= 999 else None


def _safe_href(value: str | None) -> str | None:
    href = "".join((value or "").split())  # no whitespace or control tricks inside the scheme
    return href if href.lower().startswith(_SCHEMES) and href.isprintable() else None


def _open(tag: str, attrs: list[tuple[str, str]]) -> str:
    return "<" + tag + "".join(f' {k}="{escape(v, quote=True)}"' for k, v in attrs) + ">"


def _element(el: Element, name: str, out: list[str], depth: int) -> None:
    attrs: list[tuple[str, str]] = []
    tag: str | None
    if name == "list":
        tag = "ol" if (el.get("listType") or "").strip() == "ordered" else "ul"
    elif name == "linkHtml":
        href = _safe_href(el.get("href"))
        tag = "a" if href else None
        if href:
            attrs.append(("href", href))
    else:
        tag = _RENAMED.get(name) or (name if name in _SAME else None)
    if tag in ("td", "th"):
        for attr in ("colspan", "rowspan"):
            n = _span(el.get(attr))
            if n:
                attrs.append((attr, n))
        if tag == "th" and (el.get("scope") or "") in _SCOPES:
            attrs.append(("scope", el.get("scope") or ""))
    if tag is not None:
        classes = _classes(el)
        if classes:
            attrs.append(("class", " ".join(classes)))
        out.append(_open(tag, attrs))
        if tag in _VOID:
            return
    _children(el, out, depth + 1)
    if tag is not None:
        out.append(f"</{tag}>")


def _children(el: Element, out: list[str], depth: int) -> None:
    if el.text:
        out.append(escape(el.text, quote=False))
    for child in el:
        name = _local(child)
        if name is not None and name not in _DROPPED:
            if depth >= MAX_DEPTH:
                out.append(escape("".join(child.itertext()), quote=False))
            else:
                _element(child, name, out, depth)
        if child.tail:
            out.append(escape(child.tail, quote=False))


def convert(text: Element | None) -> str:
    """The narrative ``text`` element as HTML, before the second pass (exposed for tests)."""
    if text is None:
        return ""
    out: list[str] = []
    _children(text, out, 0)
    return "".join(out)


def render(text: Element | None) -> str:
    """The narrative ``text`` element as sanitised HTML, ready to place in a page."""
    return nh3.clean(convert(text), tags=TAGS, attributes=_ATTRIBUTES, url_schemes={"https", "http", "mailto"},
                     allowed_classes={t: _CLASSES for t in TAGS}, link_rel="noopener noreferrer",
                     strip_comments=True)
