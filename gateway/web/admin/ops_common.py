"""What the console and the JSON API share: the acting admin, errors, input checks.

Operations (``ops_*``) are plain synchronous functions over a SQLAlchemy session; the
web layers run them in a worker thread. Each one that changes something, or reads a
patient's data, writes an audit entry with actor ``admin:<name>`` in the same
transaction (``mediator:<name>`` for a mediator).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Actor:
    name: str
    via: str  # console | api
    peer: str | None
    role: str = "admin"  # admin | mediator (issue 14: mediators may only help a patient get in)

    @property
    def audit_actor(self) -> str:
        return f"{self.role}:{self.name}"


class OpError(Exception):
    """A refusal with its HTTP status, a stable code (API) and a message for the admin (French)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(message: str, code: str = "invalid") -> OpError:
    return OpError(400, code, message)


def not_found(message: str) -> OpError:
    return OpError(404, "not_found", message)


def conflict(message: str) -> OpError:
    return OpError(409, "conflict", message)


def text(value: Any, name: str, *, required: bool = False, max_length: int = 500) -> str | None:
    """A string field (stripped); None when absent or empty and not required."""
    if value is None or value == "":
        if required:
            raise bad_request(f"{name} : valeur requise", "missing")
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name} : texte attendu")
    value = value.strip()
    if "\x00" in value or len(value) > max_length:
        raise bad_request(f"{name} : valeur invalide")
    if not value and required:
        raise bad_request(f"{name} : valeur requise", "missing")
    return value or None


def flag(value: Any, name: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("1", "true", "on", "yes", "oui", "0", "false", "off", "no", ""):
        return value.lower() in ("1", "true", "on", "yes", "oui")
    raise bad_request(f"{name} : booléen attendu")


def integer(value: Any, name: str, *, low: int, high: int, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise bad_request(f"{name} : nombre entier attendu")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise bad_request(f"{name} : nombre entier attendu") from None
    if not low <= number <= high:
        raise bad_request(f"{name} : hors limites ({low}-{high})")
    return number


def when(value: Any, name: str) -> datetime | None:
    """An ISO 8601 date or date-time (UTC when no zone)."""
    raw = text(value, name, max_length=40)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} : date ISO 8601 attendue (AAAA-MM-JJ)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
