"""Admin accounts, sessions, tokens and the adoption figures on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from gateway.accounts import admins, staff
from gateway.accounts.patients import provision
from gateway.accounts.pros import AlreadyExists, NotFound
from gateway.mailstore import adoption
from gateway.store.models import AdminAccount, AdminToken, DailyStat
from gateway.testing.store import Store
from routing.ins import synthetic_ins

NOW = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
PASSWORD = "une phrase de passe d'admin"


def test_admin_login_needs_password_and_a_fresh_totp_code(store: Store) -> None:
    with store.db.write() as s:
        created = admins.add_admin(s, store.keys, "Bob", PASSWORD, now=NOW)
        with pytest.raises(AlreadyExists):
            admins.add_admin(s, store.keys, "bob", PASSWORD, now=NOW)
        with pytest.raises(admins.InvalidAdminName):
            admins.add_admin(s, store.keys, "bob smith", PASSWORD, now=NOW)
    assert created.provisioning_uri().startswith("otpauth://totp/")
    totp = pyotp.TOTP(created.totp_secret)
    code = totp.at(NOW)
    with store.db.write() as s:
        row = s.get(AdminAccount, created.admin.id)
        assert row is not None and created.totp_secret.encode() not in row.totp_sealed
        assert admins.verify_login(s, store.keys, "bob", "wrong", code, now=NOW) is None
        assert admins.verify_login(s, store.keys, "bob", PASSWORD, "000000" if code != "000000" else "111111",
                                   now=NOW) is None
        assert admins.verify_login(s, store.keys, "nobody", PASSWORD, code, now=NOW) is None
        assert admins.verify_login(s, store.keys, "bob", PASSWORD, code, now=NOW) is not None
    with store.db.write() as s:  # the same code (same step) is never accepted twice
        assert admins.verify_login(s, store.keys, "bob", PASSWORD, code, now=NOW) is None
        later = NOW + timedelta(seconds=30)
        assert admins.verify_login(s, store.keys, "bob", PASSWORD, totp.at(later), now=later) is not None
        row = s.get(AdminAccount, created.admin.id)
        assert row is not None
        row.status = "disabled"
    with store.db.write() as s:
        much_later = NOW + timedelta(minutes=5)
        assert admins.verify_login(s, store.keys, "bob", PASSWORD, totp.at(much_later), now=much_later) is None


def test_sessions_expire_when_idle_and_tokens_are_stored_hashed(store: Store) -> None:
    with store.db.write() as s:
        admin = admins.add_admin(s, store.keys, "carol", PASSWORD, now=NOW).admin
        opened = admins.create_session(s, admin, peer="127.0.0.1", now=NOW, lifetime=timedelta(hours=8))
        token = admins.create_token(s, "carol", label="monitoring", now=NOW)
        with pytest.raises(NotFound):
            admins.create_token(s, "nobody", label=None, now=NOW)
    idle = timedelta(minutes=30)
    with store.db.write() as s:
        assert admins.session_admin(s, opened.token, now=NOW + timedelta(minutes=10), idle=idle) is not None
        assert admins.session_admin(s, "forged", now=NOW, idle=idle) is None
        stored = s.query(AdminToken).one()
        assert token.startswith("hmga_") and stored.token_hash == staff.token_hash(token) != token
        assert admins.token_admin(s, token, now=NOW) is not None
        assert admins.token_admin(s, token + "x", now=NOW) is None
    with store.db.write() as s:  # 10 + 31 minutes: idle too long, the session is gone for good
        assert admins.session_admin(s, opened.token, now=NOW + timedelta(minutes=41), idle=idle) is None
    with store.db.write() as s:
        assert admins.session_admin(s, opened.token, now=NOW + timedelta(minutes=42), idle=timedelta(days=1)) is None
        stored = s.query(AdminToken).one()
        stored.revoked_at = NOW
    with store.db.read() as s:
        assert admins.token_admin(s, token, now=NOW) is None


ATTACHED = (b"From: a@clinic.test\r\nTo: b@x.test\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n'
            b'--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="r.pdf"\r\n\r\n%PDF\r\n'
            b'--b\r\nContent-Type: image/png; name="scan.png"\r\n\r\nPNG\r\n--b--\r\n')


def test_adoption_figures_and_daily_series(store: Store) -> None:
    assert adoption.count_attachments(ATTACHED) == 2
    assert adoption.count_attachments(b"Subject: plain\r\n\r\nno documents\r\n") == 0
    rng = random.Random(5)
    with store.db.write() as s:
        for day, state in ((0, "open"), (0, "opposed"), (2, "provisioned"), (3, "open")):
            done = provision(s, store.keys, synthetic_ins(rng), email=None, now=NOW - timedelta(days=day),
                             opposition_window=timedelta(days=42), code_validity=timedelta(days=42),
                             open_now=state == "open")
            done.patient.state = state
            if state == "opposed":
                done.patient.opposed_at = NOW
            if day == 3:
                done.patient.activated_at = NOW - timedelta(days=1)
                done.patient.last_login_at = NOW - timedelta(days=1)
        adoption.record_message(s, NOW, ATTACHED)
        adoption.record_message(s, NOW, b"Subject: x\r\n\r\nhi\r\n")
        adoption.record_message(s, NOW - timedelta(days=1), ATTACHED)
        adoption.record_message(s, NOW - timedelta(days=40), ATTACHED)
    with store.db.read() as s:
        assert {(r.day, r.metric): r.value for r in s.query(DailyStat)}[("2026-11-20", "documents")] == 2
        f = adoption.figures(s, NOW)
        series = adoption.series(s, NOW)
    assert f.mailboxes_created == 4 and f.opposition_rate == 0.25 and f.activation_rate == 0.25
    assert f.active_patients_30d == 1 and f.messages_30d == 3 and f.documents_30d == 4
    assert f.as_dict()["by_state"] == {"open": 2, "opposed": 1, "provisioned": 1}
    assert series["created"][-1] == ("2026-11-20", 2) and series["created"][-3] == ("2026-11-18", 1)
    assert series["messages"][-1] == ("2026-11-20", 2) and series["documents"][-2] == ("2026-11-19", 2)
    assert series["activated"][-2] == ("2026-11-19", 1) and series["opposed"][-1] == ("2026-11-20", 1)
    assert all(len(values) == 30 for values in series.values())


def test_an_activation_counts_as_activity(store: Store) -> None:
    """Issue 14: a patient who activated the space (and never logged in again) is an active patient."""
    rng = random.Random(14)
    with store.db.write() as s:
        for activated_days_ago, login_days_ago in ((2, None), (40, None), (40, 3), (None, None)):
            done = provision(s, store.keys, synthetic_ins(rng), email=None, now=NOW - timedelta(days=45),
                             opposition_window=timedelta(days=42), code_validity=timedelta(days=42))
            if activated_days_ago is not None:
                done.patient.activated_at = NOW - timedelta(days=activated_days_ago)
            if login_days_ago is not None:
                done.patient.last_login_at = NOW - timedelta(days=login_days_ago)
    with store.db.read() as s:
        f = adoption.figures(s, NOW)
    # Activated 2 days ago (never logged in since), and logged in 3 days ago: 2 active; 40 days ago: not.
    assert f.active_patients_30d == 2 and f.as_dict()["active_users_30d"] == 2
