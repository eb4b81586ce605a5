"""Index key versions in the database (issue 20): their key-check values, the active version.

Mirrors the master keys' ``key_checks`` (:mod:`gateway.store.keys`): ``index_key_checks`` holds
one check value per index key version the database uses (``IndexKeyring.key_check``); the key
file must hold each with the same key, or nothing starts (and a re-read file is not taken).
The highest recorded version indexes new rows; a lookup tries every version the file holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from crypto.blind_index import IndexKeyring
from gateway.store.models import IndexKeyCheck, KeyCheck


def _versions(values: Iterable[int]) -> str:
    return ", ".join(f"index-v{v}" for v in sorted(values)) or "none"


def recorded_index_checks(session: Session) -> dict[int, bytes]:
    return {int(v): bytes(c) for v, c in
            session.execute(select(IndexKeyCheck.version, IndexKeyCheck.check_value)).all()}


def active_index_version(session: Session) -> int | None:
    """The highest recorded index key version (the one new rows are indexed with)."""
    value = session.execute(select(func.max(IndexKeyCheck.version))).scalar()
    return None if value is None else int(value)


@dataclass(frozen=True)
class IndexCheckReport:
    """How a key file's index keys compare with the versions the database records."""

    missing: tuple[int, ...] = ()
    wrong: tuple[int, ...] = ()
    no_section: bool = False
    """The key file has no ``index-v<N>`` line at all."""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.wrong

    def problem(self) -> str:
        bad = sorted({*self.missing, *self.wrong})
        if self.no_section:
            return (f"has no index key (no 'index-v<N> = ...' line) but the database uses {_versions(bad)}: "
                    "another node added it to its copy of the key file; copy that file here (mode 0600)")
        parts = []
        if self.missing:
            parts.append(f"{_versions(self.missing)} not in the file")
        if self.wrong:
            parts.append(f"{_versions(self.wrong)} with a different key")
        return f"does not hold the index key(s) {_versions(bad)} that the database uses ({'; '.join(parts)})"


def check_index(checks: dict[int, bytes], index: IndexKeyring | None) -> IndexCheckReport:
    """Compare the file's index keys with the recorded check values (pure)."""
    if index is None:
        return IndexCheckReport(missing=tuple(sorted(checks)), no_section=bool(checks))
    missing = tuple(sorted(v for v in checks if not index.has(v)))
    wrong = tuple(sorted(v for v, c in checks.items() if index.has(v) and not index.verify_key_check(v, c)))
    return IndexCheckReport(missing, wrong)


def add_check_values(session: Session, model: type[KeyCheck] | type[IndexKeyCheck], check_of: Callable[[int], bytes],
                     versions: Iterable[int], now: datetime | None = None) -> list[int]:
    """Record ``check_of(version)`` in ``model``'s table (``key_checks`` or ``index_key_checks``) for
    each of ``versions`` not recorded yet; returns those added."""
    at = now or datetime.now(UTC)
    have = set(session.execute(select(model.version)).scalars())
    added = []
    for version in sorted(set(versions) - have):
        session.add(model(version=version, check_value=check_of(version), created_at=at))
        added.append(version)
    session.flush()
    return added


def record_index_checks(session: Session, index: IndexKeyring, versions: Iterable[int], *,
                        now: datetime | None = None) -> list[int]:
    """Record the check value of each of ``versions`` not recorded yet; returns those added."""
    return add_check_values(session, IndexKeyCheck, index.key_check, versions, now)


def forget_index_check(session: Session, version: int) -> None:
    session.execute(delete(IndexKeyCheck).where(IndexKeyCheck.version == version))
