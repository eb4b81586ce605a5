"""Administrators of the console and the JSON API: list, disable/enable, API tokens, revocation.

Disabling an administrator ends their console sessions at once (the rows are deleted)
and their API tokens stop working (``gateway.accounts.admins.token_admin`` refuses the
token of an admin who is not active) until they are enabled again; a token revoked
with :func:`revoke` never works again. Secrets are never shown: a token is listed by
its id, label and dates, never by its value (only its hash is stored anyway).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gateway.accounts.admins import InvalidAdminName, by_name, check_name
from gateway.operations.common import Actor, bad_request, conflict, iso, not_found
from gateway.store import audit
from gateway.store.models import AdminAccount, AdminSession, AdminToken

STATUSES = ("active", "disabled")


def admin_by_name(session: Session, value: Any) -> AdminAccount:
    if not isinstance(value, str):
        raise bad_request("nom : texte attendu", en="name: text expected")
    try:
        name = check_name(value)
    except InvalidAdminName as exc:
        raise bad_request("nom d'administrateur invalide", en=str(exc)) from None
    admin = by_name(session, name)
    if admin is None:
        raise not_found(f"aucun administrateur {name}", f"no admin named {name}")
    return admin


def list_admins(session: Session, *, now: datetime) -> list[dict[str, Any]]:
    tokens = dict(session.execute(select(AdminToken.admin_id, func.count()).where(AdminToken.revoked_at.is_(None))
                                  .group_by(AdminToken.admin_id)).tuples().all())
    sessions = dict(session.execute(select(AdminSession.admin_id, func.count()).where(AdminSession.expires_at > now)
                                    .group_by(AdminSession.admin_id)).tuples().all())
    return [{"name": a.name, "status": a.status, "created_at": iso(a.created_at), "last_login_at": iso(a.last_login_at),
             "api_tokens": int(tokens.get(a.id, 0)), "console_sessions": int(sessions.get(a.id, 0))}
            for a in session.execute(select(AdminAccount).order_by(AdminAccount.name)).scalars()]


def set_status(session: Session, actor: Actor, name: Any, status: str, *, now: datetime) -> dict[str, Any]:
    """Disable (ending every console session) or enable an administrator."""
    if status not in STATUSES:
        raise bad_request("statut : active ou disabled", en="status: active or disabled")
    admin = admin_by_name(session, name)
    ended = 0
    if status == "disabled":
        ended = int(session.execute(delete(AdminSession).where(AdminSession.admin_id == admin.id)
                                    .execution_options(synchronize_session=False)).rowcount)  # type: ignore[attr-defined]
    if admin.status != status:
        admin.status = status
        action = "admin.disable" if status == "disabled" else "admin.enable"
        audit.record(session, actor=actor.audit_actor, action=action, subject_ref=f"admin:{admin.name}",
                     peer=actor.peer, now=now, details={"sessions_ended": ended, "via": actor.via})
    return {"name": admin.name, "status": admin.status, "sessions_ended": ended}


def _token_row(t: AdminToken) -> dict[str, Any]:
    return {"id": t.id, "label": t.label, "created_at": iso(t.created_at), "last_used_at": iso(t.last_used_at),
            "revoked_at": iso(t.revoked_at), "active": t.revoked_at is None}


def tokens(session: Session, name: Any) -> list[dict[str, Any]]:
    admin = admin_by_name(session, name)
    rows = session.execute(select(AdminToken).where(AdminToken.admin_id == admin.id).order_by(AdminToken.id))
    return [_token_row(t) for t in rows.scalars()]


def revoke(session: Session, actor: Actor, token_id: Any, *, now: datetime) -> dict[str, Any]:
    try:
        ident = int(token_id)
    except (TypeError, ValueError):
        raise bad_request("jeton : identifiant numérique attendu", en="token id: a number expected") from None
    token = session.get(AdminToken, ident)
    if token is None:
        raise not_found("aucun jeton avec cet identifiant", f"no API token with id {ident}")
    if token.revoked_at is not None:
        raise conflict("jeton déjà révoqué", f"API token {ident} already revoked on {token.revoked_at:%Y-%m-%d}")
    token.revoked_at = now
    admin = session.get(AdminAccount, token.admin_id)
    owner = admin.name if admin else None
    audit.record(session, actor=actor.audit_actor, action="admin.token.revoke", subject_ref=f"admin:{owner}",
                 peer=actor.peer, now=now, details={"token_id": ident, "label": token.label, "via": actor.via})
    return {"admin": owner, **_token_row(token)}
