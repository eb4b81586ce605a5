"""An account suspended or removed while its IMAP sessions are open, over the store backend on
SQLite and on the real PostgreSQL: :meth:`StoreMailboxes.still_open` reads the account's status
again once the last read is ``access_check`` seconds old, or at once when a change of the
account's mailbox was announced (what the suspension announces, heard by every node through
PostgreSQL LISTEN); in between it reads nothing (a FETCH costs no round trip for it). Password
and certificate sessions alike: the account's status is what matters. The end is audited
(``imap.session_end``, a reason code, nothing else). The session's side (``* BYE``):
tests/imap/test_imap_suspended.py; real clients: tests/imap_server/test_suspended_live.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from gateway.accounts import identities
from gateway.accounts.identities import APPLICATION
from gateway.accounts.pros import add_hosted_domain, add_pro, status_by_id
from gateway.imap_adapter import backend as backend_module
from gateway.imap_adapter.backend import ACCESS_CHECK_S, StoreBackend, StoreMailboxes
from gateway.operations import pros as ops_pros
from gateway.operations.common import Actor
from gateway.store.changes import ChangeHub
from gateway.store.models import AuditEntry, ProCertificate
from gateway.store.raw import Runner
from gateway.testing.store import Store
from imap.backend import CertificateCredentials, Credentials

ADDRESS = "dr.suspended@clinic.test"
APP = "lab-robot@clinic.test"
SECRET = "suspension test password"
CERT = b"0\x82 a client certificate's DER, as TLS verified it"
ACTOR = Actor("admin", "api", "192.0.2.50")


@pytest.fixture
def backend(store: Store) -> StoreBackend:
    now = datetime.now(UTC)
    with store.db.write() as session:
        domain = add_hosted_domain(session, "clinic.test")
        add_pro(session, store.keys, ADDRESS, domain, password=SECRET)
        app = add_pro(session, store.keys, APP, domain, mailbox_type=APPLICATION)
        session.add(ProCertificate(fingerprint=identities.fingerprint(CERT), account_id=app.id,
                                   issuer="CN=Lab CA", subject="CN=lab-robot", not_after=None, created_at=now))
    return StoreBackend(store.db, store.keys, ChangeHub(), poll_interval=0.1)


def _disable(store: Store, address: str) -> None:
    with store.db.write() as session:
        ops_pros.set_status(session, ACTOR, address, "disabled", now=datetime.now(UTC))


def _ends(store: Store) -> list[tuple[str, str | None, str | None, dict[str, str]]]:
    with store.db.read() as session:
        rows = session.execute(select(AuditEntry).where(AuditEntry.action == "imap.session_end")
                               .order_by(AuditEntry.id)).scalars().all()
        return [(r.actor, r.subject_ref, r.peer, json.loads(r.details or "{}")) for r in rows]


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads: list[int] = []
    real: Callable[[Runner, int], str | None] = status_by_id

    def counted(runner: Runner, account_id: int) -> str | None:
        reads.append(account_id)
        return real(runner, account_id)

    monkeypatch.setattr(backend_module, "status_by_id", counted)
    return reads


async def test_no_read_while_fresh_then_the_announced_suspension_ends_it(
        backend: StoreBackend, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    assert backend.access_check == ACCESS_CHECK_S == 5.0
    reads = _counting(monkeypatch)
    boxes = await backend.authenticate(Credentials(ADDRESS, SECRET, "192.0.2.7", True))
    assert isinstance(boxes, StoreMailboxes)
    for _ in range(50):  # e.g. a FETCH each: the login just read the status
        assert await boxes.still_open()
    assert reads == []
    _disable(store, ADDRESS)
    assert await boxes.still_open()  # nothing announced here yet, and the last read is fresh
    backend.hub.notify(boxes.mailbox_id)  # what PostgreSQL LISTEN does on every node
    assert not await boxes.still_open()
    assert not await boxes.still_open()  # stays ended, without reading again
    assert len(reads) == 1
    (actor, subject, peer, details), = _ends(store)
    assert (actor, peer, details) == (f"pro:{ADDRESS}", "192.0.2.7", {"reason": "account.disabled"})
    assert subject is not None and subject.startswith("pro:")


async def test_read_again_once_the_last_read_is_access_check_old(backend: StoreBackend, store: Store) -> None:
    backend.access_check = 0.2
    boxes = await backend.authenticate(Credentials(ADDRESS, SECRET, "192.0.2.7", True))
    _disable(store, ADDRESS)
    assert await boxes.still_open()
    await asyncio.sleep(0.25)
    assert not await boxes.still_open()


async def test_other_accounts_sessions_go_on(backend: StoreBackend, store: Store) -> None:
    backend.access_check = 0.0
    boxes = await backend.authenticate(Credentials(ADDRESS, SECRET, "192.0.2.7", True))
    app = await backend.authenticate_certificate(CertificateCredentials(CERT, None, "192.0.2.8"))
    _disable(store, APP)
    assert await boxes.still_open()
    assert not await app.still_open()
    assert _ends(store)[0][3] == {"reason": "account.disabled"}
    with store.db.write() as session:
        ops_pros.set_status(session, ACTOR, APP, "active", now=datetime.now(UTC))
    assert not await app.still_open()  # an ended session stays ended: the client signs in again
    again = await backend.authenticate_certificate(CertificateCredentials(CERT, None, "192.0.2.8"))
    assert await again.still_open()


async def test_removed_account(backend: StoreBackend, store: Store) -> None:
    boxes = await backend.authenticate(Credentials(ADDRESS, SECRET, "192.0.2.7", True))
    with store.db.write() as session:
        ops_pros.remove(session, store.keys, ACTOR, ADDRESS, now=datetime.now(UTC))
    backend.hub.notify(boxes.mailbox_id)
    assert not await boxes.still_open()
    assert _ends(store)[0][3] == {"reason": "account.removed"}
