"""An attachment -> :class:`~healthdocs.model.Archive` (IHE ITI TF-1 §16.1, XDM media).

An attachment is an XDM archive when it is named ``IHE_XDM.ZIP`` (any case) or is a zip
whose directory holds ``IHE_XDM/<SUBSET>/METADATA.XML``; any other attachment is none of
our business (:func:`candidate` says None). The archive is then read within
:class:`~healthdocs.safezip.ZipLimits`: every subset's metadata, then each document its
``URI`` slot names in that subset's directory, CDA headers included. What cannot be read
makes the archive ``damaged`` with the reason code, keeping every document and patient
identifier read before the fault (so the identity check still sees them).
"""

from __future__ import annotations

import io
import re
import zipfile

from healthdocs import cda, errors, metadata
from healthdocs.errors import FormatError
from healthdocs.model import Archive, Coded, Document, PatientId
from healthdocs.safezip import (
    DEFAULT_LIMITS,
    READ_ERRORS,
    SafeZip,
    ZipLimits,
    declared_entries,
    looks_like_zip,
    safe_name,
)

XDM_NAME = "IHE_XDM.ZIP"
_METADATA = re.compile(r"^IHE_XDM/([^/]+)/METADATA\.XML$", re.IGNORECASE)
_CDA_TYPES = ("text/xml", "application/xml", "application/hl7-v3+xml", "application/hl7-cda+xml")


LAYOUT_SCAN_ENTRIES = 4096  # a zip declaring more is not examined for the layout (any other attachment)


def _layout(data: bytes) -> bool:
    """The directory (not the entries: nothing is inflated here) names an XDM metadata file."""
    declared = declared_entries(data)
    if declared is None or declared > LAYOUT_SCAN_ENTRIES:
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return any(_METADATA.match(name) for name in zf.namelist()[:10_000])
    except READ_ERRORS:
        return False


def candidate(filename: str | None, data: bytes) -> bool:
    if filename is not None and filename.strip().upper() == XDM_NAME:
        return True
    return looks_like_zip(data) and _layout(data)


def _document(path: str, entry: metadata.Entry, head: cda.Header | None) -> Document:
    confidentiality = list(entry.confidentiality)
    if head is not None and head.confidentiality is not None and head.confidentiality.code \
            and head.confidentiality.code not in {c.code for c in confidentiality}:
        confidentiality.append(head.confidentiality)
    return Document(
        entry=path, title=entry.title or (head.title if head else None), class_code=entry.class_code,
        type_code=entry.type_code, loinc=head.code if head else None, created=entry.created,
        effective=head.effective if head else None, author=entry.author or (head.author if head else None),
        confidentiality=tuple(confidentiality), media_type=entry.mime_type or "text/xml",
        level=head.level if head else 0, body_media_type=head.body_media_type if head else None,
        patient_ids=entry.patient_ids + (head.patient_ids if head else ()), unique_id=entry.unique_id,
    )  # fmt: skip


def _unread(entry: metadata.Entry, path: str) -> Document:
    return _document(path, entry, None)


def read(data: bytes, *, part: str, filename: str | None, limits: ZipLimits = DEFAULT_LIMITS) -> Archive:
    """The archive in ``data`` (an attachment's decoded bytes); never raises for its content."""
    documents: list[Document] = []
    set_ids: list[PatientId] = []
    pending: list[tuple[metadata.Entry, str]] = []
    try:
        archive = SafeZip(data, limits)
        subsets = [name for name in archive.names() if _METADATA.match(name)]
        if not subsets:
            raise FormatError(errors.NO_METADATA)
        for meta_name in subsets:
            meta = metadata.read(archive.read(meta_name))
            set_ids.extend(meta.patient_ids)
            for entry in meta.entries:
                uri = entry.uri or ""
                path = f"{meta_name.rsplit('/', 1)[0]}/{uri}"
                if not uri or not safe_name(uri):
                    raise FormatError(errors.PATH)
                pending.append((entry, path))
        while pending:
            entry, path = pending[0]
            stored = archive.find(path)
            if stored is None:
                raise FormatError(errors.MISSING_DOCUMENT)
            head = None
            if (entry.mime_type or "text/xml") in _CDA_TYPES:
                stream = archive.open(stored)
                try:
                    head = cda.header_from(stream)
                finally:
                    stream.close()
            else:
                archive.read(stored)  # present and within the limits
            documents.append(_document(stored, entry, head))
            pending.pop(0)
    except FormatError as exc:
        documents.extend(_unread(e, p) for e, p in pending)
        return Archive(part, filename, "damaged", exc.reason, tuple(documents), tuple(set_ids))
    return Archive(part, filename, "read", None, tuple(documents), tuple(set_ids))


def read_entry(data: bytes, entry: str, limits: ZipLimits = DEFAULT_LIMITS) -> bytes:
    """One entry of an archive (a :class:`~healthdocs.model.Document`'s ``entry``), read within
    the same limits, for showing it (:func:`healthdocs.cda.pdf`, :func:`healthdocs.cda.sections`);
    raises :class:`~healthdocs.errors.FormatError`."""
    return SafeZip(data, limits).read(entry)


def code_list(documents: tuple[Document, ...]) -> set[str]:
    """The CDA codes (``X-MSS-CODECDA`` compares against these): the LOINC code, else the type code."""
    found: set[str] = set()
    for d in documents:
        code: Coded | None = d.loinc if d.loinc and d.loinc.code else d.type_code
        if code is not None and code.code:
            found.add(code.code)
    return found
