"""``VANISHED (EARLIER)`` once the store has forgotten old expunges (RFC 7162 §3.2.5.2, §3.2.6):
a client whose mod-sequence is at or above the highest one forgotten gets the exact answer; one
below it gets every UID below UIDNEXT that no longer exists, as ranges, so it misses none.

Over :mod:`imap.testing`, whose ``forget_expunged`` does what the store's pruning does
(``gateway/mailstore/expunged.py``; the store's own side: tests/imap_server/test_expunged_pruning.py).
"""

from __future__ import annotations

from imap import uid_ranges
from imap.proto.commands import StoreMode
from imap.testing import MemoryBackend, MemoryMailboxes, Transcript

LOGIN = """
    S: * OK ...
    C: a LOGIN alice pw
    S: a OK ...
    C: b ENABLE QRESYNC
    S: * ENABLED QRESYNC
    S: b OK ENABLE completed
"""
PLAIN = b"From: a@example.test\r\nSubject: s\r\n\r\nbody\r\n"


async def _expunge(box: MemoryMailboxes, uids: list[int]) -> int:
    await box.store_flags("INBOX", uids, StoreMode.ADD, ["\\Deleted"])
    assert await box.expunge("INBOX", uids) == uids
    return box.folders["INBOX"].highestmodseq


def _select(tag: str, modseq: int, vanished: str, extra: str = "") -> str:
    return f"""
        C: {tag} SELECT INBOX (QRESYNC (1 {modseq}{extra}))
        S: * OK [CLOSED] Previous mailbox closed
        S: * FLAGS ...
        S: * 5 EXISTS
        S: * 0 RECENT
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: * OK [UIDNEXT 11] Predicted next UID
        S: * OK [HIGHESTMODSEQ ...] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: * VANISHED (EARLIER) {vanished}
        S: {tag} OK [READ-WRITE] SELECT completed
    """


async def test_select_and_uid_fetch_answer_in_full_below_the_floor() -> None:
    backend = MemoryBackend(folders=("INBOX",))
    box = backend.users["alice"]
    for _ in range(10):
        box.deliver(PLAIN)  # UIDs 1..10
    first = await _expunge(box, [2, 3])
    second = await _expunge(box, [5, 10])  # 10: above every UID left
    await _expunge(box, [8])
    box.forget_expunged("INBOX", second)  # the rows of 2, 3, 5 and 10 are gone
    # At the floor: every expunge above it is still kept, the answer is exact.
    assert (await box.expunged_since("INBOX", second)).uids() == [8]
    # Below it: the answer is every UID below UIDNEXT that is not there (2:3 were known to the
    # client already: allowed, RFC 7162 §3.2.5.2); the exact one would have missed 5 and 10.
    below = await box.expunged_since("INBOX", first)
    assert not below.exact and below.ranges == ((2, 3), (5, 5), (8, 8), (10, 10))
    client = Transcript(backend)
    await client.run(LOGIN + "C: c1 SELECT INBOX\n" + """
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: c1 OK [READ-WRITE] SELECT completed
    """ + f"""
        C: d UID FETCH 1:* FLAGS (CHANGEDSINCE {second} VANISHED)
        S: * VANISHED (EARLIER) 8
        S: d OK FETCH completed
        C: e UID FETCH 1:* FLAGS (CHANGEDSINCE {first} VANISHED)
        S: * VANISHED (EARLIER) 2:3,5,8,10
        S: e OK FETCH completed
        C: f UID FETCH 4:7 FLAGS (CHANGEDSINCE {first} VANISHED)
        S: * VANISHED (EARLIER) 5
        S: f OK FETCH completed
        C: g UID FETCH 9:* FLAGS (CHANGEDSINCE {first} VANISHED)
        S: * VANISHED (EARLIER) 10
        S: g OK FETCH completed
    """ + _select("h", second, "8") + _select("i", first, "2:3,5,8,10")
        + _select("j", first, "5", " 4:7"))
    await client.close()


def test_uid_ranges() -> None:
    assert uid_ranges.missing([1, 4, 6, 7, 9], 10) == ((2, 3), (5, 5), (8, 8), (10, 10))
    assert uid_ranges.missing([], 0) == ()
    # Years of mail: ten million UIDs, two left, three ranges (never a list of numbers).
    assert uid_ranges.missing([4_000_000, 9_999_999], 10_000_000) == (
        (1, 3_999_999), (4_000_001, 9_999_998), (10_000_000, 10_000_000))
    assert uid_ranges.missing([3, 20], 5) == ((1, 2), (4, 5))
    assert uid_ranges.without([(1, 10)], [1, 5, 6, 10]) == [(2, 4), (7, 9)]
    assert uid_ranges.intersect([(1, 3), (7, 20)], [(2, 8), (15, 15), (30, 40)]) == [(2, 3), (7, 8), (15, 15)]
    assert uid_ranges.compact([7, 1, 2, 3, 3]) == ((1, 3), (7, 7))
    assert uid_ranges.format_ranges([(1, 3), (7, 7)]) == "1:3,7"
