"""Mailbox types' bindings (issue 19): a professional identity on a personal mailbox, an
organisational mailbox granted to a personal one, client certificates on an application
mailbox. Each change is checked (unknown address, wrong type, identity bound elsewhere) and
audited under the mailbox's reference; the lookups the SASL mechanisms use are
:mod:`gateway.accounts.identities`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gateway.accounts import identities as ids
from gateway.operations.common import Actor, bad_request, conflict, iso, not_found, text
from gateway.operations.pros import account
from gateway.store import audit
from gateway.store.models import ProAccount, ProCertificate, ProGrant, ProIdentity

_TYPE_FR = {ids.PERSONAL: "personnelle", ids.ORGANISATIONAL: "organisationnelle", ids.APPLICATION: "applicative"}
MAX_CERTIFICATE = 64 * 1024


def _of_type(pro: ProAccount, kind: str, what_fr: str, what_en: str) -> None:
    if pro.mailbox_type != kind:
        raise conflict(f"{what_fr} : {pro.address} n'est pas une boîte {_TYPE_FR[kind]} "
                       f"(elle est {_TYPE_FR.get(pro.mailbox_type, pro.mailbox_type)})",
                       f"{what_en}: {pro.address} is not {'an' if kind[0] in 'aeiou' else 'a'} {kind} mailbox "
                       f"(it is {pro.mailbox_type})")


def subject_value(value: Any) -> str:
    """The identity provider's subject: 1 to 255 printable characters, no space."""
    subject = text(value, "identifiant", required=True, max_length=255)
    assert subject is not None
    if any(c.isspace() or not c.isprintable() for c in subject):
        raise bad_request("identifiant : caractères imprimables sans espace",
                          en="subject: printable characters without spaces")
    return subject


def _record(session: Session, actor: Actor, action: str, pro: ProAccount, now: datetime, **details: Any) -> None:
    audit.record(session, actor=actor.audit_actor, action=action, subject_ref=f"pro:{pro.address}",
                 peer=actor.peer, now=now, details={**details, "via": actor.via})


def bindings(session: Session, address_value: Any) -> dict[str, Any]:
    """A mailbox's type and what opens it: its identity, its grants (either way), its certificates."""
    pro = account(session, address_value)
    identity = ids.identity_of(session, pro.id)
    return {
        "address": pro.address, "type": pro.mailbox_type, "status": pro.status,
        "password_login": pro.password_login,
        "identity": identity.subject if identity else None,
        "granted": ids.granted(session, pro.id, active_only=False) if pro.mailbox_type == ids.PERSONAL else [],
        "grantees": ids.grantees(session, pro.id) if pro.mailbox_type == ids.ORGANISATIONAL else [],
        "certificates": [{"fingerprint": c.fingerprint, "issuer": c.issuer, "subject": c.subject,
                          "not_after": iso(c.not_after), "added_at": iso(c.created_at)}
                         for c in ids.certificates(session, pro.id)],
    }  # fmt: skip


def add_identity(session: Session, actor: Actor, address_value: Any, subject_raw: Any, *,
                 now: datetime) -> dict[str, Any]:
    pro = account(session, address_value)
    subject = subject_value(subject_raw)
    _of_type(pro, ids.PERSONAL, "identité", "identity")
    bound = ids.identity_by_subject(session, subject)
    if bound is not None and bound.account_id == pro.id:
        return bindings(session, pro.address)
    if bound is not None:
        other = session.get(ProAccount, bound.account_id)
        raise conflict(f"identité déjà liée à {other.address if other else 'une autre boîte'}",
                       f"identity already bound to {other.address if other else 'another mailbox'}")
    if ids.identity_of(session, pro.id) is not None:
        raise conflict(f"{pro.address} a déjà une identité : retirez-la d'abord",
                       f"{pro.address} already has an identity: remove it first")
    session.add(ProIdentity(subject=subject, account_id=pro.id, created_at=now))
    session.flush()
    _record(session, actor, "pro.identity.add", pro, now)  # the subject is a national id: not in the trail
    return bindings(session, pro.address)


def remove_identity(session: Session, actor: Actor, address_value: Any, subject_raw: Any, *,
                    now: datetime) -> dict[str, Any]:
    pro = account(session, address_value)
    subject = subject_value(subject_raw)
    bound = ids.identity_of(session, pro.id)
    if bound is None or bound.subject != subject:
        raise not_found(f"cette identité n'est pas liée à {pro.address}",
                        f"that identity is not bound to {pro.address}")
    session.delete(bound)
    session.flush()
    _record(session, actor, "pro.identity.remove", pro, now)
    return bindings(session, pro.address)


def _pair(session: Session, org_value: Any, pro_value: Any) -> tuple[ProAccount, ProAccount]:
    org, pro = account(session, org_value), account(session, pro_value)
    _of_type(org, ids.ORGANISATIONAL, "accès", "grant")
    _of_type(pro, ids.PERSONAL, "accès", "grantee")
    return org, pro


def grant(session: Session, actor: Actor, org_value: Any, pro_value: Any, *, now: datetime) -> dict[str, Any]:
    org, pro = _pair(session, org_value, pro_value)
    if ids.grant_of(session, org.id, pro.id) is None:
        session.add(ProGrant(org_account_id=org.id, pro_account_id=pro.id, created_at=now))
        session.flush()
        _record(session, actor, "pro.grant", org, now, grantee=pro.address)
    return bindings(session, org.address)


def revoke(session: Session, actor: Actor, org_value: Any, pro_value: Any, *, now: datetime) -> dict[str, Any]:
    org, pro = _pair(session, org_value, pro_value)
    found = ids.grant_of(session, org.id, pro.id)
    if found is None:
        raise not_found(f"{pro.address} n'a pas accès à {org.address}", f"{pro.address} is not granted {org.address}")
    session.delete(found)
    session.flush()
    _record(session, actor, "pro.revoke", org, now, grantee=pro.address)
    return bindings(session, org.address)


def certificate_value(data: Any) -> ids.Certificate:
    """A certificate as given: PEM text or bytes, or DER bytes."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    if not isinstance(raw, bytes) or not raw.strip():
        raise bad_request("certificat : valeur requise (PEM)", "missing", "certificate: a PEM certificate is required")
    if len(raw) > MAX_CERTIFICATE:
        raise bad_request("certificat : trop long", en="certificate: too large")
    try:
        return ids.read_certificate(raw)
    except ValueError:
        raise bad_request("certificat : PEM ou DER X.509 illisible", "invalid_certificate",
                          "certificate: not a readable X.509 certificate (PEM or DER)") from None


def add_certificate(session: Session, actor: Actor, address_value: Any, data: Any, *,
                    now: datetime) -> dict[str, Any]:
    pro = account(session, address_value)
    cert = certificate_value(data)
    _of_type(pro, ids.APPLICATION, "certificat", "certificate")
    if ids.certificate_of(session, pro.id, cert.fingerprint) is None:
        session.add(ProCertificate(fingerprint=cert.fingerprint, account_id=pro.id, issuer=cert.issuer,
                                   subject=cert.subject, not_after=cert.not_after, created_at=now))
        session.flush()
        _record(session, actor, "pro.cert.add", pro, now, fingerprint=cert.fingerprint)
    return bindings(session, pro.address)


def remove_certificate(session: Session, actor: Actor, address_value: Any, data: Any, *,
                       now: datetime) -> dict[str, Any]:
    """Unbind a certificate given as PEM/DER or as its SHA-256 fingerprint."""
    pro = account(session, address_value)
    try:
        hexa = ids.normalise_fingerprint(data) if isinstance(data, str) and "-----BEGIN" not in data else None
    except ValueError:
        hexa = None
    if hexa is None:
        hexa = certificate_value(data).fingerprint
    found = ids.certificate_of(session, pro.id, hexa)
    if found is None:
        raise not_found(f"ce certificat n'est pas lié à {pro.address}",
                        f"that certificate is not bound to {pro.address}")
    session.delete(found)
    session.flush()
    _record(session, actor, "pro.cert.remove", pro, now, fingerprint=hexa)
    return bindings(session, pro.address)
