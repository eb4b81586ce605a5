"""INS (Identifiant National de Santé) validation: the 15-character NIR/NIA.

SPEC §3: 13 characters + a 2-digit key, key = 97 - (number mod 97), with the
Corsican departments ``2A`` -> 19 and ``2B`` -> 18 before the computation.
The arithmetic is python-stdnum's (``stdnum.fr.nir``), not ours.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass

from stdnum import exceptions as stdnum_errors
from stdnum.fr import nir


@dataclass(frozen=True)
class InvalidINS(ValueError):
    """An INS that cannot be a patient identifier; ``reason`` is a plain-words code."""

    reason: str  # "length" | "format" | "key"

    def __str__(self) -> str:
        return {
            "length": "invalid INS (must be 15 characters: 13 + a 2-digit key)",
            "format": "invalid INS (digits only, except 2A/2B for Corsica)",
            "key": "invalid INS (check key)",
        }[self.reason]


def normalise_ins(value: str) -> str:
    """Return the canonical INS (upper case, no separators) or raise :class:`InvalidINS`."""
    text = value.strip()
    if any(c not in "0123456789ABab .-" for c in text):
        raise InvalidINS("format")
    compact = text.replace("-", "")
    try:
        return str(nir.validate(compact))
    except stdnum_errors.InvalidLength:
        raise InvalidINS("length") from None
    except stdnum_errors.InvalidChecksum:
        raise InvalidINS("key") from None
    except stdnum_errors.ValidationError:
        raise InvalidINS("format") from None


def is_valid_ins(value: str) -> bool:
    try:
        normalise_ins(value)
    except InvalidINS:
        return False
    return True


def mask_ins(ins: str) -> str:
    """A form safe for operational logs: first digit and key only (SPEC §3)."""
    if len(ins) < 4:
        return "*" * len(ins)
    return ins[0] + "*" * (len(ins) - 3) + ins[-2:]


def ins_log_id(ins: str, secret: bytes) -> str:
    """A keyed hash of an INS, stable per deployment, for correlating log lines."""
    return hmac.new(secret, ins.encode("ascii"), hashlib.sha256).hexdigest()[:16]


def synthetic_ins(rng: random.Random, *, corsica: bool = False) -> str:
    """A synthetic INS with a valid key, for tests and benchmarks (never a real person).

    Uses the NIA-style sex digit 7/8 where possible to stay clear of real NIRs.
    """
    sex = rng.choice("78")
    year = f"{rng.randrange(100):02d}"
    month = f"{rng.randrange(1, 13):02d}"
    dept = rng.choice(["2A", "2B"]) if corsica else f"{rng.randrange(1, 96):02d}"
    if dept == "20":
        dept = "21"
    commune = f"{rng.randrange(1, 1000):03d}"
    serial = f"{rng.randrange(1, 1000):03d}"
    body = sex + year + month + dept + commune + serial
    return body + str(nir.calc_check_digits(body))
