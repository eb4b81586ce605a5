"""Decisions on the documents found in a message, as values with reason codes (DESIGN rule 3).

:func:`for_patient`: may this message go into this patient's mailbox? Every identifier under
an INS root (:data:`healthdocs.values.INS_OIDS`), from the metadata and from each CDA, must
be the recipient's INS (French "identitovigilance": a document sent to the wrong patient is
the error it exists to prevent); a 13-character NIR without its key matches the recipient's
first 13. A document classified ``INVISIBLE_PATIENT`` may not reach the patient before it is
explained to them (ANS CI-SIS, confidentialityCode). Identifiers under other roots (a
hospital's local IPP) are not compared. A damaged archive's identifiers, as far as they were
read, count too. The refusal reasons are the reply catalogue's keys (``routing.reasons``).

:func:`header_notes`: ``X-MSS-CODECDA`` (the CDA codes, several when several documents) and
``X-MSS-INS`` (``O`` when a qualified INS is present) against what was found: a
disagreement is noted (reason code, counted), never refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from healthdocs import values
from healthdocs.model import Found
from healthdocs.xdm import code_list

OK = "health.ok"
NONE = "health.none"  # no XDM archive in the message
OTHER_PATIENT = "data.document_other_patient"
INVISIBLE_PATIENT = "data.document_invisible_patient"

NO_INS = "health.no_ins"  # archives read, no identifier under an INS root
DAMAGED = "health.damaged"  # an archive delivered as an ordinary attachment
CODECDA_MISMATCH = "health.codecda_mismatch"
CODECDA_WITHOUT_DOCUMENTS = "health.codecda_without_documents"
INS_HEADER_MISMATCH = "health.ins_header_mismatch"


@dataclass(frozen=True)
class DocumentsVerdict:
    accept: bool
    reason: str


def _norm(value: str) -> str:
    return "".join(value.split()).upper()


def _same_patient(found: str, ins: str) -> bool:
    found, ins = _norm(found), _norm(ins)
    return found == ins or (len(found) == 13 and ins[:13] == found)


def for_patient(found: Found, ins: str) -> DocumentsVerdict:
    """The decision for the patient mailbox whose INS is ``ins`` (the recipient address's
    local part, normalised by the caller)."""
    if not found.archives:
        return DocumentsVerdict(True, NONE)
    for archive in found.archives:
        for pid in archive.all_patient_ids():
            if pid.root in values.INS_OIDS and not _same_patient(pid.id, ins):
                return DocumentsVerdict(False, OTHER_PATIENT)
    if any(values.INVISIBLE_PATIENT in d.confidentiality_codes for d in found.documents):
        return DocumentsVerdict(False, INVISIBLE_PATIENT)
    return DocumentsVerdict(True, OK)


def _declared(headers: Sequence[str]) -> set[str]:
    return {v for h in headers for v in h.replace(",", " ").replace(";", " ").split() if v}


def header_notes(found: Found, codecda: Sequence[str], x_mss_ins: str | None) -> tuple[str, ...]:
    """Reason codes for what the MSS headers and the documents disagree on (and damaged archives)."""
    notes: list[str] = []
    if any(a.status == "damaged" for a in found.archives):
        notes.append(DAMAGED)
    documents = found.documents
    declared = _declared(codecda)
    if declared and not documents:
        notes.append(CODECDA_WITHOUT_DOCUMENTS)
    elif documents and declared and declared != code_list(documents):
        notes.append(CODECDA_MISMATCH)
    ins_found = any(p.root in values.INS_OIDS for a in found.archives for p in a.all_patient_ids())
    if found.archives and not ins_found:
        notes.append(NO_INS)
    flag = (x_mss_ins or "").strip().upper()
    if (flag == "O" and found.archives and not ins_found) or (flag == "N" and ins_found):
        notes.append(INS_HEADER_MISMATCH)
    return tuple(notes)
