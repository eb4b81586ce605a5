"""Identifiers of the IHE XDS metadata (IHE ITI TF-3 §4.2.5, Table 4.2.5-1 and 4.2.5-2), of
HL7 CDA R2, and of the French INS (ANS "Référentiel INS", CI-SIS volet "Structuration
minimale des documents de santé")."""

from __future__ import annotations

import re

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
CDA = "urn:hl7-org:v3"

# ExternalIdentifier identificationScheme UUIDs (Table 4.2.5-2).
SUBMISSION_SET_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
DOCUMENT_ENTRY_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DOCUMENT_ENTRY_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
SUBMISSION_SET_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
# Classification schemes and object types (Table 4.2.5-1).
DOCUMENT_ENTRY_OBJECT_TYPE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
SUBMISSION_SET_CLASSIFICATION = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
CONFIDENTIALITY_CODE = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"

PATIENT_ID_NAMES = {"XDSSubmissionSet.patientId": "submission_set", "XDSDocumentEntry.patientId": "document_entry"}

# INS roots: NIR, NIA, and their test identities (ANS Référentiel INS, §"OID").
INS_NIR = "1.2.250.1.213.1.4.8"
INS_NIA = "1.2.250.1.213.1.4.9"
INS_NIR_TEST = "1.2.250.1.213.1.4.10"
INS_NIA_TEST = "1.2.250.1.213.1.4.11"
INS_OIDS = frozenset({INS_NIR, INS_NIA, INS_NIR_TEST, INS_NIA_TEST})

LOINC = "2.16.840.1.113883.6.1"
CONFIDENTIALITY_SYSTEM = "2.16.840.1.113883.5.25"  # HL7 Confidentiality (N, R, V)
INVISIBLE_PATIENT = "INVISIBLE_PATIENT"  # ANS: not to be seen by the patient before it is explained
MASQUE_PS = "MASQUE_PS"  # ANS: hidden from professionals

_CX = re.compile(r"^([^^]*)\^\^\^&([0-9.]+)&ISO(?:\^.*)?$")
_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")


def parse_cx(value: str) -> tuple[str, str] | None:
    """HL7 v2 CX ``<id>^^^&<OID>&ISO[^<type>]`` (IHE ITI TF-3 §4.2.3.1.7) -> (id, OID)."""
    m = _CX.match(value.strip())
    return (m.group(1), m.group(2)) if m and m.group(1) else None


def ts_iso(value: str | None) -> str | None:
    """An HL7 TS (``YYYY[MM[DD[HH[MM[SS]]]]][+ZZZZ]``) as ISO 8601; None when it does not parse."""
    m = _TS.match((value or "").strip())
    if not m:
        return None
    y, mo, d, h, mi, s, zone = m.groups()
    out = y + (f"-{mo}" if mo else "") + (f"-{d}" if mo and d else "")
    if d and h:
        out += f"T{h}:{mi or '00'}" + (f":{s}" if s else "")
        if zone:
            out += f"{zone[:3]}:{zone[3:]}"
    return out
