"""Trust list operations: list, add, suspend/resume, edit in place, import of the liste blanche
(preview, apply; parsing and the diff are :mod:`gateway.operations.trust_import`).

Editing (``gateway domain trust set``, ``PATCH /admin/api/domains/{name}``): only the fields
given change, in one UPDATE of the entry's row in the caller's transaction: the domain is
never absent from the trust list in between (removing and adding it again would refuse its
mail meanwhile). ``max_connections`` with ``networks``: the connections each of the operator's
sending addresses may hold on the MX (issue 17). The audit entry (``domain.trust.set``) lists
each changed field with its old and new value (a pinned DKIM key by a short SHA-256 fingerprint). Description and
certificate DN of an entry imported from the liste blanche are overwritten by the next
import; our own settings (DKIM, route, TLS, size limit, connections) are not.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.dkim_keys import PublicKeyError, parse_public_key
from gateway.accounts.pros import AlreadyExists, add_trusted_domain, trusted_domain
from gateway.operations.common import Actor, OpError, bad_request, conflict, flag, integer, iso, not_found, text
from gateway.operations.trust_import import (
    DEFAULT_MAX_BYTES,
    ImportPlan,
    OfficialList,
    TrustListError,
    apply_import,
    describe,
    parse_trust_list,
    plan_import,
)
from gateway.settings import split_hostport
from gateway.store import audit
from gateway.store.models import TrustedDomain
from routing.address import InvalidAddress, normalise_domain
from routing.trust import MAX_CONNECTIONS, parse_networks

FIELDS = ("description", "operator_dn", "route", "dkim_policy", "dkim_selector", "dkim_public_key", "dkim_required",
          "tls_required", "max_message_size", "max_connections", "networks")
DKIM_FIELDS = ("dkim_policy", "dkim_selector", "dkim_public_key", "dkim_required")
DKIM_POLICIES = ("dns", "none", "pinned")
MIN_SIZE, MAX_SIZE = 1024, 1_073_741_824
_SELECTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
STATUSES = ("active", "suspended")
MAX_UPLOAD = DEFAULT_MAX_BYTES


def domain_name(value: Any) -> str:
    raw = text(value, "domaine", required=True, max_length=255)
    assert raw is not None
    try:
        return normalise_domain(raw)
    except (InvalidAddress, UnicodeError, ValueError):
        raise bad_request("domaine : nom de domaine invalide", en=f"invalid domain {raw!r}") from None


def row(d: TrustedDomain) -> dict[str, Any]:
    return {"name": d.name, "status": d.status, "description": d.description, "operator_dn": d.operator_dn,
            "dkim_policy": d.dkim_policy, "dkim_selector": d.dkim_selector, "dkim_required": d.dkim_required,
            "route": d.route,
            "tls_required": d.tls_required, "max_message_size": d.max_message_size,
            "max_connections": d.max_connections, "networks": (d.networks or "").split(), "origin": d.origin,
            "list_updated_at": iso(d.list_updated_at), "modified_at": iso(d.modified_at)}


def networks(value: Any) -> str | None:
    """The operator's sending addresses: CIDR networks or addresses, as one string (commas or
    spaces) or a list; stored normalised and space-separated, None when empty."""
    if isinstance(value, list | tuple):
        if not all(isinstance(v, str) for v in value):
            raise bad_request("networks : adresses IP attendues", en="networks: IP addresses or networks expected")
        value = " ".join(value)
    raw = text(value, "networks", max_length=4000)
    if raw is None:
        return None
    try:
        found = parse_networks(raw)
    except ValueError as exc:
        raise bad_request(f"networks : {exc}", en=f"networks: {exc}") from None
    if len(found) > 64:
        raise bad_request("networks : 64 au plus", en="networks: at most 64")
    return " ".join(found) or None


def connection_fields(data: dict[str, Any], entry: TrustedDomain | None = None) -> dict[str, Any]:
    """``max_connections`` and ``networks`` among ``data``, checked against those of ``entry``:
    an allowance needs the addresses it applies to (the MX knows a client by address only)."""
    found: dict[str, Any] = {}
    if "max_connections" in data:
        found["max_connections"] = integer(data["max_connections"], "max_connections", low=1, high=MAX_CONNECTIONS)
    if "networks" in data:
        found["networks"] = networks(data["networks"])
    limit = found.get("max_connections", entry.max_connections if entry is not None else None)
    where = found.get("networks", entry.networks if entry is not None else None)
    if limit is not None and not where:
        raise bad_request("max_connections : s'applique aux adresses de l'opérateur, donner networks",
                          en="max_connections applies to the operator's addresses: give them with networks "
                             "(--networks)")
    return found


def _route(value: Any) -> str | None:
    route = text(value, "route", max_length=300)
    if route is not None:
        try:
            split_hostport(route)
        except ValueError as exc:
            raise bad_request("route : hôte:port attendu", en=f"route: {exc}") from None
    return route


def public_key(value: Any) -> str:
    """A pinned key as operators have it (PEM, the ``opendkim-genkey`` .txt record, or the bare
    ``p=`` value: :func:`crypto.dkim_keys.parse_public_key`), stored as its ``p=`` value."""
    raw = text(value, "dkim_public_key", required=True, max_length=16_000)
    assert raw is not None
    try:
        return parse_public_key(raw).p
    except PublicKeyError as exc:
        raise bad_request(f"dkim_public_key : clé publique illisible ({exc})", en=f"dkim: {exc}") from None


def dkim_fields(data: dict[str, Any], entry: TrustedDomain | None = None) -> dict[str, Any]:
    """The DKIM settings among ``data`` (:data:`DKIM_FIELDS`), over those of ``entry`` if any.

    ``pinned`` needs a selector and a key; ``dkim_required`` (a signature needed on top of
    the operator certificate) needs a key source, ``dns`` or ``pinned``.
    """
    policy = text(data.get("dkim_policy"), "dkim_policy", max_length=10) or (entry.dkim_policy if entry else "dns")
    if policy not in DKIM_POLICIES:
        raise bad_request("dkim_policy : dns, none ou pinned", en="dkim: dns, none or pinned")
    required = flag(data["dkim_required"], "dkim_required") if "dkim_required" in data else (
        entry.dkim_required if entry is not None else False)
    if required and policy == "none":
        raise bad_request("dkim_required : exige une politique DKIM dns ou pinned",
                          en="dkim: a required signature needs the dns or pinned policy")
    if policy != "pinned":
        if data.get("dkim_selector") or data.get("dkim_public_key"):
            raise bad_request("clé DKIM épinglée : avec dkim_policy pinned seulement",
                              en="a DKIM selector and key go with the pinned policy only")
        return {"dkim_policy": policy, "dkim_selector": None, "dkim_public_key": None, "dkim_required": required}
    selector = text(data.get("dkim_selector"), "dkim_selector", max_length=63)
    selector = selector or (entry.dkim_selector if entry is not None else None)
    if selector is None or not _SELECTOR.fullmatch(selector):
        raise bad_request("dkim_selector : sélecteur invalide", en="dkim: the pinned policy needs a valid selector")
    if data.get("dkim_public_key"):
        key = public_key(data["dkim_public_key"])
    elif entry is not None and entry.dkim_public_key:
        key = entry.dkim_public_key
    else:
        raise bad_request("dkim_public_key : clé publique requise", en="dkim: the pinned policy needs a public key")
    return {"dkim_policy": "pinned", "dkim_selector": selector, "dkim_public_key": key, "dkim_required": required}


def _wanted(data: dict[str, Any], entry: TrustedDomain) -> dict[str, Any]:
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise bad_request(f"champ inconnu : {', '.join(unknown)}", en=f"unknown field(s): {', '.join(unknown)}")
    wanted: dict[str, Any] = {}
    if "description" in data:
        wanted["description"] = text(data["description"], "description", max_length=500)
    if "operator_dn" in data:
        wanted["operator_dn"] = text(data["operator_dn"], "operator_dn", max_length=500)
    if "route" in data:
        wanted["route"] = _route(data["route"])
    if set(DKIM_FIELDS) & set(data):
        wanted.update(dkim_fields(data, entry))
    if "tls_required" in data:
        wanted["tls_required"] = flag(data["tls_required"], "tls_required")
    if "max_message_size" in data:
        wanted["max_message_size"] = integer(data["max_message_size"], "max_message_size", low=MIN_SIZE,
                                             high=MAX_SIZE)
    wanted.update(connection_fields(data, entry))
    return wanted


def _shown(field: str, value: Any) -> Any:
    if field == "dkim_public_key" and value:
        return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:16]
    return value


def update(session: Session, actor: Actor, name_value: Any, data: dict[str, Any], *,
           now: datetime) -> dict[str, Any]:
    """Change the given fields of a trusted domain; ``changed`` names them (empty: nothing to do).

    ``data`` maps field names (:data:`FIELDS`) to new values; an empty value clears an
    optional field (description, DN, route, size limit).
    """
    name = domain_name(name_value)
    entry = _existing(session, name)
    wanted = _wanted(data, entry)
    changed = {f: {"from": _shown(f, getattr(entry, f)), "to": _shown(f, v)}
               for f, v in wanted.items() if getattr(entry, f) != v}
    if changed:
        for field in changed:
            setattr(entry, field, wanted[field])
        entry.modified_at = now
        audit.record(session, actor=actor.audit_actor, action="domain.trust.set", subject_ref=f"domain:{name}",
                     peer=actor.peer, now=now, details={"changed": changed, "via": actor.via})
    return {**row(entry), "changed": sorted(changed)}


def _existing(session: Session, name: str) -> TrustedDomain:
    entry = trusted_domain(session, name)
    if entry is None:
        raise not_found(f"{name} n'est pas dans la liste de confiance", f"{name} is not in the trust list")
    return entry


def remove(session: Session, actor: Actor, name_value: Any, *, now: datetime) -> dict[str, Any]:
    """Take a domain off the trust list: its mail is refused from the next decision on."""
    name = domain_name(name_value)
    entry = _existing(session, name)
    shown = row(entry)
    session.delete(entry)
    audit.record(session, actor=actor.audit_actor, action="domain.trust.remove", subject_ref=f"domain:{name}",
                 peer=actor.peer, now=now, details={"via": actor.via})
    return shown


def list_trusted(session: Session, *, status: str | None = None) -> list[dict[str, Any]]:
    query = select(TrustedDomain).order_by(TrustedDomain.name)
    if status is not None:
        if status not in STATUSES:
            raise bad_request("statut : active ou suspended", en="status: active or suspended")
        query = query.where(TrustedDomain.status == status)
    return [row(d) for d in session.execute(query).scalars()]


def add(session: Session, actor: Actor, data: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    name = domain_name(data.get("name"))
    route = _route(data.get("route"))
    fields = {
        "description": text(data.get("description"), "description", max_length=500),
        "operator_dn": text(data.get("operator_dn"), "operator_dn", max_length=500),
        "route": route, **dkim_fields({k: data[k] for k in DKIM_FIELDS if k in data}),
        "tls_required": not flag(data.get("no_tls_required"), "no_tls_required")
        if "tls_required" not in data else flag(data.get("tls_required"), "tls_required"),
        "max_message_size": integer(data.get("max_message_size"), "max_message_size", low=MIN_SIZE,
                                    high=MAX_SIZE),
        **connection_fields({k: data[k] for k in ("max_connections", "networks") if k in data}),
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
        raise bad_request("statut : active ou suspended", en="status: active or suspended")
    entry = _existing(session, name)
    if entry.status != status:
        entry.status = status
        entry.modified_at = now
        action = "domain.trust.suspend" if status == "suspended" else "domain.trust.resume"
        audit.record(session, actor=actor.audit_actor, action=action, subject_ref=f"domain:{name}",
                     peer=actor.peer, now=now, details={"via": actor.via})
    return row(entry)


def parse_upload(data: bytes) -> OfficialList:
    if not data:
        raise bad_request("fichier vide", "empty")
    if len(data) > DEFAULT_MAX_BYTES:
        raise OpError(413, "too_large", f"fichier plus grand que {DEFAULT_MAX_BYTES} octets : refusé")
    try:
        return parse_trust_list(data, "liste blanche")
    except TrustListError as exc:
        raise bad_request(str(exc), "bad_trust_list") from None


def preview(session: Session, data: bytes) -> tuple[OfficialList, ImportPlan]:
    parsed = parse_upload(data)
    return parsed, plan_import(session, parsed)


def plan_dict(parsed: OfficialList, plan: ImportPlan) -> dict[str, Any]:
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
