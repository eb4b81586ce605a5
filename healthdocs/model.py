"""Documents found in a message: the typed values the gateway seals in the message summary.

One :class:`Found` per message (``None`` in a summary written before version 4: "not
examined"). It holds one :class:`Archive` per IHE XDM attachment (IHE ITI TF-1 §16, ITI TF-3
§4.2.3 / §4.1: ``IHE_XDM/<SUBSET>/METADATA.XML`` plus the documents its ``ExtrinsicObject``
``URI`` slots name), and each archive one :class:`Document` per CDA R2 document it carries,
with what the metadata (ebRIM ``SubmitObjectsRequest``) and the CDA header say of it.

Where things are:

- ``Archive.part``: the MIME part holding the zip, as an IMAP ``BODY[<section>]`` part
  number (RFC 3501 §6.4.5: "1", "2", "2.1"...), so the web inbox fetches exactly that part;
- ``Document.entry``: the zip entry name of the CDA (``IHE_XDM/SUBSET01/DOC0001.XML``);
- ``Document.level``: 1 for a non-XML body (``nonXMLBody/text``; ``body_media_type`` says
  which, normally ``application/pdf``, base64 in the CDA), 3 for a ``structuredBody``
  (narrative sections), 0 when the CDA could not be read (its metadata still listed).

Codes (:class:`Coded`) keep the code, its scheme (the ebRIM ``codingScheme`` slot or CDA
``codeSystem`` OID) and the display name as written by the sender (French for the ANS
"CI-SIS" terminologies). Times are kept as written in HL7 TS form (``YYYYMMDDHHMMSS[+ZZZZ]``,
possibly shorter); :func:`healthdocs.values.ts_iso` gives ISO 8601 (None when it does not parse).

Patient identifiers (:class:`PatientId`) are every identifier found, wherever found
(``source``: ``submission_set`` / ``document_entry`` from the metadata's
``ExternalIdentifier`` in HL7 CX form ``<id>^^^&<OID>&ISO^NH``, ``cda`` from
``recordTarget/patientRole/id``). ``root`` is the assigning authority OID; INS roots are
:data:`healthdocs.values.INS_OIDS`. A summary holds full identifiers only sealed
(never logged; the INS is the patient's own address anyway).

An archive that could not be read safely (:class:`Archive` ``status="damaged"``, ``reason``
a reason code of :mod:`healthdocs.errors`) is delivered as an ordinary attachment and listed
with no documents. ``Found.notes`` are reason codes for what disagreed but was not refused
(``X-MSS-CODECDA`` / ``X-MSS-INS`` against the documents).

JSON form (:func:`to_json` / :func:`from_json`): plain dicts and lists, keys as the field
names; stable, the summary's ``"health"`` key (:mod:`gateway.mailstore.summaries`, v4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Source = Literal["submission_set", "document_entry", "cda"]
Status = Literal["read", "damaged"]


@dataclass(frozen=True)
class Coded:
    code: str
    scheme: str = ""  # codingScheme (ebRIM slot) or codeSystem OID (CDA)
    display: str = ""  # display name as the sender wrote it


@dataclass(frozen=True)
class PatientId:
    id: str  # the identifier (an INS under an INS root)
    root: str  # the assigning authority OID
    source: Source


@dataclass(frozen=True)
class Document:
    entry: str  # zip entry name of the CDA document
    title: str | None = None  # metadata Name, else CDA title
    class_code: Coded | None = None  # XDSDocumentEntry.classCode
    type_code: Coded | None = None  # XDSDocumentEntry.typeCode
    loinc: Coded | None = None  # the CDA ClinicalDocument/code (LOINC, 2.16.840.1.113883.6.1)
    created: str | None = None  # metadata creationTime (HL7 TS)
    effective: str | None = None  # CDA effectiveTime/@value (HL7 TS)
    author: str | None = None  # authorPerson, else the CDA author's name
    confidentiality: tuple[Coded, ...] = ()  # N, R, V, MASQUE_PS, INVISIBLE_PATIENT...
    media_type: str = "text/xml"  # the entry's mimeType
    level: Literal[0, 1, 3] = 0  # 1: nonXMLBody, 3: structuredBody, 0: unread
    body_media_type: str | None = None  # level 1: the nonXMLBody text's mediaType
    patient_ids: tuple[PatientId, ...] = ()  # document_entry and cda identifiers
    unique_id: str | None = None  # XDSDocumentEntry.uniqueId

    @property
    def confidentiality_codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.confidentiality)


@dataclass(frozen=True)
class Archive:
    part: str  # MIME part number (RFC 3501 §6.4.5)
    filename: str | None
    status: Status = "read"
    reason: str | None = None  # the reason code when damaged
    documents: tuple[Document, ...] = ()
    patient_ids: tuple[PatientId, ...] = ()  # submission_set identifiers

    def all_patient_ids(self) -> tuple[PatientId, ...]:
        return self.patient_ids + tuple(p for d in self.documents for p in d.patient_ids)


@dataclass(frozen=True)
class Found:
    """Documents found in a message (empty ``archives``: the message carries none)."""

    archives: tuple[Archive, ...] = ()
    notes: tuple[str, ...] = field(default=())  # reason codes: headers disagreeing, ...

    @property
    def documents(self) -> tuple[Document, ...]:
        return tuple(d for a in self.archives for d in a.documents)


NOTHING = Found()


def _code(c: Coded | None) -> list[str] | None:
    return None if c is None else [c.code, c.scheme, c.display]


def _pid(p: PatientId) -> list[str]:
    return [p.id, p.root, p.source]


def _doc(d: Document) -> dict[str, Any]:
    return {
        "entry": d.entry, "title": d.title, "class_code": _code(d.class_code), "type_code": _code(d.type_code),
        "loinc": _code(d.loinc), "created": d.created, "effective": d.effective, "author": d.author,
        "confidentiality": [_code(c) for c in d.confidentiality], "media_type": d.media_type, "level": d.level,
        "body_media_type": d.body_media_type, "patient_ids": [_pid(p) for p in d.patient_ids],
        "unique_id": d.unique_id,
    }  # fmt: skip


def to_json(found: Found) -> dict[str, Any]:
    return {
        "archives": [{"part": a.part, "filename": a.filename, "status": a.status, "reason": a.reason,
                      "documents": [_doc(d) for d in a.documents],
                      "patient_ids": [_pid(p) for p in a.patient_ids]} for a in found.archives],
        "notes": list(found.notes),
    }  # fmt: skip


def _to_code(v: list[str] | None) -> Coded | None:
    return None if v is None else Coded(*v)


def _to_pid(v: list[str]) -> PatientId:
    return PatientId(v[0], v[1], v[2])  # type: ignore[arg-type]


def _to_doc(d: dict[str, Any]) -> Document:
    return Document(
        entry=d["entry"], title=d["title"], class_code=_to_code(d["class_code"]), type_code=_to_code(d["type_code"]),
        loinc=_to_code(d["loinc"]), created=d["created"], effective=d["effective"], author=d["author"],
        confidentiality=tuple(Coded(*c) for c in d["confidentiality"]), media_type=d["media_type"],
        level=d["level"], body_media_type=d["body_media_type"],
        patient_ids=tuple(_to_pid(p) for p in d["patient_ids"]), unique_id=d.get("unique_id"),
    )  # fmt: skip


def from_json(doc: dict[str, Any]) -> Found:
    return Found(
        archives=tuple(Archive(a["part"], a["filename"], a["status"], a["reason"],
                               tuple(_to_doc(d) for d in a["documents"]),
                               tuple(_to_pid(p) for p in a["patient_ids"])) for a in doc["archives"]),
        notes=tuple(doc["notes"]),
    )  # fmt: skip
