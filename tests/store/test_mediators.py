"""Mediator accounts, sessions and tokens (issue 14) on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from gateway.accounts import admins, mediators
from gateway.accounts.admins import InvalidAdminName
from gateway.accounts.pros import AlreadyExists, NotFound
from gateway.store.models import Mediator, MediatorSession, MediatorToken
from gateway.testing.store import Store

NOW = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)
PASSWORD = "une phrase de médiation"


def test_mediator_login_needs_password_and_a_fresh_totp_code(store: Store) -> None:
    with store.db.write() as s:
        created = mediators.add_mediator(s, store.keys, "FS-Lyon8", PASSWORD, organisation="France Services Lyon 8",
                                         now=NOW)
        with pytest.raises(AlreadyExists):
            mediators.add_mediator(s, store.keys, "fs-lyon8", PASSWORD, organisation=None, now=NOW)
        with pytest.raises(InvalidAdminName):
            mediators.add_mediator(s, store.keys, "fs lyon", PASSWORD, organisation=None, now=NOW)
    assert created.mediator.name == "fs-lyon8"
    assert created.provisioning_uri().startswith("otpauth://totp/")
    totp = pyotp.TOTP(created.totp_secret)
    code = totp.at(NOW)
    with store.db.write() as s:
        row = s.get(Mediator, created.mediator.id)
        assert row is not None and created.totp_secret.encode() not in row.totp_sealed
        assert PASSWORD not in row.password_hash
        assert mediators.verify_login(s, store.keys, "fs-lyon8", "wrong password", code, now=NOW) is None
        other = "000000" if code != "000000" else "111111"
        assert mediators.verify_login(s, store.keys, "fs-lyon8", PASSWORD, other, now=NOW) is None
        assert mediators.verify_login(s, store.keys, "nobody", PASSWORD, code, now=NOW) is None
        assert mediators.verify_login(s, store.keys, "FS-Lyon8 ", PASSWORD, code, now=NOW) is not None
    with store.db.write() as s:  # a step is accepted once
        assert mediators.verify_login(s, store.keys, "fs-lyon8", PASSWORD, code, now=NOW) is None
        # a mediator is never an administrator
        assert admins.verify_login(s, store.keys, "fs-lyon8", PASSWORD, totp.at(NOW + timedelta(seconds=30)),
                                   now=NOW + timedelta(seconds=30)) is None


def test_names_are_unique_across_admins_and_mediators(store: Store) -> None:
    with store.db.write() as s:
        admins.add_admin(s, store.keys, "alice", PASSWORD, now=NOW)
        with pytest.raises(AlreadyExists, match="administrator"):
            mediators.add_mediator(s, store.keys, "alice", PASSWORD, organisation=None, now=NOW)
        mediators.add_mediator(s, store.keys, "bob", PASSWORD, organisation=None, now=NOW)
        with pytest.raises(AlreadyExists, match="mediator"):
            admins.add_admin(s, store.keys, "bob", PASSWORD, now=NOW)


def test_sessions_tokens_and_disabling(store: Store) -> None:
    idle = timedelta(minutes=30)
    with store.db.write() as s:
        new = mediators.add_mediator(s, store.keys, "desk", PASSWORD, organisation=None, now=NOW)
        mediator = new.mediator
        token, csrf = mediators.create_session(s, mediator, peer="127.0.0.1", now=NOW, lifetime=timedelta(hours=8))
        api = mediators.create_token(s, "desk", label="guichet", now=NOW)
        with pytest.raises(NotFound):
            mediators.create_token(s, "nobody", label=None, now=NOW)
    assert api.startswith(mediators.TOKEN_PREFIX) and len(api) > 40
    with store.db.write() as s:
        stored = {r.token_hash for r in s.query(MediatorSession)} | {r.token_hash for r in s.query(MediatorToken)}
        assert token not in stored and api not in stored  # hashes only
        found = mediators.session_mediator(s, token, now=NOW + timedelta(minutes=5), idle=idle)
        assert found is not None and found[1].name == "desk" and found[0].csrf_token == csrf
        assert mediators.token_mediator(s, api, now=NOW) is not None
        # the admin lookups never accept a mediator's session or token
        assert admins.session_admin(s, token, now=NOW, idle=idle) is None
        assert admins.token_admin(s, api, now=NOW) is None
    with store.db.write() as s:  # idle too long: ended
        assert mediators.session_mediator(s, token, now=NOW + timedelta(hours=1), idle=idle) is None
    with store.db.write() as s:
        assert mediators.session_mediator(s, token, now=NOW + timedelta(hours=1), idle=idle) is None
        token2, _ = mediators.create_session(s, mediator, peer=None, now=NOW, lifetime=timedelta(hours=8))
        mediators.set_status(s, "desk", "disabled", now=NOW)
    with store.db.write() as s:
        assert mediators.session_mediator(s, token2, now=NOW, idle=idle) is None
        assert mediators.token_mediator(s, api, now=NOW) is None
        assert s.query(MediatorSession).count() == 0
        assert all(t.revoked_at is not None for t in s.query(MediatorToken))
        with pytest.raises(NotFound):
            mediators.create_token(s, "desk", label=None, now=NOW)
        later = NOW + timedelta(minutes=2)
        code = pyotp.TOTP(new.totp_secret).at(later)
        assert mediators.verify_login(s, store.keys, "desk", PASSWORD, code, now=later) is None  # disabled
        mediators.set_status(s, "desk", "active", now=NOW)
    with store.db.write() as s:
        assert mediators.token_mediator(s, api, now=NOW) is None  # revoked for good
        with pytest.raises(NotFound):
            mediators.set_status(s, "nobody", "disabled", now=NOW)


def _tables_read(store: Store, action: Callable[[Session], object]) -> set[str]:
    """The tables the statements of ``action`` name (FROM, INTO, UPDATE, DELETE FROM, JOIN)."""
    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    event.listen(store.db.engine, "before_cursor_execute", note)
    try:
        with store.db.write() as s:
            action(s)
    finally:
        event.remove(store.db.engine, "before_cursor_execute", note)
    return {m.lower() for text in seen for m in re.findall(r'(?:FROM|INTO|UPDATE|JOIN)\s+"?(\w+)', text, re.I)}


def test_admin_authentication_never_reads_a_mediator_table_nor_the_reverse(store: Store) -> None:
    """The mechanics are shared (gateway.accounts.staff), the tables are not (issue 14)."""
    with store.db.write() as s:
        admin = admins.add_admin(s, store.keys, "alice", PASSWORD, now=NOW)
        helper = mediators.add_mediator(s, store.keys, "fs-lyon8", PASSWORD, organisation=None, now=NOW)
        admin_token = admins.create_token(s, "alice", label=None, now=NOW)
        helper_token = mediators.create_token(s, "fs-lyon8", label=None, now=NOW)
    later = NOW + timedelta(minutes=1)
    idle = timedelta(minutes=30)

    def as_admin(s: Session) -> None:
        found = admins.verify_login(s, store.keys, "alice", PASSWORD, pyotp.TOTP(admin.totp_secret).at(later),
                                    now=later)
        assert found is not None
        opened = admins.create_session(s, found, peer=None, now=later, lifetime=timedelta(hours=1))
        assert admins.session_admin(s, opened.token, now=later, idle=idle) is not None
        assert admins.token_admin(s, admin_token, now=later) is not None
        admins.end_session(s, opened.token)

    def as_mediator(s: Session) -> None:
        found = mediators.verify_login(s, store.keys, "fs-lyon8", PASSWORD,
                                       pyotp.TOTP(helper.totp_secret).at(later), now=later)
        assert found is not None
        token, _ = mediators.create_session(s, found, peer=None, now=later, lifetime=timedelta(hours=1))
        assert mediators.session_mediator(s, token, now=later, idle=idle) is not None
        assert mediators.token_mediator(s, helper_token, now=later) is not None
        mediators.end_session(s, token)

    admin_tables, mediator_tables = _tables_read(store, as_admin), _tables_read(store, as_mediator)
    assert {"admins", "admin_sessions", "admin_api_tokens"} <= admin_tables
    assert not {t for t in admin_tables if t.startswith("mediator")}, admin_tables
    assert {"mediators", "mediator_sessions", "mediator_api_tokens"} <= mediator_tables
    assert not {t for t in mediator_tables if t.startswith("admin")}, mediator_tables
