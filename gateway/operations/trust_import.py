"""Importing the official MSSanté trust list ("liste blanche" XML) into ``trusted_domains`` (SPEC §6).

Parsing goes through defusedxml with DTDs, entities and external references forbidden,
after a size check, so a hostile file (billion laughs, XXE, a huge download) is refused
before it can cost memory. The import is a diff: entries are added, changed field by
field (only the list's own fields), or removed when they came from an earlier import
and are gone from the new list. Entries added by hand and our local settings of
imported entries (DKIM, route, TLS, size limit, status) are never touched.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.store import audit
from gateway.store.models import TrustedDomain
from routing.address import InvalidAddress, normalise_domain

NAMESPACE = "https://listeblanche.mssante.fr/schema"
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# Our column <- the list's element.
LIST_FIELDS: dict[str, str] = {
    "description": "Description",
    "operator_dn": "DNCertificatOperateur",
    "contact_responsable": "ResponsableContact",
    "contact_support": "SupportContact",
    "list_updated_at": "DateMAJ",
}


class TrustListError(Exception):
    """The file cannot be imported; the message says why (and nothing was changed)."""


@dataclass(frozen=True)
class ListEntry:
    name: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class OfficialList:
    """The official list as read from its XML file, before any diff (the trust list the
    gateway decides with is :class:`routing.trust.TrustList`, built from the database)."""

    generated_at: datetime | None
    entries: dict[str, ListEntry]


@dataclass(frozen=True)
class Change:
    name: str
    diffs: tuple[tuple[str, Any, Any], ...]  # (field, old, new)


@dataclass
class ImportPlan:
    added: list[ListEntry] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "changed": len(self.changed), "removed": len(self.removed),
                "unchanged": self.unchanged}


def _local(tag: str) -> str | None:
    """The local name of an element in the list's namespace (or in none); None otherwise."""
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return name if ns == NAMESPACE else None
    return tag


def _text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            value = (child.text or "").strip()
            return value or None
    return None


def parse_date(value: str | None) -> datetime | None:
    """ISO 8601 (date or date-time, naive means UTC) or dd/mm/yyyy."""
    if value is None:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.strptime(text, "%d/%m/%Y")
        except ValueError:
            raise TrustListError(f"unreadable date {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_trust_list(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> OfficialList:
    """Read and validate the file; raises :class:`TrustListError` with a clear reason."""
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise TrustListError(f"{path}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    if len(data) > max_bytes:
        raise TrustListError(f"{path}: file larger than the {max_bytes}-byte limit; refused")
    return parse_trust_list(data, str(path))


def parse_trust_list(data: bytes, source: str = "trust list") -> OfficialList:
    try:
        root = DET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise TrustListError(f"{source}: refused: the XML declares a DTD, entities or external references "
                             f"({exc.__class__.__name__}); the official list has none") from None
    except ET.ParseError as exc:
        raise TrustListError(f"{source}: not well-formed XML ({exc})") from None
    if not root.tag.startswith("{" + NAMESPACE + "}"):
        raise TrustListError(f"{source}: root element is not in the namespace {NAMESPACE}")
    generated = parse_date(root.get("DateDeGeneration") or _text(root, "DateDeGeneration"))
    entries: dict[str, ListEntry] = {}
    for index, element in enumerate((e for e in root if _local(e.tag) == "Domaine"), start=1):
        raw_name = _text(element, "Nom")
        if raw_name is None:
            raise TrustListError(f"{source}: Domaine #{index} has no Nom")
        try:
            name = normalise_domain(raw_name)
        except InvalidAddress as exc:
            raise TrustListError(f"{source}: Domaine #{index} ({raw_name!r}): {exc}") from None
        if name in entries:
            raise TrustListError(f"{source}: Domaine #{index}: {name} appears twice")
        try:
            values: dict[str, Any] = {col: _text(element, tag) for col, tag in LIST_FIELDS.items()}
            values["list_updated_at"] = parse_date(values["list_updated_at"])
        except TrustListError as exc:
            raise TrustListError(f"{source}: Domaine #{index} ({name}): {exc}") from None
        entries[name] = ListEntry(name, values)
    if not entries:
        raise TrustListError(f"{source}: no Domaine entries; refusing to empty the trust list")
    return OfficialList(generated, entries)


def plan_import(session: Session, new: OfficialList) -> ImportPlan:
    plan = ImportPlan()
    current = {d.name: d for d in session.execute(select(TrustedDomain)).scalars()}
    for name in sorted(new.entries):
        entry = new.entries[name]
        existing = current.get(name)
        if existing is None:
            plan.added.append(entry)
            continue
        diffs = tuple((col, getattr(existing, col), value) for col, value in entry.fields.items()
                      if getattr(existing, col) != value)
        if diffs:
            plan.changed.append(Change(name, diffs))
        else:
            plan.unchanged += 1
    plan.removed = sorted(n for n, d in current.items() if d.origin == "import" and n not in new.entries)
    return plan


def apply_import(session: Session, new: OfficialList, plan: ImportPlan, *, actor: str, now: datetime,
                 source: str) -> None:
    """Carry out ``plan`` in the caller's transaction, with one audit entry of counts."""
    if plan.removed:
        session.execute(delete(TrustedDomain).where(TrustedDomain.name.in_(plan.removed),
                                                    TrustedDomain.origin == "import"))
    for entry in plan.added:
        session.add(TrustedDomain(name=entry.name, **entry.fields, dkim_policy="dns", tls_required=True,
                                  status="active", origin="import", created_at=now, modified_at=now))
    if plan.changed:
        rows = {d.name: d for d in session.execute(
            select(TrustedDomain).where(TrustedDomain.name.in_([c.name for c in plan.changed]))).scalars()}
        for change in plan.changed:
            row = rows[change.name]
            for col, _old, value in change.diffs:
                setattr(row, col, value)
            row.modified_at = now
    session.flush()
    audit.record(session, actor=actor, action="domain.trust.import", subject_ref="trust-list", now=now,
                 details={**plan.counts(), "source": Path(source).name,
                          "generated_at": new.generated_at.isoformat() if new.generated_at else None})


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


def describe(plan: ImportPlan) -> list[str]:
    """Human-readable preview lines: ``+`` added, ``~`` changed (field by field), ``-`` removed."""
    lines = [f"+ {e.name}" + (f"  ({e.fields['description']})" if e.fields.get("description") else "")
             for e in plan.added]
    for change in plan.changed:
        lines.append(f"~ {change.name}")
        lines.extend(f"    {col}: {_show(old)} -> {_show(new)}" for col, old, new in change.diffs)
    lines.extend(f"- {name}" for name in plan.removed)
    return lines
