"""Synthetic IHE XDM archives for tests and benchmarks (never real people, never real data).

Identifiers are whatever INS the caller passes (``routing.ins.synthetic_ins`` in this
project), under the INS *test* roots (:data:`~healthdocs.values.INS_NIR_TEST`); authors,
titles and texts are made up. The layout follows IHE ITI TF-1 §16.1: ``INDEX.HTM``,
``README.TXT``, ``IHE_XDM/SUBSET01/METADATA.XML`` (ebRIM 3.0 ``SubmitObjectsRequest``) and
the documents. Presets: :func:`level1`, :func:`level3`, :func:`several`, :func:`other_patient`,
:func:`invisible`, and the hostile ones :func:`zip_bomb`, :func:`traversal`, :func:`xxe`.
:func:`message` wraps an archive into a mail as professional software sends it.
"""

from __future__ import annotations

import base64
import io
import os
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from xml.sax.saxutils import escape, quoteattr

from healthdocs import values

TEST_ROOT = values.INS_NIR_TEST
LOINC_CRH = ("11490-0", "Compte rendu hospitalier (synthèse)")
LOINC_LAB = ("11502-2", "CR d'examens biologiques")


def pdf(text: str = "Document de test", *, padding: int = 0) -> bytes:
    """A small valid one-page PDF; ``padding`` random (incompressible) bytes in a comment stream."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1", "replace")
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
               b" /Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    if padding:
        blob = os.urandom(padding)
        objects.append(b"<< /Length %d >>\nstream\n" % len(blob) + blob + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _cda(ins: str, *, root: str, title: str, code: tuple[str, str], body: str, confidentiality: str = "N",
         effective: str = "20260115103000+0100", doctype: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}'
            f'<ClinicalDocument xmlns="{values.CDA}">'
            f'<typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>'
            f'<id root="1.2.250.1.999.1" extension="{uuid.uuid4()}"/>'
            f'<code code="{code[0]}" codeSystem="{values.LOINC}" displayName={quoteattr(code[1])}/>'
            f'<title>{escape(title)}</title><effectiveTime value="{effective}"/>'
            f'<confidentialityCode code="{confidentiality}" codeSystem="{values.CONFIDENTIALITY_SYSTEM}"/>'
            f'<recordTarget><patientRole><id root="{root}" extension="{ins}"/>'
            f'<patient><name><given>Camille</given><family>TEST</family></name></patient></patientRole></recordTarget>'
            f'<author><time value="{effective}"/><assignedAuthor><id root="1.2.250.1.71.4.2.1" extension="899999999"/>'
            f'<assignedPerson><name><prefix>Dr</prefix><given>Alex</given><family>EXEMPLE</family></name>'
            f'</assignedPerson></assignedAuthor></author>'
            f'<component>{body}</component></ClinicalDocument>').encode()


def cda_level1(ins: str, *, root: str = TEST_ROOT, title: str = "Compte rendu d'hospitalisation",
               code: tuple[str, str] = LOINC_CRH, document: bytes | None = None, confidentiality: str = "N",
               doctype: str = "", effective: str = "20260115103000+0100") -> bytes:
    data = base64.b64encode(document if document is not None else pdf(title)).decode()
    body = f'<nonXMLBody><text mediaType="application/pdf" representation="B64">{data}</text></nonXMLBody>'
    return _cda(ins, root=root, title=title, code=code, body=body, confidentiality=confidentiality, doctype=doctype,
                effective=effective)


def cda_level3(ins: str, *, root: str = TEST_ROOT, title: str = "Résultats de biologie",
               code: tuple[str, str] = LOINC_LAB,
               sections: Sequence[tuple[str, str]] = (("Hématologie", "<paragraph>Hémoglobine : 14 g/dL</paragraph>"),
                                                      ("Biochimie", "<list><item>Glycémie : 5,1 mmol/L</item></list>")),
               confidentiality: str = "N", effective: str = "20260115103000+0100") -> bytes:
    parts = "".join(f"<component><section><title>{escape(t)}</title><text>{narrative}</text></section></component>"
                    for t, narrative in sections)
    return _cda(ins, root=root, title=title, code=code, body=f"<structuredBody>{parts}</structuredBody>",
                confidentiality=confidentiality, effective=effective)


@dataclass(frozen=True)
class Doc:
    """One document entry of the metadata and the bytes it names."""

    uri: str
    content: bytes
    ins: str
    title: str = "Compte rendu d'hospitalisation"
    code: tuple[str, str] = LOINC_CRH
    class_code: tuple[str, str] = ("10", "Compte rendu")
    confidentiality: tuple[str, ...] = ("N",)
    root: str = TEST_ROOT
    author: str = "899999999^EXEMPLE^Alex^^^Dr^^^&1.2.250.1.71.4.2.1&ISO^D^^^RPPS"
    mime_type: str = "text/xml"


def _classification(scheme: str, obj: str, code: str, coding: str, display: str) -> str:
    return (f'<rim:Classification classificationScheme="{scheme}" classifiedObject="{obj}" id="urn:uuid:{uuid.uuid4()}"'
            f' nodeRepresentation={quoteattr(code)}><rim:Slot name="codingScheme"><rim:ValueList>'
            f'<rim:Value>{coding}</rim:Value></rim:ValueList></rim:Slot><rim:Name>'
            f'<rim:LocalizedString value={quoteattr(display)}/></rim:Name></rim:Classification>')


def _slot(name: str, value: str) -> str:
    return f'<rim:Slot name="{name}"><rim:ValueList><rim:Value>{value}</rim:Value></rim:ValueList></rim:Slot>'


def metadata(set_ins: str, docs: Sequence[Doc], *, root: str = TEST_ROOT, doctype: str = "",
             name_text: str | None = None) -> bytes:
    entries = []
    for i, d in enumerate(docs, 1):
        obj = f"urn:uuid:{uuid.uuid4()}"
        name = name_text if name_text is not None else escape(d.title)
        conf = "".join(_classification(values.CONFIDENTIALITY_CODE, obj, c, "1.2.250.1.213.1.1.4.13", c)
                       for c in d.confidentiality)
        entries.append(
            f'<rim:ExtrinsicObject id="{obj}" mimeType="{d.mime_type}"'
            f' objectType="{values.DOCUMENT_ENTRY_OBJECT_TYPE}">'
            + _slot("creationTime", "20260115093000") + _slot("URI", d.uri) + _slot("languageCode", "fr-FR")
            + f'<rim:Name><rim:LocalizedString value="{name}"/></rim:Name>'
            + f'<rim:Classification classificationScheme="{values.AUTHOR}" classifiedObject="{obj}"'
            f' id="urn:uuid:{uuid.uuid4()}" nodeRepresentation="">{_slot("authorPerson", escape(d.author))}'
            f'</rim:Classification>'
            + _classification(values.CLASS_CODE, obj, d.class_code[0], "1.2.250.1.213.1.1.4.1", d.class_code[1])
            + _classification(values.TYPE_CODE, obj, d.code[0], values.LOINC, d.code[1]) + conf
            + f'<rim:ExternalIdentifier id="urn:uuid:{uuid.uuid4()}" registryObject="{obj}"'
            f' identificationScheme="{values.DOCUMENT_ENTRY_PATIENT_ID}" value="{d.ins}^^^&amp;{d.root}&amp;ISO^NH">'
            f'<rim:Name><rim:LocalizedString value="XDSDocumentEntry.patientId"/></rim:Name></rim:ExternalIdentifier>'
            + f'<rim:ExternalIdentifier id="urn:uuid:{uuid.uuid4()}" registryObject="{obj}"'
            f' identificationScheme="{values.DOCUMENT_ENTRY_UNIQUE_ID}" value="1.2.250.1.999.1.{i}">'
            f'<rim:Name><rim:LocalizedString value="XDSDocumentEntry.uniqueId"/></rim:Name></rim:ExternalIdentifier>'
            + "</rim:ExtrinsicObject>")
    ss = f"urn:uuid:{uuid.uuid4()}"
    package = (f'<rim:RegistryPackage id="{ss}">' + _slot("submissionTime", "20260115093100")
               + f'<rim:ExternalIdentifier id="urn:uuid:{uuid.uuid4()}" registryObject="{ss}"'
               f' identificationScheme="{values.SUBMISSION_SET_PATIENT_ID}" value="{set_ins}^^^&amp;{root}&amp;ISO^NH">'
               f'<rim:Name><rim:LocalizedString value="XDSSubmissionSet.patientId"/></rim:Name>'
               f'</rim:ExternalIdentifier></rim:RegistryPackage>'
               f'<rim:Classification classifiedObject="{ss}"'
               f' classificationNode="{values.SUBMISSION_SET_CLASSIFICATION}"'
               f' id="urn:uuid:{uuid.uuid4()}"/>')
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}<lcm:SubmitObjectsRequest xmlns:lcm="{values.LCM}"'
            f' xmlns:rim="{values.RIM}"><rim:RegistryObjectList>{"".join(entries)}{package}'
            f'</rim:RegistryObjectList></lcm:SubmitObjectsRequest>').encode()


def archive(set_ins: str, docs: Sequence[Doc], *, meta: bytes | None = None,
            extra: Sequence[tuple[str, bytes]] = (), subset: str = "SUBSET01") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("INDEX.HTM", "<html><body><p>Documents de santé (test)</p></body></html>")
        zf.writestr("README.TXT", "Synthetic IHE XDM test media. No real patient.\r\n")
        zf.writestr(f"IHE_XDM/{subset}/METADATA.XML", meta if meta is not None else metadata(set_ins, docs))
        for d in docs:
            zf.writestr(f"IHE_XDM/{subset}/{d.uri}", d.content)
        for name, content in extra:
            zf.writestr(name, content)
    return buf.getvalue()


def level1(ins: str, *, padding: int = 0) -> bytes:
    return archive(ins, [Doc("DOC0001.XML", cda_level1(ins, document=pdf(padding=padding)), ins)])


def level3(ins: str) -> bytes:
    return archive(ins, [Doc("DOC0001.XML", cda_level3(ins), ins, title="Résultats de biologie", code=LOINC_LAB,
                             class_code=("11", "Résultat d'examen"))])


def several(ins: str) -> bytes:
    return archive(ins, [Doc("DOC0001.XML", cda_level1(ins), ins),
                         Doc("DOC0002.XML", cda_level3(ins), ins, title="Résultats de biologie", code=LOINC_LAB),
                         Doc("DOC0003.XML", cda_level1(ins, title="Ordonnance", code=("57833-6", "Prescription")),
                             ins, title="Ordonnance", code=("57833-6", "Prescription"))])


def other_patient(ins: str, other: str, *, where: str = "everywhere") -> bytes:
    """About ``other``: everywhere, or only in the CDA (``where="cda"``) or only the set (``"set"``)."""
    doc_ins = other if where in ("everywhere",) else ins
    cda_ins = other if where in ("everywhere", "cda") else ins
    set_ins = other if where in ("everywhere", "set") else ins
    return archive(set_ins, [Doc("DOC0001.XML", cda_level1(cda_ins), doc_ins)])


def invisible(ins: str) -> bytes:
    return archive(ins, [Doc("DOC0001.XML", cda_level1(ins, confidentiality="N"), ins,
                             confidentiality=("N", values.INVISIBLE_PATIENT))])


def zip_bomb(ins: str, *, size: int = 256 * 1024 * 1024) -> bytes:
    """A document entry of ``size`` zero bytes (deflated a thousandfold) in an otherwise proper archive."""
    buf = io.BytesIO()
    meta = metadata(ins, [Doc("DOC0001.XML", b"", ins)])
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("IHE_XDM/SUBSET01/METADATA.XML", meta)
        info = zipfile.ZipInfo("IHE_XDM/SUBSET01/DOC0001.XML")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as out:
            chunk = bytes(1024 * 1024)
            for _ in range(size // len(chunk)):
                out.write(chunk)
    return buf.getvalue()


def traversal(ins: str) -> bytes:
    """An entry named ``../../`` out of any extraction directory, and a URI slot that points there."""
    doc = Doc("../../../tmp/DOC0001.XML", cda_level1(ins), ins)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("IHE_XDM/SUBSET01/METADATA.XML", metadata(ins, [doc]))
        zf.writestr("IHE_XDM/SUBSET01/../../../tmp/DOC0001.XML", doc.content)
    return buf.getvalue()


XXE_DOCTYPE = '<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'


def xxe(ins: str, *, in_cda: bool = False) -> bytes:
    """An external entity in the metadata (or in the CDA) that a careless reader would resolve."""
    if in_cda:
        return archive(ins, [Doc("DOC0001.XML", cda_level1(ins, doctype=XXE_DOCTYPE), ins)])
    doc = Doc("DOC0001.XML", cda_level1(ins), ins)
    return archive(ins, [doc], meta=metadata(ins, [doc], doctype=XXE_DOCTYPE, name_text="&xxe;"))


def message(archive_bytes: bytes, *, sender: str, to: str, filename: str = "IHE_XDM.ZIP",
            codecda: Sequence[str] | None = None, x_mss_ins: str | None = "O", subject: str = "Document de santé",
            text: str = "Veuillez trouver ci-joint un document.") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4()}@lps.example>"
    msg["Date"] = "Thu, 15 Jan 2026 10:00:00 +0100"
    for value in codecda or ():
        msg["X-MSS-CODECDA"] = value
    if x_mss_ins is not None:
        msg["X-MSS-INS"] = x_mss_ins
    msg.set_content(text)
    msg.add_attachment(archive_bytes, maintype="application", subtype="zip", filename=filename)
    return msg.as_bytes(policy=SMTP)
