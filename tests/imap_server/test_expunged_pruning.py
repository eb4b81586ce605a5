"""Expunged UIDs kept for a bounded time (gateway/mailstore/expunged.py), SQLite and PostgreSQL:
the ``expunged-uids`` job deletes each folder's oldest rows beyond the bound in batches of at
most ``per_run`` rows and raises the folder's floor with them; QRESYNC answers exactly above
the floor and in full below it (SELECT … (QRESYNC …) and UID FETCH … (CHANGEDSINCE … VANISHED)
over :class:`StoreBackend`); migration 0023 counts the rows that exist and downgrades keeping them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, select, text

from gateway.accounts.jobs import EXPUNGED, JobConfig, run_job
from gateway.accounts.pros import add_hosted_domain, add_pro
from gateway.imap_adapter.backend import StoreBackend, StoreMailboxes
from gateway.mailstore import expunged
from gateway.settings import JobSettings, PatientSettings
from gateway.store import migrate
from gateway.store.changes import ChangeHub
from gateway.store.db import Database
from gateway.store.models import AuditEntry, ExpungedUid, Folder
from gateway.testing.store import Store
from imap.backend import Credentials
from imap.proto.commands import StoreMode
from imap.testing import Transcript
from tests.imap_server.kit import PLAIN

ADDRESS = "dr.vanished@clinic.test"
SECRET = "vanished test password"
NOW = datetime(2027, 1, 4, 3, 0, tzinfo=UTC)


async def _account(store: Store) -> tuple[StoreBackend, StoreMailboxes]:
    with store.db.write() as session:
        add_pro(session, store.keys, ADDRESS, add_hosted_domain(session, "clinic.test"), password=SECRET)
    backend = StoreBackend(store.db, store.keys, ChangeHub(), poll_interval=0.1)
    return backend, await backend.authenticate(Credentials(ADDRESS, SECRET, "192.0.2.9", True))


async def _expunge(boxes: StoreMailboxes, uids: list[int]) -> int:
    await boxes.store_flags("INBOX", uids, StoreMode.ADD, ["\\Deleted"])
    assert await boxes.expunge("INBOX", uids) == uids
    return (await boxes.folder_status("INBOX")).highestmodseq


def _inbox(store: Store) -> tuple[int, int, list[tuple[int, int]]]:
    """INBOX's (expunged_count, expunged_floor) and its rows (uid, modseq)."""
    with store.db.read() as session:
        folder = session.execute(select(Folder).where(Folder.name == "INBOX")).scalar_one()
        rows = session.execute(select(ExpungedUid.uid, ExpungedUid.modseq)
                               .where(ExpungedUid.mailbox_id == folder.mailbox_id,
                                      ExpungedUid.folder_id == folder.id).order_by(ExpungedUid.uid)).all()
        return folder.expunged_count, folder.expunged_floor, [(int(u), int(m)) for u, m in rows]


async def test_the_job_prunes_the_oldest_rows_in_bounded_batches(store: Store) -> None:
    _, boxes = await _account(store)
    for _ in range(12):
        await boxes.append("INBOX", PLAIN, [], None)
    modseqs = [await _expunge(boxes, pair) for pair in ([1, 2], [3, 4], [5, 6], [7, 8], [9, 10])]
    count, floor, rows = _inbox(store)
    assert (count, floor, len(rows)) == (10, 0, 10)
    bound = expunged.Bound(kept=3, per_run=3)
    assert expunged.prune(store.db, bound) == {"folders": 1, "deleted": 3}  # 1, 2 (first), 3 (second)
    count, floor, rows = _inbox(store)
    assert (count, floor) == (7, modseqs[1]) and [u for u, _ in rows] == list(range(4, 11))
    assert (await boxes.expunged_since("INBOX", modseqs[0])).exact is False  # 3 is forgotten
    assert (await boxes.expunged_since("INBOX", modseqs[1])).uids() == list(range(5, 11))
    runs = [expunged.prune(store.db, bound)["deleted"] for _ in range(3)]
    assert runs == [3, 1, 0]  # never more than per_run, then down to the bound
    count, floor, rows = _inbox(store)
    assert (count, floor) == (3, modseqs[3]) and [u for u, _ in rows] == [8, 9, 10]  # 8 shares 7's modseq
    assert expunged.prune(store.db, expunged.Bound(kept=0, per_run=100)) == {"folders": 0, "deleted": 0}
    # The job: audited with its counts; the next expunge counts on from where pruning left it.
    last = await _expunge(boxes, [11, 12])
    cfg = JobConfig(PatientSettings(), JobSettings(), expunged=expunged.Bound(kept=1, per_run=1000))
    result = run_job(store.db, store.keys, cfg, EXPUNGED, NOW)
    assert result.ran and result.counts == {"folders": 1, "deleted": 4}
    assert _inbox(store) == (1, last, [(12, last)])
    with store.db.read() as session:
        actions = session.execute(select(AuditEntry.action).where(AuditEntry.action == f"jobs.{EXPUNGED}")).all()
    assert len(actions) == 1


async def test_a_count_that_drifted_is_set_right(store: Store) -> None:
    _, boxes = await _account(store)
    for _ in range(4):
        await boxes.append("INBOX", PLAIN, [], None)
    await _expunge(boxes, [1, 2, 3])
    with store.db.write() as session:  # as if rows had gone without the count following
        session.execute(text("UPDATE folders SET expunged_count = 50 WHERE name = 'INBOX'"))
    assert expunged.prune(store.db, expunged.Bound(kept=1, per_run=100))["deleted"] == 3
    assert _inbox(store)[0] == 0


LOGIN = f"""
    S: * OK ...
    C: a LOGIN {ADDRESS} "{SECRET}"
    S: a OK ...
    C: b ENABLE QRESYNC
    S: * ENABLED QRESYNC
    S: b OK ENABLE completed
"""


def _select(tag: str, uidvalidity: int, modseq: int, vanished: str, *, first: bool = False,
            fetched: int = 0) -> str:
    """The SELECT's lines (after another mailbox unless ``first``), ``fetched`` messages changed since."""
    closed = "" if first else "S: * OK [CLOSED] Previous mailbox closed\n"
    changed = "".join(f"S: * {n} FETCH (UID ...)\n" for n in range(1, fetched + 1))
    return f"""
        C: {tag} SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))
        {closed}S: * FLAGS ...
        S: * 5 EXISTS
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * OK [UIDNEXT 11] Predicted next UID
        S: * OK [HIGHESTMODSEQ ...] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: * VANISHED (EARLIER) {vanished}
        {changed}S: {tag} OK [READ-WRITE] SELECT completed
    """


async def test_qresync_answers_exactly_above_the_floor_and_in_full_below(store: Store) -> None:
    backend, boxes = await _account(store)
    for _ in range(10):
        await boxes.append("INBOX", PLAIN, [], None)
    first = await _expunge(boxes, [2, 3])
    second = await _expunge(boxes, [5, 10])  # 10: above every UID left
    await _expunge(boxes, [8])
    assert expunged.prune(store.db, expunged.Bound(kept=1, per_run=100))["deleted"] == 4
    assert _inbox(store)[1:] == (second, [(8, second + 2)])
    uidvalidity = (await boxes.folder_status("INBOX")).uidvalidity
    client = Transcript(backend)
    await client.run(LOGIN + _select("c", uidvalidity, second, "8", first=True) + f"""
        C: d UID FETCH 1:* FLAGS (CHANGEDSINCE {second} VANISHED)
        S: * VANISHED (EARLIER) 8
        S: d OK FETCH completed
        C: e UID FETCH 1:* FLAGS (CHANGEDSINCE {first} VANISHED)
        S: * VANISHED (EARLIER) 2:3,5,8,10
        S: e OK FETCH completed
        C: f UID FETCH 4:7 FLAGS (CHANGEDSINCE {second - 1} VANISHED)
        S: * VANISHED (EARLIER) 5
        S: f OK FETCH completed
    """ + _select("g", uidvalidity, first, "2:3,5,8,10") + _select("h", uidvalidity, 1, "2:3,5,8,10", fetched=5))
    await client.close()


def test_migration_0023_counts_the_rows_and_downgrades_keeping_them(db_url: str) -> None:
    db = Database(db_url)
    try:
        migrate.upgrade(db.engine, "0022")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO mailboxes (id, uid, kind, created_at) VALUES (7, 'u7', 'pro', :at)"),
                         {"at": NOW})
            for folder in (70, 71, 72):
                conn.execute(text("INSERT INTO folders (id, mailbox_id, name, subscribed, uidvalidity, uidnext,"
                                  " highestmodseq, recent_uid, created_at) VALUES (:id, 7, :name, true, 1, 9, 9, 0,"
                                  " :at)"), {"id": folder, "name": f"F{folder}", "at": NOW})
            conn.execute(text("INSERT INTO expunged_uids (mailbox_id, folder_id, uid, modseq) VALUES"
                              " (7, 70, 1, 2), (7, 70, 2, 2), (7, 70, 5, 4), (7, 71, 3, 3)"))
        migrate.upgrade(db.engine, "0023")
        with db.engine.connect() as conn:
            counts = conn.execute(text("SELECT id, expunged_count, expunged_floor FROM folders ORDER BY id")).all()
        assert [tuple(r) for r in counts] == [(70, 3, 0), (71, 1, 0), (72, 0, 0)]
        migrate.downgrade(db.engine, "0022")
        columns = {c["name"] for c in inspect(db.engine).get_columns("folders")}
        assert not columns & {"expunged_count", "expunged_floor"}
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM expunged_uids")).scalar_one() == 4
        migrate.upgrade(db.engine)
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT expunged_count FROM folders WHERE id = 70")).scalar_one() == 3
    finally:
        db.dispose()
