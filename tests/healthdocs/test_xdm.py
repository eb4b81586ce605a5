"""XDM archives read from the synthetic kit: metadata, CDA headers, both body levels, the
hostile ones (traversal, XXE, bomb), the decisions and the summary's JSON form."""

from __future__ import annotations

import base64
import random

import pytest

from healthdocs import cda, decide, errors, testing, values, xdm, xmlsafe
from healthdocs.errors import FormatError
from healthdocs.model import Archive, Found, PatientId, from_json, to_json
from healthdocs.safezip import SafeZip
from routing import reasons
from routing.ins import synthetic_ins

RNG = random.Random(21)
INS = synthetic_ins(RNG)
OTHER = synthetic_ins(RNG)


def _read(data: bytes, filename: str | None = "IHE_XDM.ZIP") -> Archive:
    return xdm.read(data, part="2", filename=filename)


def test_level1_document_described_from_metadata_and_cda() -> None:
    archive = _read(testing.level1(INS))
    assert (archive.status, archive.reason, archive.part) == ("read", None, "2")
    assert archive.patient_ids == (PatientId(INS, values.INS_NIR_TEST, "submission_set"),)
    (doc,) = archive.documents
    assert doc.entry == "IHE_XDM/SUBSET01/DOC0001.XML"
    assert doc.title == "Compte rendu d'hospitalisation"
    assert doc.loinc is not None and (doc.loinc.code, doc.loinc.scheme) == ("11490-0", values.LOINC)
    assert doc.type_code is not None and doc.type_code.display == "Compte rendu hospitalier (synthèse)"
    assert doc.class_code is not None and doc.class_code.code == "10"
    assert (doc.created, doc.effective) == ("20260115093000", "20260115103000+0100")
    assert values.ts_iso(doc.effective) == "2026-01-15T10:30:00+01:00"
    assert doc.author == "Alex EXEMPLE"
    assert doc.confidentiality_codes == ("N",)
    assert (doc.level, doc.body_media_type, doc.media_type) == (1, "application/pdf", "text/xml")
    assert {p.source for p in doc.patient_ids} == {"document_entry", "cda"}
    assert all(p.id == INS for p in doc.patient_ids)


def test_level1_pdf_and_level3_sections() -> None:
    document = testing.cda_level1(INS)
    found = cda.pdf(document)
    assert found is not None and found.startswith(b"%PDF-") and found.rstrip().endswith(b"%%EOF")
    sections = cda.sections(testing.cda_level3(INS))
    assert [title for title, _ in sections] == ["Hématologie", "Biochimie"]
    assert all(text is not None for _, text in sections)
    (doc,) = _read(testing.level3(INS)).documents
    assert (doc.level, doc.body_media_type) == (3, None)


def test_several_documents_in_one_archive() -> None:
    archive = _read(testing.several(INS))
    assert [d.entry.rsplit("/", 1)[1] for d in archive.documents] == ["DOC0001.XML", "DOC0002.XML", "DOC0003.XML"]
    assert [d.level for d in archive.documents] == [1, 3, 1]
    assert xdm.code_list(archive.documents) == {"11490-0", "11502-2", "57833-6"}


def test_candidate_by_name_or_by_layout() -> None:
    data = testing.level1(INS)
    assert xdm.candidate("ihe_xdm.zip", b"not even a zip")
    assert xdm.candidate("documents.zip", data) and xdm.candidate(None, data)
    assert not xdm.candidate("photos.zip", testing.archive(INS, [])[:0] + b"PK\x05\x06" + bytes(18))
    assert not xdm.candidate("report.pdf", testing.pdf())
    damaged = _read(b"not a zip")
    assert (damaged.status, damaged.reason, damaged.documents) == ("damaged", errors.NOT_ZIP, ())


def test_hostile_archives_are_damaged_not_read() -> None:
    assert _read(testing.traversal(INS)).reason == errors.PATH
    xxe = _read(testing.xxe(INS))
    assert (xxe.status, xxe.reason) == ("damaged", errors.XML_FORBIDDEN)
    bomb = _read(testing.zip_bomb(INS, size=32 * 1024 * 1024))
    assert (bomb.status, bomb.reason) == ("damaged", errors.ENTRY_TOO_LARGE)


def test_xxe_in_the_cda_keeps_what_the_metadata_said() -> None:
    archive = _read(testing.xxe(INS, in_cda=True))
    assert (archive.status, archive.reason) == ("damaged", errors.XML_FORBIDDEN)
    (doc,) = archive.documents  # listed from the metadata, unread
    assert doc.level == 0 and [p.source for p in doc.patient_ids] == ["document_entry"]


@pytest.mark.parametrize("doc", [
    b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>',
    b'<!DOCTYPE a SYSTEM "http://evil.example/a.dtd"><a/>',
    b'<!DOCTYPE a><a/>',
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><a>&lol2;</a>',
])
def test_xml_with_any_dtd_is_refused(doc: bytes) -> None:
    with pytest.raises(FormatError) as caught:
        xmlsafe.parse(doc)
    assert caught.value.reason == errors.XML_FORBIDDEN


def test_malformed_xml() -> None:
    with pytest.raises(FormatError) as caught:
        xmlsafe.parse(b"<a><b></a>")
    assert caught.value.reason == errors.XML_INVALID


def test_cx_and_split_uri() -> None:
    assert values.parse_cx(f"{INS}^^^&1.2.250.1.213.1.4.8&ISO^NH") == (INS, values.INS_NIR)
    assert values.parse_cx(f"{INS}^^^&1.2.250.1.213.1.4.8&ISO") == (INS, values.INS_NIR)
    assert values.parse_cx("12345") is None
    doc = testing.Doc("DOC0001.XML", testing.cda_level1(INS), INS)
    meta = testing.metadata(INS, [doc]).replace(b"<rim:Value>DOC0001.XML</rim:Value>",
                                                b"<rim:Value>2|0001.XML</rim:Value><rim:Value>1|DOC</rim:Value>")
    archive = _read(testing.archive(INS, [doc], meta=meta))
    assert archive.status == "read" and archive.documents[0].entry.endswith("DOC0001.XML")


def test_decisions() -> None:
    assert decide.for_patient(Found(), INS) == decide.DocumentsVerdict(True, decide.NONE)
    assert decide.for_patient(Found((_read(testing.several(INS)),)), INS).accept
    for where in ("everywhere", "cda", "set"):
        found = Found((_read(testing.other_patient(INS, OTHER, where=where)),))
        assert decide.for_patient(found, INS) == decide.DocumentsVerdict(False, decide.OTHER_PATIENT), where
    assert decide.for_patient(Found((_read(testing.invisible(INS)),)), INS).reason == decide.INVISIBLE_PATIENT
    local = Archive("2", None, patient_ids=(PatientId("IPP-42", "1.2.250.1.999.7", "submission_set"),))
    assert decide.for_patient(Found((local,)), INS).accept  # a hospital's own identifier: not compared
    nir13 = Archive("2", None, patient_ids=(PatientId(INS[:13], values.INS_NIR, "cda"),))
    assert decide.for_patient(Found((nir13,)), INS).accept


def test_refusals_are_the_reply_catalogue_entries() -> None:
    refusals = {decide.OTHER_PATIENT, decide.INVISIBLE_PATIENT}
    assert refusals == {r for r in reasons.CATALOGUE if r.startswith("data.document_")}
    assert all(reasons.CATALOGUE[r].code == 550 for r in refusals)


def test_header_notes() -> None:
    found = Found((_read(testing.several(INS)),))
    assert decide.header_notes(found, ["11490-0, 11502-2", "57833-6"], "O") == ()
    assert decide.header_notes(found, ["11490-0"], "O") == (decide.CODECDA_MISMATCH,)
    assert decide.header_notes(found, [], "N") == (decide.INS_HEADER_MISMATCH,)
    assert decide.header_notes(Found(), ["11490-0"], None) == (decide.CODECDA_WITHOUT_DOCUMENTS,)
    damaged = Found((_read(b"garbage"),))
    assert decide.header_notes(damaged, [], "O") == (decide.DAMAGED, decide.NO_INS, decide.INS_HEADER_MISMATCH)


def test_json_round_trip() -> None:
    found = Found((_read(testing.several(INS)), _read(testing.traversal(INS))), ("health.damaged",))
    assert from_json(to_json(found)) == found


def test_generated_pdf_padding_is_incompressible() -> None:
    padded = testing.pdf(padding=100_000)
    assert len(padded) > 100_000
    assert base64.b64decode(base64.b64encode(padded)) == padded


def test_a_level1_header_is_read_without_inflating_the_pdf() -> None:
    archive = SafeZip(testing.level1(INS, padding=2_000_000))
    name = "IHE_XDM/SUBSET01/DOC0001.XML"
    stream = archive.open(name)
    head = cda.header_from(stream)
    assert (head.level, head.body_media_type, head.title) == (1, "application/pdf", "Compte rendu d'hospitalisation")
    assert [p.id for p in head.patient_ids] == [INS]
    assert stream.given < 64 * 1024 and archive.read_total == stream.given  # of 2.7 MB
    assert head == cda.header(SafeZip(testing.level1(INS, padding=2_000_000)).read(name))  # the same as read whole

