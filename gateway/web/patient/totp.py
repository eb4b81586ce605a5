"""TOTP second factor (RFC 6238, 30 s steps, 6 digits) with pyotp; QR codes with segno.

A login code is accepted once (:class:`ReplayGuard` remembers the last used time step per
patient in the database, shared by every node), with one step of clock drift either way.
"""

from __future__ import annotations

import time

import pyotp
import segno

from gateway.accounts.patients import claim_totp_step, forget_totp_step
from gateway.store.db import Database

ISSUER = "Messagerie de santé"
Key = tuple[int, int]
"""A patient row's key: ``(mailbox_id, id)``."""


class ReplayGuard:
    """The last accepted time step per patient, in the database so every node sees it
    (RFC 6238 §5.2): a code, or an older one, is refused once a step has been used."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(self, patient: Key, step: int) -> bool:
        """``patient``: its row's key ``(mailbox_id, id)``."""
        with self.db.write() as session:
            return claim_totp_step(session, *patient, step)

    def forget(self, patient: Key) -> None:
        with self.db.write() as session:
            forget_totp_step(session, *patient)


def new_secret() -> str:
    return pyotp.random_base32(32)  # 160 bits (RFC 4226 §4 recommends 160)


def provisioning_uri(secret: str, account: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """A PNG QR code as a ``data:`` URI (allowed by the CSP's img-src)."""
    return str(segno.make(uri, error="m").png_data_uri(scale=6, border=4))


def spaced(secret: str) -> str:
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def _clean(code: object) -> str | None:
    if not isinstance(code, str):
        return None
    digits = "".join(c for c in code if not c.isspace())
    return digits if len(digits) == 6 and digits.isdigit() else None


def matching_step(secret: str, code: object, *, now: float | None = None) -> int | None:
    """The time step ``code`` belongs to (current ±1), or None."""
    digits = _clean(code)
    if digits is None:
        return None
    at = time.time() if now is None else now
    totp = pyotp.TOTP(secret)
    step = int(at // totp.interval)
    for candidate in (step, step - 1, step + 1):
        if totp.verify(digits, for_time=candidate * totp.interval):
            return candidate
    return None


def verify(secret: str, code: object, *, guard: tuple[ReplayGuard, Key] | None = None,
           now: float | None = None) -> bool:
    """Check ``code`` (±1 step); with ``guard`` (guard, patient key ``(mailbox_id, id)``) a step
    already used is refused."""
    step = matching_step(secret, code, now=now)
    if step is None:
        return False
    return guard is None or guard[0].claim(guard[1], step)
