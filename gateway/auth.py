"""Password authentication for professionals (SMTP AUTH and IMAP LOGIN share it).

argon2 verification runs in a worker thread so the event loop keeps serving; failures
are throttled per account and per client address (delay, then temporary lockout)
with :class:`smtp.throttle.AuthThrottle`; every attempt is audited with the peer address.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from gateway import metrics
from gateway.store import audit
from gateway.store.accounts import verify_password
from gateway.store.db import Database
from gateway.store.models import ProAccount
from smtp.throttle import AuthThrottle


@dataclass(frozen=True)
class AuthOutcome:
    ok: bool
    account: str | None  # the canonical (lower-case) address when ok
    account_id: int | None
    mailbox_id: int | None
    reason: str  # "auth.ok" | "auth.failed" | "auth.account_locked" | "auth.ip_locked" | "auth.disabled"
    retry_after: float | None = None


class Authenticator:
    def __init__(self, db: Database, throttle: AuthThrottle | None = None) -> None:
        self.db = db
        self.throttle = throttle or AuthThrottle()

    def _check(self, username: str, password: str, peer: str, protocol: str) -> AuthOutcome:
        key = username.strip().lower()
        with self.db.write() as session:
            row = session.execute(select(ProAccount).where(ProAccount.address == key)).scalar_one_or_none()
            ok = verify_password(row.password_hash if row else None, password)
            if ok and row is not None and row.status != "active":
                outcome = AuthOutcome(False, None, None, None, "auth.disabled")
            elif ok and row is not None:
                row.last_login_at = datetime.now(UTC)
                outcome = AuthOutcome(True, row.address, row.id, row.mailbox_id, "auth.ok")
            else:
                outcome = AuthOutcome(False, None, None, None, "auth.failed")
            audit.record(session, actor=f"pro:{key}" if row else "anonymous", action=f"{protocol}.login",
                         subject_ref=f"pro:{row.id}" if row else None, peer=peer,
                         details={"result": outcome.reason})
        return outcome

    async def authenticate(self, username: str, password: str, peer: str, protocol: str) -> AuthOutcome:
        """Verify credentials; waits the throttle's delay on repeated failures."""
        now = time.monotonic()
        verdict = self.throttle.verdict(username.lower(), peer, now)
        if not verdict.allowed:
            metrics.login_failure(protocol, verdict.reason)
            return AuthOutcome(False, None, None, None, verdict.reason, verdict.locked_until)
        outcome = await asyncio.to_thread(self._check, username, password, peer, protocol)
        if outcome.ok:
            self.throttle.record_success(username.lower(), peer, time.monotonic())
            return outcome
        metrics.login_failure(protocol, outcome.reason)
        after = self.throttle.record_failure(username.lower(), peer, time.monotonic())
        if after.delay:
            await asyncio.sleep(after.delay)
        return outcome
