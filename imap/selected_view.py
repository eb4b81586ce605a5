"""The per-session view of the selected mailbox: sequence numbers ↔ UIDs and what the
client has been told (RFC 3501 §2.3.1.2, §5.2, §7.4.1).

The view is the only place that turns store changes into untagged ``EXISTS``,
``EXPUNGE`` and ``FETCH (FLAGS ...)`` responses. Expunges found while the client may
not hear about them (during FETCH, STORE, SEARCH: RFC 3501 §7.4.1) stay *pending*: the
message keeps its sequence number until a command that allows ``EXPUNGE`` runs.

\\Recent (RFC 3501 §2.3.2): a read-write session takes the messages it is the first to see
with :meth:`~imap.backend.Mailboxes.claim_recent` (at SELECT and when new mail shows up), so
exactly one session sees each as recent; a read-only one (EXAMINE, §6.3.2) sees those nobody
took yet, without taking them. Keywords (§7.2.6): ``FLAGS`` lists those in use in the mailbox
and grows, announced before any ``FETCH`` that carries a new one.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from imap.backend import FolderStatus, Mailboxes, MessageMeta
from imap.proto import encoder, replies
from imap.proto.errors import BadCommand
from imap.proto.flags import RECENT, SYSTEM_FLAGS
from imap.proto.seqset import SequenceSet, format_uids
from imap.search_context import SearchState


def _keywords(metas: Iterable[MessageMeta]) -> set[str]:
    return {flag for meta in metas for flag in meta.flags if not flag.startswith("\\")}


class SelectedView:
    def __init__(self, name: str, status: FolderStatus, messages: Sequence[MessageMeta], *,
                 read_only: bool) -> None:
        self.name = name
        self.read_only = read_only
        self.uidvalidity = status.uidvalidity
        self.uidnext = status.uidnext
        self.highestmodseq = status.highestmodseq
        self.uids: list[int] = [m.uid for m in messages]
        self.meta: dict[int, MessageMeta] = {m.uid: m for m in messages}
        self.pending_expunge: set[int] = set()
        self.keywords: set[str] = _keywords(messages)  # announced in FLAGS
        self.permanent = status.permanent_flags  # with "\\*": keywords can be created
        self.recent: set[int] = set()  # UIDs this session sees as \Recent
        self.recent_mark = status.recent_uid  # UIDs above it: nobody took them when we last looked
        self.search = SearchState()  # RFC 5182 ``$``, RFC 5267 update contexts, per selection
        self.qresync = False  # RFC 7162 §3.2.10: VANISHED instead of EXPUNGE once QRESYNC is enabled
        # An IMAP4rev2 session (RFC 9051 Appendix E): takes and shows no \Recent (item 12),
        # puts UID in every unsolicited FETCH (item 21).
        self.rev2 = False

    # --- \Recent (RFC 3501 §2.3.2) and FLAGS (§7.2.6) -------------------------------
    async def take_recent(self, boxes: Mailboxes, uids: Sequence[int]) -> None:
        """``uids`` (ascending) are new to this session: the ones no session took yet are its
        recent ones; a read-write session takes them (one atomic step in the store)."""
        if not uids or uids[-1] <= self.recent_mark or self.rev2:
            return
        if not self.read_only:
            self.recent_mark = await boxes.claim_recent(self.name, uids[-1])
        self.recent.update(u for u in uids if u > self.recent_mark)
        if not self.read_only:
            self.recent_mark = uids[-1]

    def flags_of(self, meta: MessageMeta) -> list[str]:
        """The FETCH FLAGS list: ``\\Recent`` (session flag) first, then the stored flags."""
        stored = sorted(meta.flags)
        return [RECENT, *stored] if meta.uid in self.recent else stored

    def flags_line(self) -> bytes:
        """``* FLAGS``: the system flags and the keywords in use (RFC 3501 §7.2.6)."""
        return encoder.untagged(b"FLAGS " + encoder.flags([*SYSTEM_FLAGS, *sorted(self.keywords)]))

    def permanent_flags_line(self) -> bytes:
        """``* OK [PERMANENTFLAGS]`` (RFC 3501 §7.1): none when read-only; else the store's,
        the keywords in use, and ``\\*`` when new keywords can be made."""
        if self.read_only:
            return replies.PERMANENT_FLAGS.with_arg("()").line()
        flags = [f for f in self.permanent if f != "\\*"] + sorted(self.keywords)
        flags += ["\\*"] if "\\*" in self.permanent else []
        return replies.PERMANENT_FLAGS.with_arg("(" + " ".join(flags) + ")").line()

    def flags_lines(self) -> list[bytes]:
        """The FLAGS update (and PERMANENTFLAGS, read-write) once a keyword is new."""
        return [self.flags_line()] + ([] if self.read_only else [self.permanent_flags_line()])

    def new_keywords(self, metas: Iterable[MessageMeta]) -> list[bytes]:
        """FLAGS lines to send before ``metas`` reach the client, if they carry a keyword
        not announced yet (nothing otherwise)."""
        new = _keywords(metas) - self.keywords
        if not new:
            return []
        self.keywords |= new
        return self.flags_lines()

    # --- lookups --------------------------------------------------------------------
    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def resolve(self, sequence_set: SequenceSet, *, uid: bool) -> list[tuple[int, int]]:
        """(seq, uid) pairs named by a set, ascending. Sequence numbers beyond EXISTS are
        a BAD (RFC 3501 §9 seq-number); UIDs that do not exist are ignored (§6.4.8).
        ``$`` (RFC 5182 §2.1) is the saved result, whether ``uid`` or not."""
        if sequence_set.saved:
            return self.search.saved_pairs(self)
        if uid:
            uids = self.uids
            out: list[tuple[int, int]] = []
            for lo, hi in sequence_set.resolve(uids[-1] if uids else 0):  # sorted, disjoint
                first, end = bisect.bisect_left(uids, lo), bisect.bisect_right(uids, hi)
                out += zip(range(first + 1, end + 1), uids[first:end], strict=True)
            return out
        sequence_set.check_sequence_numbers(self.exists)
        return [(seq, self.uids[seq - 1]) for seq in sequence_set.iter(self.exists)]

    def first_unseen(self) -> int | None:
        for seq, uid in enumerate(self.uids, 1):
            if "\\Seen" not in self.meta[uid].flags:
                return seq
        return None

    def update(self, meta: MessageMeta) -> None:
        if meta.uid in self.meta:
            self.meta[meta.uid] = meta

    # --- changes --------------------------------------------------------------------
    async def refresh(self, boxes: Mailboxes, *, allow_expunge: bool, condstore: bool) -> list[bytes]:
        """Catch up with the store; return the untagged responses to send now."""
        out: list[bytes] = []
        grew = False
        recent = len(self.recent)
        # Every change (append, flags, expunge) raises the folder's HIGHESTMODSEQ, so one
        # cheap look at it (a zero-timeout wait) tells whether there is anything to fetch.
        if await boxes.wait_for_change(self.name, self.highestmodseq, 0.0):
            out, grew = await self._catch_up(boxes, condstore=condstore)
        if allow_expunge:
            out += self.flush_expunges()
        if grew:  # after the EXPUNGEs, so the count is the client's new view (RFC 3501 §7.3.1)
            out.append(encoder.untagged(b"%d EXISTS" % self.exists))
            if len(self.recent) != recent:  # RFC 3501 §7.3.2
                out.append(encoder.untagged(b"%d RECENT" % len(self.recent)))
        return out

    async def _catch_up(self, boxes: Mailboxes, *, condstore: bool) -> tuple[list[bytes], bool]:
        out: list[bytes] = []
        status = await boxes.folder_status(self.name)
        changed: Sequence[MessageMeta] = ()
        if status.highestmodseq != self.highestmodseq:
            changed = await boxes.list_messages(self.name, changed_since=self.highestmodseq)
        known_live = len(self.uids) - len(self.pending_expunge)
        new = [m for m in changed if m.uid not in self.meta]
        if status.messages != known_live + len(new):
            # Something was expunged (or we missed an append): compare full UID lists.
            everything = await boxes.list_messages(self.name)
            live = {m.uid for m in everything}
            self.pending_expunge |= {u for u in self.uids if u not in live}
            changed = everything
            new = [m for m in everything if m.uid not in self.meta]
        self.highestmodseq = status.highestmodseq
        self.uidnext = max(self.uidnext, status.uidnext)
        if not self.read_only:  # taken by another session already: no write to try for them
            self.recent_mark = max(self.recent_mark, status.recent_uid)
        out += self.new_keywords(m for m in changed if m.uid not in self.pending_expunge)
        for meta in changed:
            old = self.meta.get(meta.uid)
            if old is None or meta.uid in self.pending_expunge:
                continue
            self.meta[meta.uid] = meta
            if old.flags != meta.flags or (condstore and old.modseq != meta.modseq):
                out.append(self.flags_response(meta, condstore=condstore))
        added: list[int] = []
        for meta in sorted(new, key=lambda m: m.uid):
            if self.uids and meta.uid < self.uids[-1]:
                continue  # UIDs only grow (RFC 3501 §2.3.1.1); ignore anything odd
            self.uids.append(meta.uid)
            self.meta[meta.uid] = meta
            added.append(meta.uid)
        await self.take_recent(boxes, added)
        return out, bool(added)

    def flush_expunges(self) -> list[bytes]:
        """``* n EXPUNGE`` for each pending expunge, highest first so numbers stay valid;
        RFC 5267 §4.2 REMOVEFROM before them; with QRESYNC one ``* VANISHED uid-set`` instead of
        the EXPUNGE lines (RFC 7162 §3.2.10)."""
        removed = self.search.expunging(self.pending_expunge, self)
        out: list[bytes] = []
        gone: list[int] = []
        for uid in sorted(self.pending_expunge, reverse=True):
            seq = self.seq_of(uid)
            if seq is not None:
                del self.uids[seq - 1]
                self.meta.pop(uid, None)
                self.recent.discard(uid)
                gone.append(uid)
                out.append(encoder.untagged(b"%d EXPUNGE" % seq))
        self.pending_expunge.clear()
        if self.qresync and gone:
            return [*removed, encoder.untagged("VANISHED " + format_uids(gone))]
        return [*removed, *out]

    def expunged(self, uids: Iterable[int]) -> list[bytes]:
        """Our own EXPUNGE / MOVE: report at once (the command allows it)."""
        self.pending_expunge |= set(uids)
        return self.flush_expunges()

    def flags_response(self, meta: MessageMeta, *, condstore: bool, uid: bool = False) -> bytes:
        """Unsolicited ``* n FETCH (FLAGS ...)``; RFC 7162 §3.2: MODSEQ once CONDSTORE is on."""
        seq = self.seq_of(meta.uid)
        if seq is None:
            raise BadCommand(replies.MESSAGE_VANISHED)  # never reached: callers hold known UIDs
        items: list[tuple[str, encoder.Value]] = []
        if uid or condstore or self.rev2:
            items.append(("UID", meta.uid))
        items.append(("FLAGS", encoder.Raw(encoder.flags(self.flags_of(meta)))))
        if condstore:
            items.append(("MODSEQ", [meta.modseq]))
        return encoder.fetch_response(seq, items)
