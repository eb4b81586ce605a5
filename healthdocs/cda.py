"""An HL7 CDA R2 document (namespace ``urn:hl7-org:v3``): its header and its body's level.

Header: ``recordTarget/patientRole/id`` (each ``@root``/``@extension``: the patient's
identifiers, the INS under an INS root), ``title``, ``code`` (LOINC), ``effectiveTime/@value``,
the first ``author/assignedAuthor/assignedPerson/name``, ``confidentialityCode``.
Body (``component``): ``nonXMLBody/text`` is level 1 (``@mediaType``, ``@representation="B64"``
for a PDF, :func:`pdf`); ``structuredBody`` is level 3, its ``component/section`` each with a
``title`` and a narrative ``text`` block (:func:`sections`; rendering it is the reader's job).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Literal
from xml.etree.ElementTree import Element

from healthdocs import errors, values, xmlsafe
from healthdocs.errors import FormatError
from healthdocs.model import Coded, PatientId

_NS = "{" + values.CDA + "}"


@dataclass(frozen=True)
class Header:
    title: str | None
    code: Coded | None
    effective: str | None
    author: str | None
    confidentiality: Coded | None
    patient_ids: tuple[PatientId, ...]
    level: Literal[0, 1, 3]
    body_media_type: str | None


def _text(el: Element | None) -> str | None:
    if el is None:
        return None
    text = " ".join("".join(el.itertext()).split())
    return text or None


def _person(name: Element | None) -> str | None:
    if name is None:
        return None
    parts = [_text(name.find(_NS + tag)) for tag in ("prefix", "given", "family")]
    joined = " ".join(p for p in parts if p)
    return joined or _text(name)


def _root(data: bytes) -> Element:
    root = xmlsafe.parse(data)
    if root.tag != _NS + "ClinicalDocument":
        raise FormatError(errors.XML_INVALID, "not a CDA document")
    return root


def _body(root: Element) -> tuple[Literal[0, 1, 3], str | None, Element | None]:
    component = root.find(_NS + "component")
    if component is None:
        return 0, None, None
    non_xml = component.find(_NS + "nonXMLBody")
    if non_xml is not None:
        text = non_xml.find(_NS + "text")
        return 1, (text.get("mediaType") if text is not None else None), text
    structured = component.find(_NS + "structuredBody")
    if structured is not None:
        return 3, None, structured
    return 0, None, None


def header(data: bytes) -> Header:
    """The header of the CDA in ``data``; raises :class:`~healthdocs.errors.FormatError`."""
    return _header(_root(data))


def header_from(source: xmlsafe.Source) -> Header:
    """The header of the CDA read from ``source``, stopping at the body's first element: a
    level-1 document's base64 PDF (megabytes) is never read nor held (DTDs still refused)."""
    root: Element | None = None
    body: Element | None = None
    try:
        for event, el in xmlsafe.iterparse(source):
            if root is None:
                root = el
                if root.tag != _NS + "ClinicalDocument":
                    raise FormatError(errors.XML_INVALID, "not a CDA document")
            if event == "start" and el.tag in (_NS + "nonXMLBody", _NS + "structuredBody"):
                body = el
            elif body is not None and event == "start" and (body.tag == _NS + "structuredBody"
                                                             or el.tag == _NS + "text"):
                break  # the level is known (and a level 1's mediaType): the rest is the body
    except FormatError:
        raise
    except xmlsafe.ERRORS as exc:
        raise xmlsafe.refusal(exc) from None
    if root is None:
        raise FormatError(errors.XML_INVALID)
    return _header(root)


def _header(root: Element) -> Header:
    ids: list[PatientId] = []
    for rt in root.findall(_NS + "recordTarget"):
        for pid in rt.findall(f"{_NS}patientRole/{_NS}id"):
            root_oid, ext = pid.get("root") or "", pid.get("extension") or ""
            if ext:
                ids.append(PatientId(ext.strip(), root_oid.strip(), "cda"))
    code_el = root.find(_NS + "code")
    code = (Coded(code_el.get("code") or "", code_el.get("codeSystem") or "", code_el.get("displayName") or "")
            if code_el is not None else None)
    conf_el = root.find(_NS + "confidentialityCode")
    conf = (Coded(conf_el.get("code") or "", conf_el.get("codeSystem") or "", conf_el.get("displayName") or "")
            if conf_el is not None else None)
    eff = root.find(_NS + "effectiveTime")
    author = _person(root.find(f"{_NS}author/{_NS}assignedAuthor/{_NS}assignedPerson/{_NS}name"))
    level, media, _ = _body(root)
    return Header(_text(root.find(_NS + "title")), code, eff.get("value") if eff is not None else None,
                  author, conf, tuple(ids), level, media)


def pdf(data: bytes) -> bytes | None:
    """A level-1 CDA's document bytes when it is a base64 PDF (``%PDF-``), else None."""
    level, media, text = _body(_root(data))
    if level != 1 or text is None or media != "application/pdf" or text.get("representation") != "B64":
        return None
    try:
        decoded = base64.b64decode("".join((text.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if decoded.startswith(b"%PDF-") else None


def sections(data: bytes) -> list[tuple[str | None, Element | None]]:
    """A level-3 CDA's sections, in order: (title, the narrative ``text`` element)."""
    level, _, body = _body(_root(data))
    if level != 3 or body is None:
        return []
    return [(_text(s.find(_NS + "title")), s.find(_NS + "text"))
            for s in body.iter(_NS + "section")]
