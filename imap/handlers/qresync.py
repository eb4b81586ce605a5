"""QRESYNC (RFC 7162 §3.2): ``ENABLE QRESYNC``, the SELECT / EXAMINE ``QRESYNC`` parameter
(``* VANISHED (EARLIER)`` for what was expunged since the client's mod-sequence, then a
``FETCH`` of each message changed since), and the ``VANISHED`` modifier of UID FETCH.

Once QRESYNC is enabled the selected view reports expunges as ``* VANISHED uid-set``
(:meth:`imap.selected_view.SelectedView.flush_expunges`); the store remembers each expunged
UID with the mod-sequence of its expunge (:meth:`imap.backend.Mailboxes.expunged_since`), for a
bounded time: past it the answer is the full one of §3.2.5.2 (:class:`imap.backend.Vanished`).
"""

from __future__ import annotations

from collections.abc import Sequence

from imap import uid_ranges
from imap.enabled import Enabled
from imap.proto import commands as c
from imap.proto import encoder, replies
from imap.proto.errors import BadCommand
from imap.proto.replies import Reply
from imap.proto.seqset import SequenceSet
from imap.selected_view import SelectedView
from imap.session import Session


async def enable(s: Session) -> None:
    """RFC 7162 §3.2.3: QRESYNC, and with it CONDSTORE (§3.1)."""
    await s.enable_condstore()
    s.enable(Enabled.QRESYNC)
    if s.view is not None:
        s.view.qresync = True


async def expunged_ok(s: Session, name: str) -> Reply:
    """EXPUNGE's tagged OK with QRESYNC: ``[HIGHESTMODSEQ n]`` of the mailbox after it."""
    return replies.EXPUNGED_MODSEQ.with_arg((await s.boxes.folder_status(name)).highestmodseq)


def check_select(s: Session, cmd: c.Select) -> None:
    """RFC 7162 §3.2.5: the QRESYNC parameter without ``ENABLE QRESYNC`` first is a BAD."""
    if cmd.qresync is not None and not s.qresync:
        raise BadCommand(replies.QRESYNC_NOT_ENABLED)


def _in(uids: Sequence[int], wanted: SequenceSet | None) -> list[int]:
    if wanted is None or not uids:
        return list(uids)
    return wanted.filter(sorted(uids), max(uids))


def vanished_earlier(ranges: Sequence[tuple[int, int]]) -> bytes:
    return encoder.untagged("VANISHED (EARLIER) " + uid_ranges.format_ranges(ranges))


async def resync(s: Session, cmd: c.Select, view: SelectedView) -> None:
    """After SELECT / EXAMINE's usual responses (§3.2.5.1): nothing when the UIDVALIDITY the
    client knows is not the mailbox's (it must then resynchronise in full). The UIDs expunged
    since the client's mod-sequence come from the store: exact while it still keeps every
    expunge above it, else every UID below UIDNEXT that no longer exists (§3.2.5.2 allows
    UIDs the client never saw), so the seq-match-data (a hint for servers that forget) is
    checked for syntax only; the known-uids narrow the answer."""
    view.qresync = s.qresync
    params = cmd.qresync
    if params is None or params.uidvalidity != view.uidvalidity:
        return
    vanished = await s.boxes.expunged_since(view.name, params.modseq)
    gone = uid_ranges.without(vanished.ranges, view.uids)
    if gone and params.known_uids is not None:
        gone = uid_ranges.intersect(gone, params.known_uids.resolve(uid_ranges.highest(gone)))
    if gone:
        await s.send(vanished_earlier(gone))
    changed = [u for u in view.uids if view.meta[u].modseq > params.modseq]
    for uid in _in(changed, params.known_uids):
        await s.send(view.flags_response(view.meta[uid], condstore=True))


async def fetch_vanished(s: Session, cmd: c.Fetch) -> None:
    """``UID FETCH set (CHANGEDSINCE m VANISHED)`` (§3.2.6): ``* VANISHED (EARLIER)`` for the
    UIDs of the set expunged since ``m`` (or, when the store forgot some of those, every UID
    of the set below UIDNEXT that no longer exists), before the FETCH responses. The UIDs
    this session still shows (expunges not yet reported) are left for its own VANISHED."""
    if not cmd.vanished:
        return
    if not s.qresync:
        raise BadCommand(replies.QRESYNC_NOT_ENABLED)
    view = s.selected
    assert cmd.changed_since is not None  # the grammar requires it
    vanished = await s.boxes.expunged_since(view.name, cmd.changed_since)
    gone = uid_ranges.without(vanished.ranges, view.uids)
    if gone:
        top = max(uid_ranges.highest(gone), view.uids[-1] if view.uids else 0)
        gone = uid_ranges.intersect(gone, cmd.sequence_set.resolve(top))
    if gone:
        await s.send(vanished_earlier(gone))
