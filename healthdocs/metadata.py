"""``METADATA.XML``: the ebRIM 3.0 ``SubmitObjectsRequest`` of an XDM submission set
(IHE ITI TF-3 §4.2.3 for the attributes, §4.2.5 for the UUIDs; ITI TF-1 §16 for XDM).

Elements are matched by local name, so the rim 3.0 namespace (and older writers' others)
read alike. Each ``ExtrinsicObject`` becomes an :class:`Entry`: its ``URI`` slot (the
document's file name in the subset directory; the legacy ``1|...`` split form joined),
``Name``, ``creationTime``, ``authorPerson`` (XCN), class/type/confidentiality codes and
the ``XDSDocumentEntry.patientId`` identifiers; the ``XDSSubmissionSet.patientId``
identifiers are the set's. An identifier is recognised by its ``identificationScheme``
UUID or by its ``Name`` (writers differ).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

from healthdocs import values, xmlsafe
from healthdocs.model import Coded, PatientId


@dataclass(frozen=True)
class Entry:
    object_id: str
    uri: str | None
    mime_type: str
    title: str | None
    created: str | None
    author: str | None
    class_code: Coded | None
    type_code: Coded | None
    confidentiality: tuple[Coded, ...]
    patient_ids: tuple[PatientId, ...]
    unique_id: str | None


@dataclass(frozen=True)
class Metadata:
    entries: tuple[Entry, ...]
    patient_ids: tuple[PatientId, ...]  # the submission set's


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _children(el: Element, name: str) -> list[Element]:
    return [c for c in el if _local(c.tag) == name]


def _name(el: Element) -> str | None:
    for n in _children(el, "Name"):
        for ls in _children(n, "LocalizedString"):
            value = ls.get("value")
            if value:
                return value.strip()
    return None


def _slots(el: Element) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for slot in _children(el, "Slot"):
        name = slot.get("name") or ""
        found[name] = [(v.text or "").strip() for vl in _children(slot, "ValueList") for v in _children(vl, "Value")]
    return found


def _uri(values_: list[str]) -> str | None:
    if not values_:
        return None
    if all("|" in v and v.split("|", 1)[0].isdigit() for v in values_):  # ITI TF-3 §4.2.3.2.24, split URI
        return "".join(v.split("|", 1)[1] for v in sorted(values_, key=lambda v: int(v.split("|", 1)[0])))
    return values_[0]


def _person(xcn: str) -> str | None:
    """An XCN ``id^Family^Given^...`` as "Given Family" (or the text when not XCN)."""
    parts = xcn.split("^")
    if len(parts) < 3:
        return xcn or None
    name = " ".join(p for p in (parts[3] if len(parts) > 3 and parts[3] else "", parts[2], parts[1]) if p)
    return " ".join(name.split()) or None


def _first(found: list[str] | None) -> str | None:
    return found[0] if found else None


def _code(cl: Element) -> Coded:
    scheme = (_slots(cl).get("codingScheme") or [""])[0]
    return Coded(cl.get("nodeRepresentation") or "", scheme, _name(cl) or "")


def _patient_id(ei: Element, source: str) -> PatientId:
    parsed = values.parse_cx(ei.get("value") or "")
    if parsed is None:
        return PatientId(ei.get("value") or "", "", source)  # type: ignore[arg-type]
    return PatientId(parsed[0], parsed[1], source)  # type: ignore[arg-type]


def _id_source(ei: Element) -> str | None:
    scheme = ei.get("identificationScheme") or ""
    if scheme == values.SUBMISSION_SET_PATIENT_ID:
        return "submission_set"
    if scheme == values.DOCUMENT_ENTRY_PATIENT_ID:
        return "document_entry"
    return values.PATIENT_ID_NAMES.get(_name(ei) or "")


def _entry(eo: Element) -> Entry:
    slots = _slots(eo)
    class_code = type_code = None
    confidentiality: list[Coded] = []
    author = _first(slots.get("authorPerson"))
    for cl in _children(eo, "Classification"):
        scheme = cl.get("classificationScheme") or ""
        if scheme == values.CLASS_CODE:
            class_code = _code(cl)
        elif scheme == values.TYPE_CODE:
            type_code = _code(cl)
        elif scheme == values.CONFIDENTIALITY_CODE:
            confidentiality.append(_code(cl))
        elif scheme == values.AUTHOR and author is None:
            author = _first(_slots(cl).get("authorPerson"))
    ids: list[PatientId] = []
    unique_id = None
    for ei in _children(eo, "ExternalIdentifier"):
        if (ei.get("identificationScheme") or "") == values.DOCUMENT_ENTRY_UNIQUE_ID:
            unique_id = ei.get("value")
        elif _id_source(ei) is not None:
            ids.append(_patient_id(ei, "document_entry"))
    return Entry(
        object_id=eo.get("id") or "", uri=_uri(slots.get("URI", [])), mime_type=eo.get("mimeType") or "",
        title=_name(eo), created=_first(slots.get("creationTime")),
        author=_person(author) if author else None, class_code=class_code, type_code=type_code,
        confidentiality=tuple(confidentiality), patient_ids=tuple(ids), unique_id=unique_id,
    )  # fmt: skip


def read(data: bytes) -> Metadata:
    """Parse ``METADATA.XML``; raises :class:`~healthdocs.errors.FormatError`."""
    root = xmlsafe.parse(data)
    entries: list[Entry] = []
    set_ids: list[PatientId] = []
    for el in root.iter():
        name = _local(el.tag)
        if name == "ExtrinsicObject":
            entries.append(_entry(el))
        elif name == "RegistryPackage":
            for ei in _children(el, "ExternalIdentifier"):
                if _id_source(ei) == "submission_set":
                    set_ids.append(_patient_id(ei, "submission_set"))
    return Metadata(tuple(entries), tuple(set_ids))
