"""RFC 7162 grammar beyond CONDSTORE's: the SELECT / EXAMINE parameters ``(CONDSTORE)`` and
``(QRESYNC (uidvalidity modseq [known-uids [seq-match-data]]))`` (§3.2.5, §7 ``select-param``)
and the UID FETCH modifiers ``CHANGEDSINCE`` and ``VANISHED`` in any order (§3.2.6)."""

from __future__ import annotations

from imap.proto import commands as c
from imap.proto import replies
from imap.proto.reader import MAX_NUMBER64, Reader
from imap.proto.seqset import SequenceSet


def _uid_set(reader: Reader) -> SequenceSet:
    return SequenceSet.parse(reader.sequence_set_text())


def _qresync(reader: Reader) -> c.QresyncParams:
    reader.expect(b"(")
    uidvalidity = reader.number(nonzero=True)
    reader.sp()
    modseq = reader.number(maximum=MAX_NUMBER64)  # mod-sequence-value; 0 is allowed by Dovecot
    known: SequenceSet | None = None
    match: tuple[SequenceSet, SequenceSet] | None = None
    if reader.maybe_sp():
        if reader.peek_is(b"("):  # seq-match-data without known-uids
            match = _seq_match(reader)
        else:
            known = _uid_set(reader)
            if reader.maybe_sp():
                match = _seq_match(reader)
    reader.expect(b")")
    return c.QresyncParams(uidvalidity, modseq, known, match)


def _seq_match(reader: Reader) -> tuple[SequenceSet, SequenceSet]:
    """``"(" known-sequence-set SP known-uid-set ")"``: the same number of members in each."""
    reader.expect(b"(")
    seqs = _uid_set(reader)
    reader.sp()
    uids = _uid_set(reader)
    reader.expect(b")")
    if seqs.uses_star or uids.uses_star or _count(seqs) != _count(uids):
        raise reader.error(replies.INVALID_SEQ_MATCH_DATA)
    return seqs, uids


def _count(values: SequenceSet) -> int:
    return sum(hi - lo + 1 for lo, hi in ((lo or 0, hi or 0) for lo, hi in values.ranges))


def select_params(reader: Reader) -> tuple[bool, c.QresyncParams | None]:
    """RFC 4466 §2.1 ``SP "(" select-param *(SP select-param) ")"`` after the mailbox name."""
    condstore = False
    qresync: c.QresyncParams | None = None
    reader.expect(b"(")
    while True:
        word = reader.keyword()
        if word == "CONDSTORE" and not condstore:
            condstore = True
        elif word == "QRESYNC" and qresync is None:
            reader.sp()
            qresync = _qresync(reader)
        else:
            raise reader.error(replies.UNKNOWN_SELECT_PARAMETER)
        if reader.peek_is(b")"):
            reader.pos += 1
            return condstore, qresync
        reader.sp()


def fetch_modifiers(reader: Reader) -> tuple[int | None, bool]:
    """``SP "(" fetch-modifier *(SP fetch-modifier) ")"``: (CHANGEDSINCE value, VANISHED)."""
    reader.sp()
    reader.expect(b"(")
    changed_since: int | None = None
    vanished = False
    while True:
        word = reader.keyword()
        if word == "CHANGEDSINCE" and changed_since is None:
            reader.sp()
            changed_since = reader.number(maximum=MAX_NUMBER64)
        elif word == "VANISHED" and not vanished:
            vanished = True
        else:
            raise reader.error(replies.UNKNOWN_MODIFIER)
        if reader.peek_is(b")"):
            reader.pos += 1
            break
        reader.sp()
    if vanished and changed_since is None:
        raise reader.error(replies.VANISHED_NEEDS_CHANGEDSINCE)  # RFC 7162 §3.2.6
    return changed_since, vanished
