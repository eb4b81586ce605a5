"""Login-failure throttling shared by every gateway node through the database (SPEC §6, issue 7).

Same policy as :class:`smtp.throttle.AuthThrottle` (failures per account and per client
address over a sliding window: a growing delay, then a temporary lockout), with the
state in ``auth_failures``/``auth_lockouts`` so that a client cannot spread its guesses
over several nodes. Times are seconds since the epoch (every node shares the clock).
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gateway.store.db import Database
from gateway.store.models import AuthFailure, AuthLockout
from smtp import replies
from smtp.throttle import ThrottleConfig, ThrottleVerdict, client_key


class SharedThrottle:
    def __init__(self, db: Database, config: ThrottleConfig | None = None) -> None:
        self.db = db
        self.config = config or ThrottleConfig()

    def _keys(self, account: str | None, ip: str) -> list[tuple[str, int, int]]:
        c = self.config
        keys = [("i:" + client_key(ip), c.ip_delay_after, c.ip_lockout_after)]
        if account is not None:
            keys.insert(0, ("a:" + account.strip().casefold(), c.account_delay_after, c.account_lockout_after))
        return keys

    def _verdict(self, session: Session, account: str | None, ip: str, now: float) -> ThrottleVerdict:
        delay = 0.0
        for key, delay_after, _ in self._keys(account, ip):
            until = session.execute(select(AuthLockout.until).where(AuthLockout.key == key)).scalar()
            if until is not None and now < until:
                reason = "auth.account_locked" if key.startswith("a:") else "auth.ip_locked"
                return ThrottleVerdict(False, 0.0, until, reason, replies.AUTH_TOO_MANY_FAILURES)
            count = session.execute(select(func.count()).select_from(AuthFailure).where(
                AuthFailure.key == key, AuthFailure.at > now - self.config.window)).scalar_one()
            if count >= delay_after:
                step = self.config.base_delay * 2.0 ** min(count - delay_after, 32)
                delay = max(delay, min(step, self.config.max_delay))
        return ThrottleVerdict(True, delay, None, "auth.delayed" if delay else "auth.ok", None)

    def verdict(self, account: str | None, ip: str, now: float) -> ThrottleVerdict:
        with self.db.read() as session:
            return self._verdict(session, account, ip, now)

    def record_failure(self, account: str | None, ip: str, now: float) -> ThrottleVerdict:
        with self.db.write() as session:
            for key, _, lockout_after in self._keys(account, ip):
                session.add(AuthFailure(key=key, at=now))
                session.flush()
                count = session.execute(select(func.count()).select_from(AuthFailure).where(
                    AuthFailure.key == key, AuthFailure.at > now - self.config.window)).scalar_one()
                if count >= lockout_after:
                    lock = session.get(AuthLockout, key)
                    if lock is None:
                        session.add(AuthLockout(key=key, until=now + self.config.lockout))
                    else:
                        lock.until = max(lock.until, now + self.config.lockout)
                    session.execute(delete(AuthFailure).where(AuthFailure.key == key))
            # keep the table small: failures outside every window are useless
            session.execute(delete(AuthFailure).where(AuthFailure.at <= now - self.config.window))
            return self._verdict(session, account, ip, now)

    def record_success(self, account: str | None, ip: str, now: float) -> None:
        """A success clears the account's failures, not the address's."""
        if account is None:
            return
        with self.db.write() as session:
            session.execute(delete(AuthFailure).where(AuthFailure.key == "a:" + account.strip().casefold()))


def clear_account(session: Session, account: str) -> None:
    """Forget an account's recent failures and lockout (its password was just reset by an admin)."""
    key = "a:" + account.strip().casefold()
    session.execute(delete(AuthFailure).where(AuthFailure.key == key))
    session.execute(delete(AuthLockout).where(AuthLockout.key == key))
