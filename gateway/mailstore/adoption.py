"""Adoption figures for the admin dashboard (the pilot's: mailboxes created, opposition
rate, activation rate, active users over 30 days, messages per day, documents exchanged).

Patient figures come from the ``patients`` table (states and dates stay in clear);
messages and documents per day are counters in ``daily_stats``, bumped in the delivery
transaction, because message content (and so the attachments) is encrypted. Nothing
here reads or returns message content, addresses or an INS.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from gateway.mailstore import parsing
from gateway.store.models import DailyStat, Patient, ProAccount
from gateway.store.raw import RawStatement

MESSAGES = "messages"
DOCUMENTS = "documents"


def count_attachments(raw: bytes) -> int:
    """MIME parts that are documents: ``Content-Disposition: attachment`` or a named leaf part.

    The delivery pipeline takes the count from the message's one parse (the summary's
    ``documents``); this is for a message at hand (tests, tools).
    """
    return parsing.documents(parsing.parse(raw))


# One upsert for both dialects (SQLite ≥ 3.24 and PostgreSQL share the ON CONFLICT syntax).
# Driver-level: it runs once per group commit of deliveries (gateway/store/raw.py).
_BUMP = RawStatement("INSERT INTO daily_stats (day, metric, value) VALUES (?, ?, ?) "
                     "ON CONFLICT (day, metric) DO UPDATE SET value = daily_stats.value + excluded.value",
                     (None, None, None))


def bump(session: Session, day: date, metric: str, amount: int = 1) -> None:
    """Add ``amount`` to a day's counter in the caller's transaction (upsert)."""
    if amount <= 0:
        return
    _BUMP.execute(session, day.isoformat(), metric, amount)


def record_counts(session: Session, at: datetime, messages: int, documents: int) -> None:
    """``messages`` accepted messages carrying ``documents`` documents, on the day of ``at`` (UTC)."""
    day = at.astimezone(UTC).date()
    bump(session, day, MESSAGES, messages)
    bump(session, day, DOCUMENTS, documents)


def record_message(session: Session, at: datetime, raw: bytes) -> None:
    """One accepted message and its documents, counted on the day it was accepted (UTC)."""
    record_counts(session, at, 1, count_attachments(raw))


@dataclass(frozen=True)
class Figures:
    mailboxes_created: int
    by_state: dict[str, int]
    opposition_rate: float
    activation_rate: float
    active_patients_30d: int
    active_pros_30d: int
    messages_30d: int
    documents_30d: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "mailboxes_created": self.mailboxes_created, "by_state": self.by_state,
            "opposition_rate": round(self.opposition_rate, 4), "activation_rate": round(self.activation_rate, 4),
            "active_users_30d": self.active_patients_30d + self.active_pros_30d,
            "active_patients_30d": self.active_patients_30d, "active_pros_30d": self.active_pros_30d,
            "messages_30d": self.messages_30d, "documents_30d": self.documents_30d,
        }


def figures(session: Session, now: datetime) -> Figures:
    since = now - timedelta(days=30)
    by_state = {str(s): int(n) for s, n in session.execute(
        select(Patient.state, func.count()).group_by(Patient.state)).tuples()}
    created = sum(by_state.values())
    activated = session.execute(select(func.count()).where(Patient.activated_at.is_not(None))).scalar_one()
    # Activity is a login or an activation (which opens a session without a login: issue 14).
    active_patients = session.execute(select(func.count()).where(
        or_(Patient.last_login_at >= since, Patient.activated_at >= since))).scalar_one()
    active_pros = session.execute(select(func.count()).where(ProAccount.last_login_at >= since)).scalar_one()
    totals = dict(session.execute(
        select(DailyStat.metric, func.sum(DailyStat.value)).where(DailyStat.day >= since.date().isoformat())
        .group_by(DailyStat.metric)).tuples().all())
    return Figures(
        mailboxes_created=created, by_state=by_state,
        opposition_rate=by_state.get("opposed", 0) / created if created else 0.0,
        activation_rate=int(activated) / created if created else 0.0,
        active_patients_30d=int(active_patients), active_pros_30d=int(active_pros),
        messages_30d=int(totals.get(MESSAGES) or 0), documents_30d=int(totals.get(DOCUMENTS) or 0),
    )


def _per_day(session: Session, column: Any, start: datetime) -> dict[str, int]:
    if session.get_bind().dialect.name == "postgresql":
        day = func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    else:  # SQLite keeps naive UTC text: "YYYY-MM-DD HH:MM:SS..."
        day = func.substr(column, 1, 10)
    rows = session.execute(select(day, func.count()).where(column >= start).group_by(day)).tuples()
    return {str(d): int(n) for d, n in rows}


def series(session: Session, now: datetime, days: int = 30) -> dict[str, list[tuple[str, int]]]:
    """Daily values over the last ``days`` days (UTC): created, activated, opposed, messages, documents."""
    first = (now - timedelta(days=days - 1)).astimezone(UTC).date()
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    labels = [(first + timedelta(days=i)).isoformat() for i in range(days)]
    data: dict[str, dict[str, int]] = {
        "created": _per_day(session, Patient.provisioned_at, start),
        "activated": _per_day(session, Patient.activated_at, start),
        "opposed": _per_day(session, Patient.opposed_at, start),
    }
    stats = session.execute(select(DailyStat.day, DailyStat.metric, DailyStat.value)
                            .where(DailyStat.day >= first.isoformat())).tuples()
    data[MESSAGES], data[DOCUMENTS] = {}, {}
    for day, metric, value in stats:
        if metric in data:
            data[metric][day] = int(value)
    return {name: [(d, values.get(d, 0)) for d in labels] for name, values in data.items()}
