"""What a selected mailbox's view remembers of SEARCHes: the SEARCHRES saved result
(RFC 5182) and the CONTEXT=SEARCH update contexts (RFC 5267 §4).

Both live in the :class:`~imap.selected_view.SelectedView`, so SELECT, EXAMINE, CLOSE and
UNSELECT (a new view, or none) end them (RFC 5182 §2.1, RFC 5267 §4.2).

``$`` (RFC 5182 §2.1) is a set of *messages*: kept as UIDs, it names the same messages in
``FETCH $`` and ``UID FETCH $``; an expunged message leaves it, a new one never joins it.

An update context (RFC 5267 §4.2) holds the UIDs its search matches now. After each
command, IDLE wake-up or NOOP, :meth:`SearchState.changes` searches again the messages whose
MODSEQ rose (flags changed; every change raises it, RFC 7162 §3.1) or that are new, and
tells the client ``* ESEARCH (TAG "t") [UID] ADDTO (0 set)`` / ``REMOVEFROM (0 set)``
(position 0: a SEARCH result is in ascending order, RFC 5267 §4.3). Expunged members are
reported by :meth:`SearchState.expunging`, *before* the ``EXPUNGE`` responses, while their
sequence numbers are still valid, as Dovecot does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from imap.backend import MessageMeta
from imap.proto import encoder
from imap.proto.seqset import format_uids

#: Of these UIDs (ascending, all in the view), the ones the search matches now.
Evaluate = Callable[[Sequence[int]], Awaitable[set[int]]]

MAX_CONTEXTS = 16  # per session; more answer NOUPDATE (RFC 5267 §4.2)


class ViewState(Protocol):
    """What :class:`SearchState` reads of the selected view."""

    uids: list[int]
    meta: dict[int, MessageMeta]
    pending_expunge: set[int]

    def seq_of(self, uid: int) -> int | None: ...


@dataclass(slots=True)
class UpdateContext:
    tag: str
    uid: bool  # numbers in ADDTO / REMOVEFROM are UIDs (UID SEARCH), else sequence numbers
    evaluate: Evaluate
    result: set[int]  # UIDs
    modseq: int  # changes up to this MODSEQ are in ``result``
    last_uid: int  # messages up to this UID were looked at


def highest_modseq(meta: Mapping[int, MessageMeta]) -> int:
    return max((m.modseq for m in meta.values()), default=0)


def _line(ctx: UpdateContext, word: str, numbers: Iterable[int]) -> bytes:
    head = "ESEARCH (TAG " + encoder.quoted(ctx.tag).decode("ascii") + ")" + (" UID" if ctx.uid else "")
    return encoder.untagged(f"{head} {word} (0 {format_uids(list(numbers))})".encode("ascii"))


class SearchState:
    def __init__(self) -> None:
        self.saved: frozenset[int] = frozenset()  # RFC 5182 ``$``, as UIDs
        self.contexts: dict[str, UpdateContext] = {}

    # --- RFC 5182 ---------------------------------------------------------------------
    def saved_pairs(self, view: ViewState) -> list[tuple[int, int]]:
        """(seq, uid) of the saved messages still in the view, ascending."""
        out = []
        for uid in sorted(self.saved):
            seq = view.seq_of(uid)
            if seq is not None:
                out.append((seq, uid))
        return out

    # --- RFC 5267 §4 ------------------------------------------------------------------
    def add(self, tag: str, uid: bool, evaluate: Evaluate, result: Iterable[int], view: ViewState) -> bool:
        """Keep updating the result of SEARCH ``tag``; False when there are too many already
        (a SEARCH that reuses a tag replaces that tag's context)."""
        if tag not in self.contexts and len(self.contexts) >= MAX_CONTEXTS:
            return False
        self.contexts[tag] = UpdateContext(tag, uid, evaluate, set(result), highest_modseq(view.meta),
                                           view.uids[-1] if view.uids else 0)
        return True

    def cancel(self, tags: Iterable[str]) -> bool:
        """CANCELUPDATE (RFC 5267 §4.3); False when one of the tags has no context (none ends)."""
        tags = list(tags)
        if any(t not in self.contexts for t in tags):
            return False
        for tag in tags:
            del self.contexts[tag]
        return True

    def expunging(self, uids: Iterable[int], view: ViewState) -> list[bytes]:
        """REMOVEFROM for the members of each context about to be reported expunged; called
        before the view drops them, so sequence numbers are those the client knows."""
        gone = set(uids)
        if not gone:
            return []
        self.saved -= gone
        out: list[bytes] = []
        for ctx in self.contexts.values():
            removed = ctx.result & gone
            if not removed:
                continue
            ctx.result -= removed
            out.append(_line(ctx, "REMOVEFROM", removed if ctx.uid else
                             [s for s in map(view.seq_of, removed) if s is not None]))
        return out

    async def changes(self, view: ViewState) -> list[bytes]:
        """ADDTO / REMOVEFROM for messages changed or new since each context last looked;
        messages waiting to be reported expunged are left for :meth:`expunging`."""
        out: list[bytes] = []
        if not self.contexts:
            return out
        top_modseq = highest_modseq(view.meta)
        top_uid = view.uids[-1] if view.uids else 0
        for ctx in list(self.contexts.values()):
            if top_modseq <= ctx.modseq and top_uid <= ctx.last_uid:
                continue
            candidates = [u for u in view.uids if u in view.meta and u not in view.pending_expunge
                          and (u > ctx.last_uid or view.meta[u].modseq > ctx.modseq)]
            matched = await ctx.evaluate(candidates) if candidates else set()
            if self.contexts.get(ctx.tag) is not ctx:
                continue  # cancelled meanwhile
            ctx.modseq, ctx.last_uid = max(ctx.modseq, top_modseq), max(ctx.last_uid, top_uid)
            added = sorted(matched - ctx.result)
            removed = sorted(ctx.result.intersection(candidates) - matched)
            ctx.result |= set(added)
            ctx.result -= set(removed)
            for word, uids in (("REMOVEFROM", removed), ("ADDTO", added)):
                if uids:
                    out.append(_line(ctx, word, uids if ctx.uid else
                                     [s for s in map(view.seq_of, uids) if s is not None]))
        return out
