"""Trust list operations: list, add, suspend/resume, import of the liste blanche (preview, apply).

The import reuses :mod:`gateway.operations.trust_import` (defusedxml, size limit, diff that keeps
manual entries and local settings); only the plumbing for the web is here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.accounts.pros import AlreadyExists, add_trusted_domain, trusted_domain
from gateway.operations.trust import DKIM_FIELDS, dkim_fields
from gateway.operations.trust_import import (
    DEFAULT_MAX_BYTES,
    ImportPlan,
    TrustList,
    TrustListError,
    apply_import,
    describe,
    parse_trust_list,
    plan_import,
)
from gateway.settings import split_hostport
from gateway.store import audit
from gateway.store.models import TrustedDomain
from gateway.web.admin.ops_common import Actor, OpError, bad_request, conflict, flag, integer, iso, not_found, text
from routing.address import InvalidAddress, normalise_domain

STATUSES = ("active", "suspended")
MAX_UPLOAD = DEFAULT_MAX_BYTES


def domain_name(value: Any) -> str:
    raw = text(value, "domaine", required=True, max_length=255)
    assert raw is not None
    try:
        return normalise_domain(raw)
    except (InvalidAddress, UnicodeError, ValueError):
        raise bad_request("domaine : nom de domaine invalide") from None


def row(d: TrustedDomain) -> dict[str, Any]:
    return {"name": d.name, "status": d.status, "description": d.description, "operator_dn": d.operator_dn,
            "dkim_policy": d.dkim_policy, "dkim_selector": d.dkim_selector, "dkim_required": d.dkim_required,
            "route": d.route, "tls_required": d.tls_required,
            "max_message_size": d.max_message_size, "origin": d.origin,
            "list_updated_at": iso(d.list_updated_at), "modified_at": iso(d.modified_at)}


def list_trusted(session: Session, *, status: str | None = None) -> list[dict[str, Any]]:
    query = select(TrustedDomain).order_by(TrustedDomain.name)
    if status is not None:
        if status not in STATUSES:
            raise bad_request("statut : active ou suspended")
        query = query.where(TrustedDomain.status == status)
    return [row(d) for d in session.execute(query).scalars()]


def add(session: Session, actor: Actor, data: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    name = domain_name(data.get("name"))
    route = text(data.get("route"), "route", max_length=300)
    if route is not None:
        try:
            split_hostport(route)
        except ValueError:
            raise bad_request("route : hôte:port attendu") from None
    fields = {
        "description": text(data.get("description"), "description", max_length=500),
        "operator_dn": text(data.get("operator_dn"), "operator_dn", max_length=500),
        "route": route, **dkim_fields({k: data[k] for k in DKIM_FIELDS if k in data}),
        "tls_required": not flag(data.get("no_tls_required"), "no_tls_required")
        if "tls_required" not in data else flag(data.get("tls_required"), "tls_required"),
        "max_message_size": integer(data.get("max_message_size"), "max_message_size", low=1024,
                                    high=1_073_741_824),
        "status": "active", "origin": "manual",
    }
    try:
        entry = add_trusted_domain(session, name, now=now, **fields)
    except AlreadyExists as exc:
        raise conflict(str(exc)) from None
    shown = {k: v for k, v in fields.items() if k != "dkim_public_key"}
    audit.record(session, actor=actor.audit_actor, action="domain.trust.add", subject_ref=f"domain:{name}",
                 peer=actor.peer, now=now, details={**shown, "via": actor.via})
    return row(entry)


def set_status(session: Session, actor: Actor, name_value: Any, status: str, *, now: datetime) -> dict[str, Any]:
    name = domain_name(name_value)
    if status not in STATUSES:
        raise bad_request("statut : active ou suspended")
    entry = trusted_domain(session, name)
    if entry is None:
        raise not_found(f"{name} n'est pas dans la liste de confiance")
    if entry.status != status:
        entry.status = status
        entry.modified_at = now
        action = "domain.trust.suspend" if status == "suspended" else "domain.trust.resume"
        audit.record(session, actor=actor.audit_actor, action=action, subject_ref=f"domain:{name}",
                     peer=actor.peer, now=now, details={"via": actor.via})
    return row(entry)


def parse_upload(data: bytes) -> TrustList:
    if not data:
        raise bad_request("fichier vide", "empty")
    if len(data) > DEFAULT_MAX_BYTES:
        raise OpError(413, "too_large", f"fichier plus grand que {DEFAULT_MAX_BYTES} octets : refusé")
    try:
        return parse_trust_list(data, "liste blanche")
    except TrustListError as exc:
        raise bad_request(str(exc), "bad_trust_list") from None


def preview(session: Session, data: bytes) -> tuple[TrustList, ImportPlan]:
    parsed = parse_upload(data)
    return parsed, plan_import(session, parsed)


def plan_dict(parsed: TrustList, plan: ImportPlan) -> dict[str, Any]:
    return {"generated_at": iso(parsed.generated_at), "counts": plan.counts(),
            "added": [e.name for e in plan.added], "removed": plan.removed,
            "changed": [{"name": c.name, "fields": [f for f, _, _ in c.diffs]} for c in plan.changed],
            "lines": describe(plan)[:2000]}


def import_list(session: Session, actor: Actor, data: bytes, *, source: str, now: datetime,
                apply: bool) -> dict[str, Any]:
    """Preview (``apply`` false) or apply the import in the caller's transaction."""
    parsed, plan = preview(session, data)
    result = {**plan_dict(parsed, plan), "applied": False}
    if apply and not plan.empty:
        apply_import(session, parsed, plan, actor=actor.audit_actor, now=now, source=source)
        result["applied"] = True
    return result
