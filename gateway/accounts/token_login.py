"""Sign-in with an access token (SASL OAUTHBEARER, RFC 7628, and XOAUTH2; issue 19), shared by
IMAP AUTHENTICATE and SMTP submission AUTH.

In order: the login throttle's reservation (the same counters as passwords: the mailbox asked
for, from the client's network; :mod:`gateway.accounts.throttle`), the token
(:class:`~gateway.accounts.oidc.TokenVerifier`: signature, issuer, audience, lifetime, scope),
then whether its identity may open the mailbox (:func:`gateway.accounts.identities.may_open`:
its personal mailbox or an organisational one granted to it; no authzid: its personal one).
Each judged attempt is audited like a password login (``<protocol>.login``, the reason and the
mechanism, never the token). A refusal carries the error challenge the client is sent:
RFC 7628 §3.2.2 JSON for OAUTHBEARER, Google's ``{"status":"401","schemes":"bearer",…}`` for
XOAUTH2. An identity provider that cannot be asked is a temporary failure that judged nothing:
the throttle's reservation is given back (:meth:`~gateway.accounts.throttle.LoginThrottle.released`),
so an outage never leaves professionals locked out once it is over (tokens are not guessable
secrets; refused tokens are what the throttle counts).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from gateway import metrics
from gateway.accounts import identities
from gateway.accounts.auth import Throttle
from gateway.accounts.oidc import Refused, TokenVerifier
from gateway.accounts.throttle import REFUSED, Reservation
from gateway.store import audit
from gateway.store.db import Database
from gateway.store.models import ProAccount

XOAUTH2 = "XOAUTH2"


@dataclass(frozen=True)
class TokenOutcome:
    ok: bool
    reason: str  # "auth.ok" or why not (a throttle reason, "token.<reason>", an identities code)
    account: str | None = None  # the mailbox opened (canonical address)
    account_id: int | None = None
    mailbox_id: int | None = None
    expires_at: datetime | None = None  # the token's expiry
    challenge: bytes | None = None  # the error challenge to send (refused tokens only)
    temporary: bool = False  # the provider could not be asked

    @property
    def throttled(self) -> bool:
        return self.reason in REFUSED


class TokenLogin:
    """Checks a token and the mailbox it opens; one per process, beside the password
    :class:`~gateway.accounts.auth.Authenticator` whose throttle it shares."""

    def __init__(self, db: Database, throttle: Throttle, verifier: TokenVerifier) -> None:
        self.db = db
        self.throttle = throttle
        self.verifier = verifier

    def challenge(self, mechanism: str, refused: Refused) -> bytes:
        if mechanism == XOAUTH2:  # Google's XOAUTH2 error (the same members MSSanté clients read)
            body = {"status": "400" if refused.reason == "malformed" else "401", "schemes": "bearer",
                    "scope": self.verifier.settings.required_scope}
            return json.dumps(body, separators=(",", ":")).encode("ascii")
        return self.verifier.challenge(refused).encode("ascii")

    def _decide(self, identity: str, authzid: str | None, peer: str, protocol: str, mechanism: str) -> TokenOutcome:
        with self.db.write() as session:
            if authzid:
                decision = identities.may_open(session, identity, authzid)
            else:
                own = identities.personal_mailbox(session, identity)
                decision = (identities.Decision(True, identities.OK_PERSONAL, own.address) if own is not None
                            else identities.Decision(False, identities.NO_SUBJECT))
            row = None
            if decision.address is not None:
                row = session.execute(
                    select(ProAccount).where(ProAccount.address == decision.address)).scalar_one_or_none()
            if decision.ok and row is not None:
                row.last_login_at = datetime.now(UTC)
                outcome = TokenOutcome(True, "auth.ok", row.address, row.id, row.mailbox_id)
            else:
                outcome = TokenOutcome(False, decision.reason if not decision.ok else identities.NO_MAILBOX)
            asked = (authzid or "").strip().lower()
            audit.record(session, actor=f"pro:{row.address}" if row else (f"pro:{asked}" if asked else "anonymous"),
                         action=f"{protocol}.login", subject_ref=f"pro:{row.id}" if row else None, peer=peer,
                         details={"result": outcome.reason, "mechanism": mechanism.lower()})
        return outcome

    def _audit_refused(self, authzid: str | None, peer: str, protocol: str, mechanism: str, reason: str) -> None:
        asked = (authzid or "").strip().lower()
        with self.db.write() as session:
            audit.record(session, actor=f"pro:{asked}" if asked else "anonymous", action=f"{protocol}.login",
                         peer=peer, details={"result": reason, "mechanism": mechanism.lower()})

    async def authenticate(self, mechanism: str, authzid: str | None, token: str, peer: str,
                           protocol: str) -> TokenOutcome:
        account = (authzid or "").strip().lower() or None
        attempt: Reservation = await self.throttle.admit(account, peer)
        if not attempt.allowed:
            metrics.login_failure(protocol, attempt.reason)
            return TokenOutcome(False, attempt.reason)
        verified = await self.verifier.verify(token)
        if isinstance(verified, Refused):
            reason = f"token.{verified.reason}"
            metrics.login_failure(protocol, reason)
            await asyncio.to_thread(self._audit_refused, authzid, peer, protocol, mechanism, reason)
            if verified.temporary:
                await asyncio.to_thread(self.throttle.released, attempt, time.time())
                return TokenOutcome(False, reason, temporary=True)
            await asyncio.to_thread(self.throttle.failed, attempt, time.time())
            await asyncio.sleep(attempt.delay)
            return TokenOutcome(False, reason, challenge=self.challenge(mechanism, verified))
        outcome = await asyncio.to_thread(self._decide, verified.identity, authzid, peer, protocol, mechanism)
        if outcome.ok:
            await asyncio.to_thread(self.throttle.succeeded, attempt, time.time())
            return TokenOutcome(True, outcome.reason, outcome.account, outcome.account_id, outcome.mailbox_id,
                                verified.expires_at)
        metrics.login_failure(protocol, outcome.reason)
        await asyncio.to_thread(self.throttle.failed, attempt, time.time())
        await asyncio.sleep(attempt.delay)
        return TokenOutcome(False, outcome.reason,
                            challenge=self.challenge(mechanism, Refused(outcome.reason)))
