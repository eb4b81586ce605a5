"""Who may open which professional mailbox without a password (issue 19).

Mailboxes have a type, as in the national directory (:data:`MAILBOX_TYPES`):

- *personal*: one professional. The subject an identity provider asserts for them (Pro Santé
  Connect's ``SubjectNameID``, e.g. an RPPS-based ``8…``) may be bound to it, one subject
  per mailbox and one mailbox per subject (``pro_identities``);
- *organisational*: a service or a secretariat; personal mailboxes' professionals are
  granted it (``pro_grants``);
- *application*: software sending documents; opened by the client certificates bound to it
  (``pro_certificates``: the SHA-256 of the DER form, with the issuer and subject DN kept
  for display).

The lookups (:func:`mailboxes_for_identity`, :func:`may_open`, :func:`mailbox_for_certificate`)
are what the SASL mechanisms (OAUTHBEARER / XOAUTH2, EXTERNAL) call; they answer decisions
with a reason code, and only active accounts open. The changes (bind, grant, certificate) are
checked and audited by :mod:`gateway.operations.identities`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, aliased

from gateway.store.models import ProAccount, ProCertificate, ProGrant, ProIdentity

PERSONAL, ORGANISATIONAL, APPLICATION = "personal", "organisational", "application"
MAILBOX_TYPES = (PERSONAL, ORGANISATIONAL, APPLICATION)

# Reason codes of the decisions below.
OK_PERSONAL = "identity.personal"  # the subject's own mailbox
OK_GRANTED = "identity.granted"  # an organisational mailbox granted to it
OK_CERTIFICATE = "certificate.bound"
NO_SUBJECT = "identity.unknown"  # no mailbox bound to this subject
NO_MAILBOX = "identity.not_allowed"  # the mailbox exists (or not) but is neither its own nor granted
NO_CERTIFICATE = "certificate.unknown"  # the certificate is bound to no active mailbox
NO_AUTHZID = "certificate.ambiguous"  # bound to several mailboxes: the client must name one
NOT_BOUND = "certificate.not_allowed"  # the named mailbox is not one this certificate opens

_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Decision:
    ok: bool
    reason: str
    address: str | None = None  # the mailbox opened (canonical address) when ok

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class Certificate:
    """What is kept of a client certificate."""

    fingerprint: str  # SHA-256 of the DER form, lower-case hex
    issuer: str  # RFC 4514
    subject: str
    not_after: datetime


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def normalise_fingerprint(value: str) -> str:
    """``AB:CD:…`` or ``abcd…`` (64 hex digits) as lower-case hex; ValueError otherwise."""
    hexa = value.strip().lower().replace(":", "")
    if not _HEX.fullmatch(hexa):
        raise ValueError("a SHA-256 fingerprint is 64 hexadecimal digits")
    return hexa


def read_certificate(data: bytes) -> Certificate:
    """One certificate, PEM or DER; ValueError when it is neither."""
    cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    return Certificate(fingerprint(cert.public_bytes(Encoding.DER)), cert.issuer.rfc4514_string(),
                       cert.subject.rfc4514_string(), cert.not_valid_after_utc)


def _active(session: Session, address: str) -> ProAccount | None:
    return session.execute(select(ProAccount).where(ProAccount.address == address.strip().lower(),
                                                    ProAccount.status == "active")).scalar_one_or_none()


def personal_mailbox(session: Session, subject: str) -> ProAccount | None:
    """The active personal mailbox bound to ``subject``."""
    return session.execute(
        select(ProAccount).join(ProIdentity, ProIdentity.account_id == ProAccount.id)
        .where(ProIdentity.subject == subject, ProAccount.status == "active",
               ProAccount.mailbox_type == PERSONAL)).scalar_one_or_none()


def granted(session: Session, account_id: int, *, active_only: bool = True) -> list[str]:
    """The (active) organisational mailboxes granted to a personal mailbox, by address."""
    org = aliased(ProAccount)
    query = (select(org.address).join(ProGrant, ProGrant.org_account_id == org.id)
             .where(ProGrant.pro_account_id == account_id, org.mailbox_type == ORGANISATIONAL))
    if active_only:
        query = query.where(org.status == "active")
    return list(session.execute(query.order_by(org.address)).scalars())


def mailboxes_for_identity(session: Session, subject: str) -> list[str]:
    """The subject's personal mailbox then the organisational ones granted to it; [] for an
    unknown subject (or a disabled personal mailbox: its grants go with it)."""
    own = personal_mailbox(session, subject)
    return [] if own is None else [own.address, *granted(session, own.id)]


def may_open(session: Session, subject: str, address: str) -> Decision:
    """May the professional asserted as ``subject`` open ``address`` (the SASL authzid)?"""
    own = personal_mailbox(session, subject)
    if own is None:
        return Decision(False, NO_SUBJECT)
    wanted = address.strip().lower()
    if wanted == own.address:
        return Decision(True, OK_PERSONAL, own.address)
    if wanted in granted(session, own.id):
        return Decision(True, OK_GRANTED, wanted)
    return Decision(False, NO_MAILBOX)


def mailbox_for_certificate(session: Session, certificate: bytes | str, authzid: str | None = None) -> Decision:
    """The application mailbox a verified client certificate opens: the DER bytes (or their
    SHA-256 fingerprint) and the SASL authzid, optional when the certificate is bound to one
    active mailbox only (RFC 4422 appendix A: EXTERNAL with an empty authzid)."""
    hexa = fingerprint(certificate) if isinstance(certificate, bytes) else normalise_fingerprint(certificate)
    bound = list(session.execute(
        select(ProAccount.address).join(ProCertificate, ProCertificate.account_id == ProAccount.id)
        .where(ProCertificate.fingerprint == hexa, ProAccount.status == "active",
               ProAccount.mailbox_type == APPLICATION).order_by(ProAccount.address)).scalars())
    if not bound:
        return Decision(False, NO_CERTIFICATE)
    if authzid is None or authzid.strip() == "":
        return Decision(True, OK_CERTIFICATE, bound[0]) if len(bound) == 1 else Decision(False, NO_AUTHZID)
    wanted = authzid.strip().lower()
    return Decision(True, OK_CERTIFICATE, wanted) if wanted in bound else Decision(False, NOT_BOUND)


# -- changes (checked and audited by gateway.operations.identities) ---------------------------

def identity_of(session: Session, account_id: int) -> ProIdentity | None:
    return session.execute(select(ProIdentity).where(ProIdentity.account_id == account_id)).scalar_one_or_none()


def identity_by_subject(session: Session, subject: str) -> ProIdentity | None:
    return session.execute(select(ProIdentity).where(ProIdentity.subject == subject)).scalar_one_or_none()


def grant_of(session: Session, org_id: int, pro_id: int) -> ProGrant | None:
    return session.execute(select(ProGrant).where(ProGrant.org_account_id == org_id,
                                                  ProGrant.pro_account_id == pro_id)).scalar_one_or_none()


def grantees(session: Session, org_id: int) -> list[str]:
    pro = aliased(ProAccount)
    return list(session.execute(select(pro.address).join(ProGrant, ProGrant.pro_account_id == pro.id)
                                .where(ProGrant.org_account_id == org_id).order_by(pro.address)).scalars())


def certificates(session: Session, account_id: int) -> list[ProCertificate]:
    return list(session.execute(select(ProCertificate).where(ProCertificate.account_id == account_id)
                                .order_by(ProCertificate.id)).scalars())


def certificate_of(session: Session, account_id: int, hexa: str) -> ProCertificate | None:
    return session.execute(select(ProCertificate).where(ProCertificate.account_id == account_id,
                                                        ProCertificate.fingerprint == hexa)).scalar_one_or_none()


def forget_account(session: Session, account_id: int) -> None:
    """Remove every binding of an account (its removal; the foreign keys cascade too where on)."""
    session.execute(delete(ProIdentity).where(ProIdentity.account_id == account_id))
    session.execute(delete(ProGrant).where((ProGrant.org_account_id == account_id)
                                           | (ProGrant.pro_account_id == account_id)))
    session.execute(delete(ProCertificate).where(ProCertificate.account_id == account_id))
