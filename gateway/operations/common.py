"""What every admin operation shares: the acting admin, refusals, input checks.

The command line and the web call the same operations, with the same checks. Input
checkers take the raw value (a form field, a JSON member or a command-line argument) and
raise :class:`OpError`.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Actor:
    name: str
    via: str  # console | api | cli
    peer: str | None
    role: str = "admin"  # admin | mediator (issue 14: mediators may only help a patient get in)

    @property
    def audit_actor(self) -> str:
        return f"{self.role}:{self.name}"


def cli_actor() -> Actor:
    """The operator at the command line: audited as ``admin:cli:<login name>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return Actor(f"cli:{user}", "cli", None)


class OpError(Exception):
    """A refusal with its HTTP status, a stable code (API), a message for the console (French)
    and, where the command line can meet it, the same in English."""

    def __init__(self, status: int, code: str, message: str, english: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.english = english or message


def bad_request(message: str, code: str = "invalid", en: str | None = None) -> OpError:
    return OpError(400, code, message, en)


def not_found(message: str, en: str | None = None) -> OpError:
    return OpError(404, "not_found", message, en)


def conflict(message: str, en: str | None = None) -> OpError:
    return OpError(409, "conflict", message, en)


def text(value: Any, name: str, *, required: bool = False, max_length: int = 500) -> str | None:
    """A string field (stripped); None when absent or empty and not required."""
    if value is None or value == "":
        if required:
            raise bad_request(f"{name} : valeur requise", "missing", f"{name}: a value is required")
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name} : texte attendu", en=f"{name}: text expected")
    value = value.strip()
    if "\x00" in value or len(value) > max_length:
        raise bad_request(f"{name} : valeur invalide", en=f"{name}: invalid value (at most {max_length} characters)")
    if not value and required:
        raise bad_request(f"{name} : valeur requise", "missing", f"{name}: a value is required")
    return value or None


def flag(value: Any, name: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("1", "true", "on", "yes", "oui", "0", "false", "off", "no", ""):
        return value.lower() in ("1", "true", "on", "yes", "oui")
    raise bad_request(f"{name} : booléen attendu", en=f"{name}: true or false expected")


def integer(value: Any, name: str, *, low: int, high: int, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise bad_request(f"{name} : nombre entier attendu", en=f"{name}: a whole number expected")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise bad_request(f"{name} : nombre entier attendu", en=f"{name}: a whole number expected") from None
    if not low <= number <= high:
        raise bad_request(f"{name} : hors limites ({low}-{high})", en=f"{name}: out of range ({low}-{high})")
    return number


def when(value: Any, name: str) -> datetime | None:
    """An ISO 8601 date or date-time (UTC when no zone)."""
    raw = text(value, name, max_length=40)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} : date ISO 8601 attendue (AAAA-MM-JJ)",
                          en=f"{name}: ISO 8601 date expected (YYYY-MM-DD)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
