"""One health document of a stored message, read when the patient opens it (issue 21).

The summary sealed at delivery says which MIME part holds the archive (``Archive.part``)
and which entry the document is (``Document.entry``); only that part is decoded, and the
archive is read again through the same safe reader and the same ``[health_documents]``
limits as at delivery (:func:`healthdocs.xdm.read_entry`), that one entry only. Anything
that no longer reads (it cannot change: the message is sealed) is ``None``, never an error
page with details.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from gateway.mailstore import parsing, xdm
from healthdocs import cda
from healthdocs import xdm as xdm_format
from healthdocs.errors import FormatError
from healthdocs.safezip import DEFAULT_LIMITS, ZipLimits


def cda_bytes(raw: bytes, part: str, entry: str, limits: ZipLimits = DEFAULT_LIMITS) -> bytes | None:
    """The CDA document ``entry`` of the archive in part ``part`` of the message ``raw``."""
    data = xdm.part_bytes(parsing.parse(raw), part)
    if data is None:
        return None
    try:
        return xdm_format.read_entry(data, entry, limits)
    except FormatError:
        return None


def pdf(document: bytes) -> bytes | None:
    """A level-1 CDA's PDF (base64 in ``nonXMLBody/text``), None when it has none."""
    try:
        return cda.pdf(document)
    except FormatError:
        return None


def sections(document: bytes) -> list[tuple[str | None, Element | None]] | None:
    """A level-3 CDA's sections (title, narrative ``text``), None when it does not read."""
    try:
        return cda.sections(document)
    except FormatError:
        return None
