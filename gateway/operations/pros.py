"""Professional accounts hosted here: show, disable/enable, set a password, remove.

- *disable*: SMTP AUTH and IMAP LOGIN read the account's status at every login
  (``gateway/accounts/auth.py``, no cache), so a disabled account cannot log in from the next
  attempt on, on every node; mail to it is refused (``routing``: account not active). Its open
  sessions end too, whatever they signed in with (password, token, certificate): SMTP
  submission at the next MAIL FROM (``421 4.7.0``), IMAP at the next command or within 5 s
  while IDLE (``* BYE``; ``gateway.imap_adapter.backend``). The change is announced on the
  account's mailbox, so on PostgreSQL every node's IMAP sessions look again at once.
- *password*: hashed (argon2id) by :func:`hash_new_password` *before* the write
  transaction (a hash costs ~0.2 s and a SQLite write transaction holds the one write
  lock); the account's failed-login count and lockout are cleared.
- *remove*: the account and its mailbox go in one transaction: the mailbox's data keys
  are destroyed first (crypto-shredding: nothing sealed for it can be opened again, even
  from an older backup without them), then its messages, pieces of large messages,
  conversations, folders, the account and the mailbox rows. Nothing is left half-deleted:
  a failure rolls the whole removal back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from gateway.accounts import throttle
from gateway.accounts.identities import MAILBOX_TYPES, PERSONAL, forget_account
from gateway.accounts.pros import hash_password, pro_by_address
from gateway.accounts.purge import empty_mailbox, mailbox_size
from gateway.operations.common import Actor, bad_request, iso, not_found, text
from gateway.store import audit
from gateway.store.changes import announce
from gateway.store.keys import KeyService, KeyUnavailable
from gateway.store.models import HostedDomain, Mailbox, ProAccount
from routing.address import InvalidAddress, parse_address

STATUSES = ("active", "disabled")
MIN_PASSWORD = 12
MAX_PASSWORD = 200


def pro_address(value: Any) -> str:
    raw = text(value, "adresse", required=True, max_length=320)
    assert raw is not None
    try:
        return parse_address(raw).key
    except (InvalidAddress, UnicodeError, ValueError):
        raise bad_request("adresse : adresse e-mail invalide", en=f"invalid address {raw!r}") from None


def mailbox_type(value: Any) -> str:
    """personal (the default) | organisational | application (issue 19)."""
    kind = text(value, "type") or PERSONAL
    if kind not in MAILBOX_TYPES:
        raise bad_request("type : personal, organisational ou application", "invalid_type",
                          "type: personal, organisational or application")
    return kind


def pro_row(p: ProAccount) -> dict[str, Any]:
    return {"address": p.address, "type": p.mailbox_type, "status": p.status, "password_login": p.password_login,
            "accepts_patient_initiated": p.accepts_patient_initiated,
            "has_password": p.password_hash is not None, "created_at": iso(p.created_at),
            "last_login_at": iso(p.last_login_at), "inactivity_warned_at": iso(p.inactivity_warned_at)}


def account(session: Session, address_value: Any) -> ProAccount:
    address = pro_address(address_value)
    found = pro_by_address(session, address)
    if found is None:
        raise not_found("aucun compte professionnel à cette adresse", f"no professional account {address}")
    return found


def show(session: Session, keys: KeyService, address_value: Any) -> dict[str, Any]:
    """The account, its display name and its mailbox's size (never a message nor a correspondent)."""
    pro = account(session, address_value)
    name = None
    if pro.name_sealed is not None:
        try:
            name = keys.for_mailbox(session, pro.mailbox_id).open("name", "pro", pro.name_sealed).decode()
        except KeyUnavailable:
            name = None
    size = mailbox_size(session, pro.mailbox_id)
    domain = session.get(HostedDomain, pro.domain_id)
    return {**pro_row(pro), "name": name, "domain": domain.name if domain else None,
            "folders": size.folders, "messages": size.messages, "mailbox_bytes": size.bytes}


def set_status(session: Session, actor: Actor, address_value: Any, status: str, *, now: datetime) -> dict[str, Any]:
    if status not in STATUSES:
        raise bad_request("statut : active ou disabled", en="status: active or disabled")
    pro = account(session, address_value)
    if pro.status != status:
        pro.status = status
        if status == "active":
            pro.inactivity_warned_at = None
        audit.record(session, actor=actor.audit_actor, action=f"pro.{'disable' if status == 'disabled' else 'enable'}",
                     subject_ref=f"pro:{pro.address}", peer=actor.peer, now=now, details={"via": actor.via})
        announce(session, pro.mailbox_id)  # open IMAP sessions on every node look again (PostgreSQL)
    return pro_row(pro)


def set_password_login(session: Session, actor: Actor, address_value: Any, allowed: bool, *,
                       now: datetime) -> dict[str, Any]:
    """Allow or refuse password logins for one account (``[auth] password_login`` still applies)."""
    pro = account(session, address_value)
    if pro.password_login != allowed:
        pro.password_login = allowed
        audit.record(session, actor=actor.audit_actor, action="pro.password_login", subject_ref=f"pro:{pro.address}",
                     peer=actor.peer, now=now, details={"allowed": allowed, "via": actor.via})
    return pro_row(pro)


def check_new_password(value: Any) -> str:
    """A new password: 12 to 200 characters, kept as typed (no stripping), no line break."""
    if not isinstance(value, str) or not value:
        raise bad_request("mot de passe : valeur requise", "missing", "password: a value is required")
    if len(value) < MIN_PASSWORD:
        raise bad_request(f"mot de passe : {MIN_PASSWORD} caractères au moins",
                          en=f"password too short (at least {MIN_PASSWORD} characters)")
    if len(value) > MAX_PASSWORD or "\x00" in value or "\n" in value or "\r" in value:
        raise bad_request("mot de passe : valeur invalide",
                          en=f"password: invalid (at most {MAX_PASSWORD} characters, no line break)")
    return value


def hash_new_password(value: Any) -> str:
    """Check a new password (:func:`check_new_password`) and hash it; call outside a transaction."""
    return hash_password(check_new_password(value))


def set_password(session: Session, keys: throttle.IndexKeys, actor: Actor, address_value: Any,
                 password_hash: str, *, now: datetime) -> dict[str, Any]:
    """Set (or reset) the password; ``password_hash`` comes from :func:`hash_new_password`."""
    pro = account(session, address_value)
    had = pro.password_hash is not None
    pro.password_hash = password_hash
    throttle.clear_account(session, keys, pro.address)
    audit.record(session, actor=actor.audit_actor, action="pro.password", subject_ref=f"pro:{pro.address}",
                 peer=actor.peer, now=now, details={"reset": had, "via": actor.via})
    return pro_row(pro)


def remove(session: Session, keys: KeyService, actor: Actor, address_value: Any, *, now: datetime) -> dict[str, Any]:
    """Remove the account and crypto-shred its mailbox, all in the caller's transaction."""
    pro = account(session, address_value)
    address, mailbox_id = pro.address, pro.mailbox_id
    emptied = empty_mailbox(session, keys, mailbox_id)
    size = emptied.size
    forget_account(session, pro.id)
    announce(session, mailbox_id)  # its open IMAP sessions on every node end (PostgreSQL)
    session.delete(pro)
    session.flush()
    session.execute(delete(Mailbox).where(Mailbox.id == mailbox_id).execution_options(synchronize_session=False))
    details = {"messages": size.messages, "folders": size.folders, "bytes": size.bytes, "data_keys": emptied.data_keys}
    audit.record(session, actor=actor.audit_actor, action="pro.remove", subject_ref=f"pro:{address}",
                 peer=actor.peer, now=now, details={**details, "via": actor.via})
    return {"address": address, "removed": True, **details}
