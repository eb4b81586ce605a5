"""SEARCH and UID SEARCH (RFC 3501 §6.4.4, CHARSET UTF-8; RFC 7162 §3.1.5 MODSEQ; RFC 4731
ESEARCH; RFC 5182 SEARCHRES ``SAVE`` and ``$``; RFC 5267 §4 ``PARTIAL``, ``UPDATE`` and
CANCELUPDATE, whose contexts :mod:`imap.search_context` keeps; RFC 5032 OLDER / YOUNGER; RFC 8474
§6 EMAILID / THREADID; RFC 8514 §4.3 SAVEDBEFORE / SAVEDON / SAVEDSINCE / SAVEDATESUPPORTED, from
:meth:`imap.backend.Mailboxes.fetch_objects`).

Flags, dates, sizes, UIDs and MODSEQ come from the session's view; header and text keys
need the message, which is decrypted only then (``fetch_raw``). Matching is a
case-insensitive substring test on decoded text (RFC 2047 words decoded, transfer
encodings undone), as §6.4.4 asks.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parsedate_to_datetime

from imap.backend import MessageMeta, MessageObject, MessageSummary
from imap.enabled import Enabled
from imap.handlers.fetch import CHUNK, batches
from imap.proto import command_types as t
from imap.proto import commands as c
from imap.proto import encoder, replies
from imap.proto.errors import BadCommand, CommandFailed
from imap.proto.flags import is_recent, is_system
from imap.proto.replies import Reply
from imap.proto.seqset import SequenceSet, format_uids
from imap.proto.structure import Envelope
from imap.session import Session


@dataclass(slots=True)
class _Candidate:
    seq: int
    meta: MessageMeta
    recent: bool = False
    raw: bytes | None = None
    summary: MessageSummary | None = None
    obj: MessageObject | None = None  # EMAILID / THREADID / save date, when a key needs them
    _headers: Message | None = field(default=None)

    @property
    def headers(self) -> Message:
        if self._headers is None:
            self._headers = email.message_from_bytes(self.raw or b"", policy=email.policy.compat32)
        return self._headers


_ENVELOPE_HEADERS = {"FROM", "TO", "CC", "BCC", "SUBJECT"}
SUMMARY_CHUNK = 2000  # messages per batch when no body is read (summaries are small, often cached)


def _any(key: t.SearchKey, test: Callable[[t.SearchKey], bool]) -> bool:
    if isinstance(key, t.SearchNot):
        return _any(key.key, test)
    if isinstance(key, t.SearchOr):
        return _any(key.left, test) or _any(key.right, test)
    if isinstance(key, t.SearchAnd):
        return any(_any(k, test) for k in key.keys)
    return test(key)


def needs_raw(key: t.SearchKey) -> bool:
    """Keys that need the decrypted message: body text, and headers not in the ENVELOPE."""
    return _any(key, lambda k: isinstance(k, t.SearchText)
                or (isinstance(k, t.SearchHeader) and k.name.upper() not in _ENVELOPE_HEADERS))


def needs_summary(key: t.SearchKey) -> bool:
    """Keys answered from the sealed ENVELOPE summary (no body decryption)."""
    return _any(key, lambda k: (isinstance(k, t.SearchHeader) and k.name.upper() in _ENVELOPE_HEADERS)
                or (isinstance(k, t.SearchDate) and k.field is t.DateField.SENT))


def needs_objects(key: t.SearchKey) -> bool:
    """Keys on the message's object ids (RFC 8474 §6) or save date (RFC 8514 §4.3)."""
    return _any(key, lambda k: isinstance(k, t.SearchObjectId | t.SearchSaveDateSupported)
                or (isinstance(k, t.SearchDate) and k.field is t.DateField.SAVED))


def uses_modseq(key: t.SearchKey) -> bool:
    return _any(key, lambda k: isinstance(k, t.SearchModSeq))


def _decoded(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def _envelope_values(env: Envelope, name: str) -> list[str]:
    """The header as the ENVELOPE has it: subject text, or ``name <mailbox@host>`` per address."""
    upper = name.upper()
    if upper == "SUBJECT":
        return [] if env.subject is None else [env.subject]
    addresses = {"FROM": env.from_, "TO": env.to, "CC": env.cc, "BCC": env.bcc}[upper]
    out = []
    for a in addresses:
        mail = f"{a.mailbox}@{a.host}" if a.host else (a.mailbox or "")
        out.append(f"{_decoded(a.name)} <{mail}>" if a.name else mail)
    return [", ".join(out)] if out else []


def _searchable(summary: MessageSummary, upper: str) -> tuple[str, ...]:
    """The decoded, case-folded values of envelope header ``upper``, made once per summary and
    kept with it (a store caching summaries spares the next SEARCH the RFC 2047 decoding)."""
    texts = summary.searchable.get(upper)
    if texts is None:
        texts = tuple(_decoded(v).casefold() for v in _envelope_values(summary.envelope, upper))
        summary.searchable[upper] = texts
    return texts


def _has_flag(flags: frozenset[str], flag: str, recent: bool) -> bool:
    if is_recent(flag):
        return recent  # a session flag (RFC 3501 §2.3.2, imap.selected_view)
    if is_system(flag):
        return any(f.upper() == flag.upper() for f in flags)
    return flag in flags


def _compare(day: dt.date, op: t.DateOp, target: dt.date) -> bool:
    if op is t.DateOp.BEFORE:
        return day < target
    if op is t.DateOp.ON:
        return day == target
    return day >= target


def _body_text(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    texts: list[str] = []
    for part in msg.walk():
        if part.get_content_maintype() != "text":
            continue
        try:
            texts.append(str(part.get_content()))
        except (LookupError, ValueError, AssertionError):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                texts.append(payload.decode("utf-8", "replace"))
    return "\n".join(texts)


# What can make a needle appear in decoded text but not in the raw octets: transfer
# encodings, RFC 2047 words, charsets that are not ASCII-compatible.
_HIDING = (b"base64", b"quoted-printable", b"=?", b"utf-7", b"utf-16", b"utf-32", b"ucs-2")


def cannot_contain(raw: bytes, needle: str) -> bool:
    """True when ``needle`` cannot be in the decoded text of ``raw`` (so no MIME parse is
    needed to say no): an ASCII needle without spaces, an all-ASCII message with none of
    :data:`_HIDING`, and the needle absent from the octets, case-insensitively."""
    if not needle or not needle.isascii() or any(c.isspace() for c in needle) or not raw.isascii():
        return False
    low = raw.lower()
    return not any(h in low for h in _HIDING) and needle.lower().encode("ascii") not in low


def matches(key: t.SearchKey, m: _Candidate, *, exists: int, max_uid: int) -> bool:
    def rec(k: t.SearchKey) -> bool:
        return matches(k, m, exists=exists, max_uid=max_uid)

    if isinstance(key, t.SearchAll):
        return True
    if isinstance(key, t.SearchFlag):
        return _has_flag(m.meta.flags, key.flag, m.recent) == key.present
    if isinstance(key, t.SearchSize):
        return m.meta.size > key.size if key.larger else m.meta.size < key.size
    if isinstance(key, t.SearchSet):
        return key.sequence_set.contains(m.meta.uid, max_uid) if key.uid else key.sequence_set.contains(m.seq, exists)
    if isinstance(key, t.SearchModSeq):
        return m.meta.modseq >= key.modseq
    if isinstance(key, t.SearchNot):
        return not rec(key.key)
    if isinstance(key, t.SearchOr):
        return rec(key.left) or rec(key.right)
    if isinstance(key, t.SearchAnd):
        return all(rec(k) for k in key.keys)
    if isinstance(key, t.SearchAge):  # RFC 5032 §3: against INTERNALDATE, to the second
        age = (dt.datetime.now(dt.UTC) - m.meta.internal_date).total_seconds()
        return age >= key.seconds if key.older else age < key.seconds
    if isinstance(key, t.SearchObjectId):
        if m.obj is None:
            return False
        return (m.obj.email_id if key.kind == "EMAILID" else m.obj.thread_id) == key.value
    if isinstance(key, t.SearchSaveDateSupported):
        return m.obj is not None  # RFC 8514 §4.3: every mailbox here keeps save dates
    if isinstance(key, t.SearchDate):
        if key.field is t.DateField.INTERNAL:
            return _compare(m.meta.internal_date.date(), key.op, key.date)
        if key.field is t.DateField.SAVED:
            return m.obj is not None and _compare(m.obj.save_date.date(), key.op, key.date)
        value = m.summary.envelope.date if m.summary is not None else m.headers.get("Date")
        try:
            sent = parsedate_to_datetime(str(value)) if value is not None else None
        except (TypeError, ValueError, IndexError):
            sent = None
        return sent is not None and _compare(sent.date(), key.op, key.date)
    if isinstance(key, t.SearchHeader):
        if m.summary is not None and key.name.upper() in _ENVELOPE_HEADERS:
            texts = _searchable(m.summary, key.name.upper())
        else:
            texts = tuple(_decoded(str(v)).casefold() for v in m.headers.get_all(key.name) or [])
        if not key.value:
            return bool(texts)
        needle = key.value.casefold()
        return any(needle in text for text in texts)
    if isinstance(key, t.SearchText):
        raw = m.raw or b""
        if cannot_contain(raw, key.value):
            return False  # most messages of a BODY / TEXT search: no parse (issue 8)
        needle = key.value.casefold()
        if key.scope is t.TextScope.TEXT:
            header_text = " ".join(_decoded(str(v)) for v in m.headers.values())
            if needle in header_text.casefold():
                return True
        return needle in _body_text(raw).casefold()
    return False


Test = Callable[[_Candidate], bool]


def predicate(key: t.SearchKey, *, exists: int, max_uid: int) -> Test:
    """``key`` made a test of one candidate, once per SEARCH: NOT / OR / AND become closures
    over their parts' tests and an envelope header key a substring test on the summary's
    kept text (:func:`_searchable`), so the per-message work is the test alone; every other
    key is :func:`matches`."""
    if isinstance(key, t.SearchNot):
        inner = predicate(key.key, exists=exists, max_uid=max_uid)
        return lambda m: not inner(m)
    if isinstance(key, t.SearchOr):
        left, right = (predicate(k, exists=exists, max_uid=max_uid) for k in (key.left, key.right))
        return lambda m: left(m) or right(m)
    if isinstance(key, t.SearchAnd):
        parts = tuple(predicate(k, exists=exists, max_uid=max_uid) for k in key.keys)
        return lambda m: all(part(m) for part in parts)
    if isinstance(key, t.SearchHeader) and key.name.upper() in _ENVELOPE_HEADERS:
        upper, needle = key.name.upper(), key.value.casefold()

        def header(m: _Candidate) -> bool:
            if m.summary is None:
                return matches(key, m, exists=exists, max_uid=max_uid)
            texts = m.summary.searchable.get(upper)
            if texts is None:
                texts = _searchable(m.summary, upper)
            if not needle:
                return bool(texts)
            for text in texts:
                if needle in text:
                    return True
            return False

        return header
    return lambda m: matches(key, m, exists=exists, max_uid=max_uid)


@dataclass
class Searched:
    """What SEARCH, SORT and THREAD work on: the key, the (sequence number, meta) of the messages
    it matches in ascending order, and whether messages expunged by another session (numbered
    here until the session is told) were left out, which their tagged OK says (:meth:`done`)."""

    key: t.SearchKey
    found: list[tuple[int, MessageMeta]]
    left_out: bool = False

    def done(self, reply: Reply) -> Reply:
        return reply.expunge_issued() if self.left_out else reply


async def matching(s: Session, key: t.SearchKey,
                   only: Collection[int] | None = None) -> tuple[list[tuple[int, MessageMeta]], bool]:
    """(sequence number, meta) of the selected messages ``key`` matches, ascending, with ``only``
    of those UIDs only (RFC 5267 §4.2 updates); and whether messages already expunged (by
    another session) were left out."""
    view = s.selected
    raw_needed, summary_needed, objects_needed = needs_raw(key), needs_summary(key), needs_objects(key)
    exists, max_uid = view.exists, (view.uids[-1] if view.uids else 0)
    pairs = [(seq, uid) for seq, uid in enumerate(list(view.uids), 1)
             if uid in view.meta and uid not in view.pending_expunge and (only is None or uid in only)]
    left_out = any(uid in view.pending_expunge for uid in view.uids if only is None or uid in only)
    found: list[tuple[int, MessageMeta]] = []
    sizes = {uid: view.meta[uid].size for _, uid in pairs}
    test = predicate(key, exists=exists, max_uid=max_uid)
    # bodies decrypted per bounded batch; summaries and flags in larger ones (a round trip each)
    for chunk in batches(pairs, sizes, raw_needed, chunk=CHUNK if raw_needed else SUMMARY_CHUNK):
        uids = [uid for _, uid in chunk]
        raws = await s.boxes.fetch_raws(view.name, uids) if raw_needed else {}
        summaries = await s.boxes.fetch_summaries(view.name, uids) if summary_needed else {}
        objects = await s.boxes.fetch_objects(view.name, uids) if objects_needed else {}
        for seq, uid in chunk:
            candidate = _Candidate(seq, view.meta[uid], uid in view.recent, raws.get(uid), summaries.get(uid),
                                   objects.get(uid))
            if (raw_needed and candidate.raw is None) or (summary_needed and candidate.summary is None) \
                    or (objects_needed and candidate.obj is None):
                left_out = True  # expunged meanwhile
                continue
            if test(candidate):
                found.append((seq, candidate.meta))
    return found, left_out


def without_saved(key: t.SearchKey, saved: frozenset[int]) -> t.SearchKey:
    """``key`` with RFC 5182 ``$`` (and ``UID $``) made the saved messages' UIDs, so it keeps
    meaning them (an update context outlives ``$``)."""
    if isinstance(key, t.SearchSet) and key.sequence_set.saved:
        return t.SearchSet(SequenceSet.of(*saved), uid=True)
    if isinstance(key, t.SearchNot):
        return t.SearchNot(without_saved(key.key, saved))
    if isinstance(key, t.SearchOr):
        return t.SearchOr(without_saved(key.left, saved), without_saved(key.right, saved))
    if isinstance(key, t.SearchAnd):
        return t.SearchAnd(tuple(without_saved(k, saved) for k in key.keys))
    return key


async def searched(s: Session, criteria: t.SearchKey | None) -> Searched:
    """The messages ``criteria`` (ALL when absent) selects, for SEARCH, SORT and THREAD; a
    MODSEQ criterion enables CONDSTORE first (RFC 7162 §3.1). The key is kept with ``$``
    replaced by the saved messages."""
    key = without_saved(criteria or t.SearchAll(), s.selected.search.saved)
    found, left_out = await matching(s, key)
    if uses_modseq(key):
        await s.enable_condstore()
    return Searched(key, found, left_out)


def _saved(options: tuple[str, ...], found: list[tuple[int, MessageMeta]]) -> frozenset[int]:
    """RFC 5182 §2.4: with MIN and / or MAX only, ``$`` is what they return; else every match."""
    returning = set(options) - {"SAVE", "UPDATE", "CONTEXT"}
    if found and returning and returning <= {"MIN", "MAX"}:
        picked = ([found[0]] if "MIN" in options else []) + ([found[-1]] if "MAX" in options else [])
        return frozenset(meta.uid for _, meta in picked)
    return frozenset(meta.uid for _, meta in found)


async def search(s: Session, cmd: c.Search) -> Reply:
    if cmd.charset is not None and Enabled.UTF8_ACCEPT in s.enabled:
        raise BadCommand(replies.CHARSET_AFTER_UTF8)  # RFC 6855 §3
    view = s.selected
    # IMAP4rev2 answers every SEARCH with ESEARCH, RETURN () meaning ALL (RFC 9051 §6.4.4).
    options = cmd.return_options if cmd.return_options is not None or not s.enabled.rev2 else ("ALL",)
    save = options is not None and "SAVE" in options
    criteria = without_saved(cmd.criteria or t.SearchAll(), view.search.saved)
    if save:
        view.search.saved = frozenset()  # RFC 5182 §2.1: stays empty if this SEARCH fails
    result = await searched(s, criteria)
    key, found = result.key, result.found
    if options is None:
        numbers = " ".join(str(meta.uid if cmd.uid else seq) for seq, meta in found)
        line = ("SEARCH " + numbers).strip()
        if uses_modseq(key) and found:  # RFC 7162 §3.1.5
            line += f" (MODSEQ {max(meta.modseq for _, meta in found)})"
        await s.send(encoder.untagged(line.encode("ascii")))
        return result.done(replies.SEARCH_COMPLETED)
    if save:
        view.search.saved = _saved(options, found)
    if set(options) - {"SAVE"}:  # RFC 5182 §2.4: SAVE alone returns no ESEARCH
        numbered = [(meta.uid if cmd.uid else seq, meta.modseq) for seq, meta in found]
        await s.send(esearch_line(cmd.tag, cmd.uid, options, numbered, modseq=uses_modseq(key),
                                  partial=cmd.partial))
    if "UPDATE" in options:
        async def evaluate(uids: Sequence[int]) -> set[int]:
            return {meta.uid for _, meta in (await matching(s, key, set(uids)))[0]}

        if not view.search.add(cmd.tag, cmd.uid, evaluate, (meta.uid for _, meta in found), view):
            await s.send(replies.NO_UPDATES.with_arg(encoder.quoted(cmd.tag).decode("ascii")).line())
    return result.done(replies.SEARCH_COMPLETED)


async def cancel_update(s: Session, cmd: c.CancelUpdate) -> Reply:
    """RFC 5267 §4.3: no more ADDTO / REMOVEFROM for these SEARCH tags."""
    if not s.selected.search.cancel(cmd.tags):
        raise CommandFailed(replies.UNKNOWN_SEARCH_CONTEXT)
    return replies.CANCELUPDATE_COMPLETED


def esearch_line(tag: str, uid: bool, options: tuple[str, ...], found: list[tuple[int, int]], *,
                 modseq: bool, order: list[int] | None = None, partial: tuple[int, int] | None = None) -> bytes:
    """RFC 4731 §3.1: ``* ESEARCH (TAG "t") [UID] [MIN n] [MAX n] [ALL set] [COUNT n]``, from
    (number, modseq) pairs in ascending order; MIN, MAX and ALL only when something matched.
    RFC 5267 §4.4: ``PARTIAL (m:n set)`` (``NIL`` when none is in the range) after them.
    RFC 7162 §3.1.5: with a MODSEQ key, ``MODSEQ`` is the highest of the messages returned:
    all matches when ALL or COUNT is asked, else only the MIN, MAX and PARTIAL ones (RFC 4731
    §3.2). ESORT (RFC 5267 §3.2) gives ``order``: ALL lists the numbers in that (sorted) order."""
    words = ["ESEARCH", "(TAG " + encoder.quoted(tag).decode("ascii") + ")"]
    if uid:
        words.append("UID")
    returned: list[tuple[int, int]] = []
    if found:
        if "MIN" in options:
            words.append(f"MIN {found[0][0]}")
            returned.append(found[0])
        if "MAX" in options:
            words.append(f"MAX {found[-1][0]}")
            returned.append(found[-1])
        if "ALL" in options:
            words.append("ALL " + (format_uids([n for n, _ in found]) if order is None else runs(order)))
    if partial is not None:
        window = partial_window(found, partial)
        returned += window
        words.append(f"PARTIAL ({partial[0]}:{partial[1]} {format_uids([n for n, _ in window]) or 'NIL'})")
    if "COUNT" in options:
        words.append(f"COUNT {len(found)}")
    if "ALL" in options or "COUNT" in options:
        returned = found
    if modseq and returned:
        words.append(f"MODSEQ {max(m for _, m in returned)}")
    return encoder.untagged(" ".join(words).encode("ascii"))


def partial_window(found: list[tuple[int, int]], partial: tuple[int, int]) -> list[tuple[int, int]]:
    """The results at positions ``first..last`` (1 is the first; RFC 9394: -1 is the last)."""
    first, last = partial
    if first < 0:  # -1:-n: the last n, still in ascending order
        first, last = len(found) + 1 + last, len(found) + 1 + first
    return found[max(first, 1) - 1 : max(last, 0)]


def runs(numbers: list[int]) -> str:
    """A sequence-set in the given order: ``a:b`` only for ascending runs (``3:4,2,1``)."""
    parts: list[str] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(parts)
