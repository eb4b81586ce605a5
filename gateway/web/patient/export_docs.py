"""The health documents of one message in the patient's export (issue 21), so that each can be
opened on a phone without an XDM reader: the document itself (a level-1 CDA's embedded PDF;
a level-3 CDA's narrative as a sanitised HTML page) and a card (HTML) with its metadata,
both under ``documents/``. The HTML files carry a CSP meta tag (no script, no fetch) since
they are opened from the disk, outside the inbox's headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from gateway.mailstore import health_open
from gateway.web.patient import healthview, narrative
from healthdocs.model import Found
from healthdocs.safezip import ZipLimits

_HEAD = ('<!doctype html>\n<html lang="fr"><head><meta charset="utf-8">'
         '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">'
         '<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
         '<style>body{{font-family:sans-serif;max-width:48rem;margin:1rem auto;padding:0 1rem;line-height:1.5}}'
         'table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:.25rem .5rem;text-align:left}}'
         'dt{{font-weight:bold}}.cda-bold{{font-weight:bold}}.cda-italics{{font-style:italic}}'
         '.cda-underline{{text-decoration:underline}}</style></head><body>\n')


@dataclass(frozen=True)
class Exported:
    files: list[tuple[str, bytes]]
    index: list[dict[str, Any]]  # for index.json


def _card(s: healthview.Offered, subject: str, document_file: str | None) -> str:
    rows = [("Type", s.type_label), *([("Catégorie", s.category)] if s.category else []),
            ("Date", s.date or "Non précisée"), ("Auteur", s.author), ("Message", subject)]
    body = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    link = (f'<p><a href="{escape(document_file.rsplit("/", 1)[1])}">Ouvrir le document</a></p>'
            if document_file else "<p>Ce document n'a pas pu être extrait ; il reste dans le message d'origine.</p>")
    return (_HEAD.format(title=escape(s.title)) + f"<h1>{escape(s.title)}</h1><dl>{body}</dl>{link}"
            "</body></html>\n")


def _page(s: healthview.Offered, sections: list[tuple[str | None, str]]) -> str:
    parts = "".join((f"<h2>{escape(t)}</h2>" if t else "") + f"<div>{html}</div>" for t, html in sections)
    return (_HEAD.format(title=escape(s.title)) + f"<h1>{escape(s.title)}</h1>"
            f"<p>{escape(s.type_label)} · {escape(s.date)} · {escape(s.author)}</p>{parts}</body></html>\n")


def documents(raw: bytes, found: Found | None, limits: ZipLimits, *, prefix: str, subject: str) -> Exported:
    """``prefix``: the message's number in the export (``00012``), so names never collide."""
    files: list[tuple[str, bytes]] = []
    index: list[dict[str, Any]] = []
    for s, doc in healthview.documents(found):
        base = f"documents/{prefix}-{s.n + 1}-" + healthview.filename(s, "x")[:-2]
        body = health_open.cda_bytes(raw, s.archive_part, doc.entry, limits)
        document_file: str | None = None
        if body is not None and s.has_pdf:
            data = health_open.pdf(body)
            if data is not None:
                document_file = base + ".pdf"
                files.append((document_file, data))
        elif body is not None and s.readable:
            sections = health_open.sections(body)
            if sections is not None:
                document_file = base + ".html"
                rendered = [(t, narrative.render(text)) for t, text in sections]
                files.append((document_file, _page(s, rendered).encode()))
        card = base + "-fiche.html"
        files.append((card, _card(s, subject, document_file).encode()))
        index.append({"title": s.title, "type": s.type_label, "type_code": s.type_key,
                      "date": s.when.at.isoformat() if s.when else None, "author": s.author,
                      "file": document_file, "card": card})
    return Exported(files, index)
