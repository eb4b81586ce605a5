"""Hosted domains: the domains whose professionals have accounts here (add, list).

Adding one stores its DKIM signing key sealed with the system data key; the key pair is
made by the caller before the write transaction (an RSA key costs tens of milliseconds and
a SQLite write transaction holds the one write lock). Publishing the keys (the DNS TXT
records) is :mod:`gateway.accounts.signing_keys`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.accounts.pros import AlreadyExists, add_hosted_domain
from gateway.operations.common import Actor, bad_request, conflict, iso
from gateway.operations.trust import domain_name
from gateway.store import audit
from gateway.store.keys import KeyService
from gateway.store.models import HostedDomain

SELECTOR_PREFIX = "hmg"
_SELECTOR = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def default_selector(now: datetime) -> str:
    """``hmg<YYYYMM>``: a new selector each month a key is made."""
    return f"{SELECTOR_PREFIX}{now:%Y%m}"


def row(d: HostedDomain) -> dict[str, Any]:
    return {"domain": d.name, "dkim_selector": d.dkim_selector, "created_at": iso(d.created_at)}


def list_hosted(session: Session) -> list[dict[str, Any]]:
    return [row(d) for d in session.execute(select(HostedDomain).order_by(HostedDomain.name)).scalars()]


def add(session: Session, keys: KeyService, actor: Actor, name_value: Any, *, selector: str, private_pem: bytes,
        public_b64: bytes, now: datetime) -> dict[str, Any]:
    """Add a hosted domain with its DKIM key (``private_pem`` sealed, never stored in clear)."""
    name = domain_name(name_value)
    if not _SELECTOR.fullmatch(selector):
        raise bad_request("sélecteur DKIM invalide (lettres, chiffres et « - »)",
                          en=f"invalid DKIM selector {selector!r} (letters, digits and '-')")
    try:
        domain = add_hosted_domain(session, name, now=now)
    except AlreadyExists as exc:
        raise conflict(str(exc)) from None
    system = keys.system_key(session)
    domain.dkim_selector = selector
    domain.dkim_data_key_id = system.data_key_id
    domain.dkim_key_sealed = system.seal("dkim", name, private_pem)
    domain.dkim_public_key = public_b64.decode("ascii")
    audit.record(session, actor=actor.audit_actor, action="domain.hosted.add", subject_ref=f"domain:{name}",
                 peer=actor.peer, now=now, details={"selector": selector, "via": actor.via})
    return row(domain)
