"""Health documents (issue 21) as the patient inbox shows them, pure: from the documents
sealed in a message's summary (:class:`healthdocs.model.Found`), what a page says of each in
French (title, type, date, author), and which document a URL names.

A document is named by its message and its position ``n`` among the message's documents
(``Found.documents``, archives in order): the summary is sealed at delivery, so the position
never changes. Only documents of archives read at delivery are offered (a damaged archive
stays an ordinary attachment), never one classified ``INVISIBLE_PATIENT`` (refused at
delivery; kept out here too).

Dates are HL7 TS (``YYYYMMDDHHMMSS[+ZZZZ]``, possibly shorter): shown to the precision they
have, in French, in Paris time when they carry a time (a time without a zone is read as
Paris time, as French software writes it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from healthdocs import values
from healthdocs.model import Coded, Document, Found

try:
    _PARIS: ZoneInfo | None = ZoneInfo("Europe/Paris")
except (ZoneInfoNotFoundError, ValueError):
    _PARIS = None
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")
NO_TITLE = "Document de santé"
NO_TYPE = "Type non précisé"
NO_AUTHOR = "Auteur non précisé"
_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")


@dataclass(frozen=True)
class When:
    at: datetime  # aware (UTC when the TS has no time)
    precision: str  # "year", "month", "day", "time"


def when(ts: str | None) -> When | None:
    """An HL7 TS as a datetime with its precision; None when it does not parse."""
    m = _TS.match((ts or "").strip())
    if not m:
        return None
    y, mo, d, h, mi, s, zone = m.groups()
    try:
        if h is None:
            at = datetime(int(y), int(mo or 1), int(d or 1), tzinfo=UTC)
            return When(at, "day" if d else "month" if mo else "year")
        if zone:
            sign = 1 if zone[0] == "+" else -1
            offset = sign * (int(zone[1:3]) * 60 + int(zone[3:5]))
            naive = datetime(int(y), int(mo or 1), int(d or 1), int(h), int(mi or 0), int(s or 0))
            at = naive.replace(tzinfo=timezone(timedelta(minutes=offset)))
        else:
            at = datetime(int(y), int(mo or 1), int(d or 1), int(h), int(mi or 0), int(s or 0),
                          tzinfo=_PARIS or UTC)
    except ValueError:
        return None
    return When(at, "time")


def french(w: When | None) -> str:
    """``15 janvier 2026 à 10:30``, ``15 janvier 2026``, ``janvier 2026``, ``2026``; "" for None."""
    if w is None:
        return ""
    at = w.at
    if w.precision == "year":
        return str(at.year)
    if w.precision == "month":
        return f"{MONTHS[at.month - 1]} {at.year}"
    if w.precision == "time":
        at = at.astimezone(_PARIS or UTC)
    day = "1er" if at.day == 1 else str(at.day)
    text = f"{day} {MONTHS[at.month - 1]} {at.year}"
    if w.precision == "time":
        text += f" à {at.hour:02d}:{at.minute:02d}" + ("" if _PARIS else " UTC")
    return text


def _display(c: Coded | None) -> str | None:
    return (c.display.strip() or None) if c is not None else None


@dataclass(frozen=True)
class Offered:
    """One document as the pages list it."""

    n: int  # position among the message's documents
    title: str
    type_label: str
    type_key: str  # what the "Mes documents" filter compares
    category: str | None  # the class code's display name, when it differs from the type
    date: str  # French
    when: When | None
    author: str
    level: int
    has_pdf: bool  # level 1 with a PDF body: opened inline
    readable: bool  # level 3: its narrative is shown as HTML
    archive_part: str
    archive_name: str | None


def type_key(d: Document) -> str:
    for c in (d.type_code, d.class_code, d.loinc):
        if c is not None and c.code:
            return c.code
    return ""


def shown(n: int, d: Document, part: str, filename: str | None) -> Offered:
    type_label = _display(d.type_code) or _display(d.class_code) or _display(d.loinc) or NO_TYPE
    category = _display(d.class_code)
    w = when(d.effective) or when(d.created)
    return Offered(
        n=n, title=(d.title or "").strip() or NO_TITLE, type_label=type_label, type_key=type_key(d),
        category=category if category and category != type_label else None, date=french(w), when=w,
        author=(d.author or "").strip() or NO_AUTHOR, level=d.level,
        has_pdf=d.level == 1 and (d.body_media_type or "").lower() == "application/pdf",
        readable=d.level == 3, archive_part=part, archive_name=filename,
    )  # fmt: skip


def visible(d: Document) -> bool:
    return values.INVISIBLE_PATIENT not in d.confidentiality_codes


def documents(found: Found | None) -> list[tuple[Offered, Document]]:
    """The documents a page may offer, with their positions (see the module's docstring)."""
    if found is None:
        return []
    out: list[tuple[Offered, Document]] = []
    n = 0
    for archive in found.archives:
        for d in archive.documents:
            if archive.status == "read" and visible(d):
                out.append((shown(n, d, archive.part, archive.filename), d))
            n += 1
    return out


def pick(found: Found | None, n: int) -> tuple[Offered, Document] | None:
    for item in documents(found):
        if item[0].n == n:
            return item
    return None


def damaged(found: Found | None) -> list[str]:
    """The names of archives that could not be read (offered as ordinary attachments)."""
    return [a.filename or "IHE_XDM.ZIP" for a in (found.archives if found else ()) if a.status == "damaged"]


def filename(s: Offered, extension: str) -> str:
    """A file name for the document: its title, made safe, and ``extension``."""
    base = re.sub(r"[\\/:*?\"<>|\x00-\x1f]+", " ", s.title).strip(" .")[:80] or "document"
    return f"{base}.{extension}"
