"""DKIM signing keys of the domains the gateway writes mail from (SPEC §7, issue 17).

* A hosted domain's key is made with the domain (``gateway domain hosted add``) and kept in
  ``hosted_domains``.
* The patient domain (read receipts, patients' replies) and the gateway's host name (DSNs,
  notifications: ``MAILER-DAEMON@``/``no-reply@`` it) get theirs in ``dkim_keys``, made on
  first use: when ``gateway domain hosted dkim`` prints the records to publish, or when the
  first message from them must be signed.

Private keys are sealed under the system data key (purpose ``dkim``, item = the domain),
like every other secret of the gateway's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.dkim_keys import KeyType, generate_dkim_key, key_type_of
from gateway.store import audit
from gateway.store.keys import KeyService
from gateway.store.models import DkimKey, HostedDomain

SELECTOR_PREFIX = "hmg"  # hmg<YYYYMM>: a new selector per rotation month


@dataclass(frozen=True)
class SigningKey:
    """One domain's key: what to publish (selector, ``p=``) and, when opened, the private key."""

    domain: str
    selector: str
    public_key: str  # base64 p= (RFC 6376 §3.6.1)
    private_pem: bytes | None = None
    source: str = "hosted"  # hosted | gateway

    @property
    def key_type(self) -> KeyType:
        return key_type_of(self.public_key)


def default_selector(now: datetime | None = None) -> str:
    return f"{SELECTOR_PREFIX}{(now or datetime.now(UTC)):%Y%m}"


def _hosted(session: Session, domain: str) -> HostedDomain | None:
    row = session.execute(select(HostedDomain).where(HostedDomain.name == domain)).scalar_one_or_none()
    if row is None or not (row.dkim_key_sealed and row.dkim_selector and row.dkim_public_key):
        return None
    return row


def _own(session: Session, domain: str) -> DkimKey | None:
    return session.execute(select(DkimKey).where(DkimKey.domain == domain)).scalar_one_or_none()


def signing_key(session: Session, keys: KeyService, domain: str) -> SigningKey | None:
    """The opened key that signs mail from ``domain`` (an A-label, lower case), if there is one."""
    hosted = _hosted(session, domain)
    if hosted is not None:
        assert hosted.dkim_key_sealed and hosted.dkim_selector and hosted.dkim_public_key
        if hosted.dkim_data_key_id is None:
            return None  # the system data key was shredded: nothing can open it
        pem = keys.system_by_id(session, hosted.dkim_data_key_id).open("dkim", hosted.name, hosted.dkim_key_sealed)
        return SigningKey(hosted.name, hosted.dkim_selector, hosted.dkim_public_key, pem, "hosted")
    own = _own(session, domain)
    if own is None or own.data_key_id is None:
        return None
    pem = keys.system_by_id(session, own.data_key_id).open("dkim", own.domain, own.key_sealed)
    return SigningKey(own.domain, own.selector, own.public_key, pem, "gateway")


def ensure_key(session: Session, keys: KeyService, domain: str, *, actor: str = "system",
               now: datetime | None = None, key_type: KeyType = "rsa") -> SigningKey:
    """The published part of ``domain``'s key, made now (in ``dkim_keys``, audited as
    ``dkim.key.create``) if it has none.

    Two nodes making one at the same moment: the unique domain makes one transaction fail
    (IntegrityError); the caller reads the winner's key then.
    """
    hosted = _hosted(session, domain)
    if hosted is not None:
        assert hosted.dkim_selector and hosted.dkim_public_key
        return SigningKey(hosted.name, hosted.dkim_selector, hosted.dkim_public_key, None, "hosted")
    own = _own(session, domain)
    if own is None:
        at = now or datetime.now(UTC)
        private_pem, public = generate_dkim_key(key_type=key_type)
        system = keys.system_key(session)
        own = DkimKey(domain=domain, selector=default_selector(at), data_key_id=system.data_key_id,
                      key_sealed=system.seal("dkim", domain, private_pem), public_key=public.decode("ascii"),
                      created_at=at)
        session.add(own)
        session.flush()
        audit.record(session, actor=actor, action="dkim.key.create", subject_ref=f"domain:{domain}", now=at,
                     details={"selector": own.selector, "key_type": key_type})
    return SigningKey(own.domain, own.selector, own.public_key, None, "gateway")


def published(session: Session) -> list[SigningKey]:
    """Every key to publish in the DNS: hosted domains', then the gateway's own (no private keys)."""
    found = [SigningKey(h.name, h.dkim_selector, h.dkim_public_key, None, "hosted")
             for h in session.execute(select(HostedDomain).order_by(HostedDomain.name)).scalars()
             if h.dkim_selector and h.dkim_public_key]
    found += [SigningKey(k.domain, k.selector, k.public_key, None, "gateway")
              for k in session.execute(select(DkimKey).order_by(DkimKey.domain)).scalars()]
    return found
