"""The client extensions on the gateway's store (issue 18), SQLite and PostgreSQL: a transcript
over :class:`StoreBackend` for OBJECTID (MAILBOXID kept by RENAME, EMAILID kept by COPY and MOVE,
THREADID from the conversation), SAVEDATE (delivered mail: its internal date; a copy: when
copied), STATUS=SIZE / LIST-STATUS, and PREVIEW from the summary sealed at delivery, with
the older summaries (version 2, no preview): ``PREVIEW (LAZY)`` NIL, ``PREVIEW`` made from
the message."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence

import pytest

from gateway.accounts.pros import add_hosted_domain, add_pro, pro_by_address
from gateway.imap_adapter.backend import StoreBackend, StoreMailboxes
from gateway.mailstore import conversations, summaries
from gateway.mailstore.messages import insert_sealed
from gateway.mailstore.sealed import seal_copy
from gateway.store.changes import ChangeHub
from gateway.testing.store import Store
from imap.testing import Transcript
from tests.imap_server.kit import MULTIPART, PLAIN

ADDRESS = "dr.objects@clinic.test"
SECRET = "objects test password"
DELIVERED = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def _deliver(store: Store, raw: bytes, *, version: int = summaries.VERSION, conversation: bool = False) -> None:
    """As the delivery pipeline stores mail: the summary from the one parse, sealed with the copy."""
    encoded = summaries.encode(summaries.compute(raw))
    if version == 2:  # as stored before previews were made at delivery
        doc = json.loads(encoded)
        doc["v"] = 2
        del doc["preview"]
        encoded = json.dumps(doc).encode()
    with store.db.write() as session:
        account = pro_by_address(session, ADDRESS)
        assert account is not None
        copy = seal_copy(store.keys.for_mailbox(session, account.mailbox_id), raw, encoded)
        conversation_id = None
        if conversation:
            conversation_id = conversations.record_professional_message(
                session, store.keys, account.mailbox_id, author="dr.martin@clinic.test", reply_to=None,
                message_id="<p1@clinic.test>", thread_ids=(), ends=False, now=DELIVERED)
        insert_sealed(session, account.mailbox_id, "INBOX", copy, internal_date=DELIVERED,
                      conversation_id=conversation_id)


@pytest.fixture
def transcript(store: Store) -> Transcript:
    with store.db.write() as session:
        add_pro(session, store.keys, ADDRESS, add_hosted_domain(session, "clinic.test"), password=SECRET)
    _deliver(store, PLAIN, conversation=True)
    _deliver(store, MULTIPART)
    _deliver(store, PLAIN, version=2)
    return Transcript(StoreBackend(store.db, store.keys, ChangeHub(), poll_interval=0.1))


LOGIN = f"""
    S: * OK ...
    C: a LOGIN {ADDRESS} "{SECRET}"
    S: a OK ...
"""
SELECT = """
    S: * FLAGS (...)
    S: * ... EXISTS
    S: * ... RECENT
    S: * OK [UNSEEN 1] First unseen
    S: * OK [PERMANENTFLAGS (...)] Limited
    S: * OK [UIDVALIDITY ...] UIDs valid
    S: * OK [UIDNEXT ...] Predicted next UID
    S: * OK [HIGHESTMODSEQ ...] Highest
"""


def _ids(out: bytes, name: bytes) -> list[bytes]:
    return re.findall(rb"\b" + name + rb" \(([A-Za-z0-9_-]+)\)", out)


async def test_object_ids_save_dates_and_sizes(transcript: Transcript) -> None:
    t = transcript
    await t.run(LOGIN)
    out = await t.feed(b"b SELECT INBOX\r\nc FETCH 1:3 (EMAILID THREADID SAVEDATE RFC822.SIZE)\r\n"
                       b"d STATUS Archive (MAILBOXID)\r\n")
    (inbox_id,) = _ids(out, b"MAILBOXID")[:1]
    emails, threads = _ids(out, b"EMAILID"), _ids(out, b"THREADID")
    assert len(set(emails)) == 3 and all(e.startswith(b"M") for e in emails)
    assert len(threads) == 1 and threads[0].startswith(b"T")  # only the first is in a conversation
    assert out.count(b"THREADID NIL") == 2
    assert out.count(b'SAVEDATE "02-Mar-2026 09:00:00 +0000"') == 3  # delivered: the internal date
    (archive_id,) = _ids(out, b"MAILBOXID")[1:]
    assert inbox_id != archive_id and inbox_id.startswith(b"F")
    size = sum(int(n) for n in re.findall(rb"RFC822.SIZE (\d+)", out))
    assert size == 2 * len(PLAIN) + len(MULTIPART)
    today = dt.datetime.now(dt.UTC).strftime("%d-%b-%Y")
    await t.run(f"""
        C: e STATUS INBOX (MESSAGES SIZE)
        S: * STATUS INBOX (MESSAGES 3 SIZE {size})
        S: e OK STATUS completed
        C: f SEARCH EMAILID {emails[1].decode()}
        S: * SEARCH 2
        S: f OK SEARCH completed
        C: g SEARCH THREADID {threads[0].decode()}
        S: * SEARCH 1
        S: g OK SEARCH completed
        C: h COPY 1 Archive
        S: h OK [COPYUID ...] COPY completed
        C: i MOVE 2 Archive
        S: * OK [COPYUID ...] Moved
        S: * 2 EXPUNGE
        S: i OK MOVE completed
        C: j RENAME Archive Kept
        S: j OK RENAME completed
        C: k LIST "" Kept RETURN (STATUS (MESSAGES MAILBOXID))
        S: * LIST (...) "/" Kept
        S: * STATUS Kept (MESSAGES 2 MAILBOXID ({archive_id.decode()}))
        S: k OK LIST completed
        C: l SELECT Kept
        {SELECT}
        S: * OK [MAILBOXID ({archive_id.decode()})] Mailbox ID
        S: l OK [READ-WRITE] SELECT completed
        C: m FETCH 1:2 (EMAILID THREADID INTERNALDATE SAVEDATE)
        S: * 1 FETCH (EMAILID ({emails[0].decode()}) THREADID ({threads[0].decode()}) INTERNALDATE "02-Mar-2026 09:00:00 +0000" SAVEDATE "{today} ...")
        S: * 2 FETCH (EMAILID ({emails[1].decode()}) THREADID NIL INTERNALDATE "02-Mar-2026 09:00:00 +0000" SAVEDATE "{today} ...")
        S: m OK FETCH completed
        C: n SEARCH SAVEDON {today} SAVEDATESUPPORTED
        S: * SEARCH 1 2
        S: n OK SEARCH completed
        C: o SEARCH SAVEDBEFORE {today}
        S: * SEARCH
        S: o OK SEARCH completed
        C: p SEARCH OLDER 3600 YOUNGER 999999999
        S: * SEARCH 1 2
        S: p OK SEARCH completed
    """)  # noqa: E501
    out = await t.feed(b"q CREATE Projects/New\r\nr STATUS Projects/New (MAILBOXID)\r\n")
    created, listed = _ids(out, b"MAILBOXID")  # RFC 8474 §4.1: CREATE gives it in its tagged OK
    assert out.startswith(b"q OK [MAILBOXID (") and created == listed and created not in (inbox_id, archive_id)
    await t.close()


async def test_preview_from_the_sealed_summary(transcript: Transcript, monkeypatch: pytest.MonkeyPatch) -> None:
    """PREVIEW never opens a message whose summary has one; one stored before (version 2) is
    opened only for ``PREVIEW`` without ``LAZY``."""
    opened: list[list[int]] = []
    fetch_raws = StoreMailboxes.fetch_raws

    async def counting(self: StoreMailboxes, name: str, uids: Sequence[int]) -> Mapping[int, bytes]:
        opened.append(list(uids))
        return await fetch_raws(self, name, uids)

    monkeypatch.setattr(StoreMailboxes, "fetch_raws", counting)
    t = transcript
    await t.run(LOGIN + "C: b EXAMINE INBOX" + SELECT.replace("Limited", "...") + """
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: b OK [READ-ONLY] EXAMINE completed
        C: c FETCH 1:3 (PREVIEW (LAZY))
        S: * 1 FETCH (PREVIEW "Bonjour, voici le compte rendu.")
        S: * 2 FETCH (PREVIEW {28}
        S: Résultats en pièce jointe.)
        S: * 3 FETCH (PREVIEW NIL)
        S: c OK FETCH completed
        C: d FETCH 1:3 PREVIEW
        S: * 1 FETCH (PREVIEW "Bonjour, voici le compte rendu.")
        S: * 2 FETCH (PREVIEW {28}
        S: Résultats en pièce jointe.)
        S: * 3 FETCH (PREVIEW "Bonjour, voici le compte rendu.")
        S: d OK FETCH completed
    """)
    assert opened == [[3]]
    await t.close()
