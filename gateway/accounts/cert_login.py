"""Sign-in with a client certificate (SASL EXTERNAL, RFC 4422 appendix A; issue 19), shared by
IMAP AUTHENTICATE and SMTP submission AUTH.

The certificate is the one the TLS handshake verified against ``[tls] client_ca_file``; the
listener offers EXTERNAL only then. In order: the login throttle's reservation (the mailbox
asked for, or the certificate's fingerprint, from the client's network), then the application
mailbox the certificate is bound to (:func:`gateway.accounts.identities.mailbox_for_certificate`;
the authzid may be empty when it is bound to one only). Each judged attempt is audited like a
password login (``<protocol>.login``, mechanism ``external``, the fingerprint's first 16 hex
digits, never the certificate).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from gateway import metrics
from gateway.accounts import identities
from gateway.accounts.auth import Throttle
from gateway.accounts.throttle import REFUSED
from gateway.store import audit
from gateway.store.db import Database
from gateway.store.models import ProAccount

FINGERPRINT_SHOWN = 16  # hex digits of the SHA-256 fingerprint written to the audit


@dataclass(frozen=True)
class CertOutcome:
    ok: bool
    reason: str  # "auth.ok", a throttle reason, "certificate.missing" or an identities code
    account: str | None = None
    account_id: int | None = None
    mailbox_id: int | None = None

    @property
    def throttled(self) -> bool:
        return self.reason in REFUSED


class CertLogin:
    """Checks a verified client certificate and the mailbox it opens; one per process, sharing
    the password authenticator's throttle."""

    def __init__(self, db: Database, throttle: Throttle) -> None:
        self.db = db
        self.throttle = throttle

    def _decide(self, der: bytes, authzid: str | None, peer: str, protocol: str) -> CertOutcome:
        prefix = identities.fingerprint(der)[:FINGERPRINT_SHOWN]
        with self.db.write() as session:
            decision = identities.mailbox_for_certificate(session, der, authzid)
            row = None
            if decision.ok and decision.address is not None:
                row = session.execute(
                    select(ProAccount).where(ProAccount.address == decision.address)).scalar_one_or_none()
            if row is not None:
                row.last_login_at = datetime.now(UTC)
                outcome = CertOutcome(True, "auth.ok", row.address, row.id, row.mailbox_id)
            else:
                outcome = CertOutcome(False, decision.reason if not decision.ok else identities.NO_CERTIFICATE)
            asked = (authzid or "").strip().lower()
            audit.record(session, actor=f"pro:{row.address}" if row else (f"pro:{asked}" if asked else "anonymous"),
                         action=f"{protocol}.login", subject_ref=f"pro:{row.id}" if row else None, peer=peer,
                         details={"result": outcome.reason, "mechanism": "external", "certificate": prefix})
        return outcome

    async def authenticate(self, der: bytes | None, authzid: str | None, peer: str, protocol: str) -> CertOutcome:
        account = (authzid or "").strip().lower() or None
        if account is None and der is not None:
            account = "cert:" + identities.fingerprint(der)[:FINGERPRINT_SHOWN]
        attempt = await self.throttle.admit(account, peer)
        if not attempt.allowed:
            metrics.login_failure(protocol, attempt.reason)
            return CertOutcome(False, attempt.reason)
        if der is None:  # the session offers EXTERNAL only with a verified certificate
            metrics.login_failure(protocol, "certificate.missing")
            await asyncio.to_thread(self.throttle.failed, attempt, time.time())
            await asyncio.sleep(attempt.delay)
            return CertOutcome(False, "certificate.missing")
        outcome = await asyncio.to_thread(self._decide, der, authzid, peer, protocol)
        if outcome.ok:
            await asyncio.to_thread(self.throttle.succeeded, attempt, time.time())
            return outcome
        metrics.login_failure(protocol, outcome.reason)
        await asyncio.to_thread(self.throttle.failed, attempt, time.time())
        await asyncio.sleep(attempt.delay)
        return outcome
