"""TOTP second factor (RFC 6238, 30 s steps, 6 digits) with pyotp; QR codes with segno.

A code is accepted once (the last used time step is remembered per patient in the
process), with one step of clock drift either way.
"""

from __future__ import annotations

import threading
import time

import pyotp
import segno

ISSUER = "Messagerie de santé"
_last_steps: dict[int, int] = {}
_lock = threading.Lock()


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


def verify(secret: str, code: object, *, patient_id: int | None = None, now: float | None = None) -> bool:
    """Check ``code`` (±1 step); when ``patient_id`` is given, a step already used is refused."""
    digits = _clean(code)
    if digits is None:
        return False
    at = time.time() if now is None else now
    totp = pyotp.TOTP(secret)
    step = int(at // totp.interval)
    for candidate in (step, step - 1, step + 1):
        if totp.verify(digits, for_time=candidate * totp.interval):
            if patient_id is None:
                return True
            with _lock:
                if _last_steps.get(patient_id, -1) >= candidate:
                    return False
                _last_steps[patient_id] = candidate
            return True
    return False


def forget(patient_id: int) -> None:
    with _lock:
        _last_steps.pop(patient_id, None)
