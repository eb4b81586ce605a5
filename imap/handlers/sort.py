"""SORT and UID SORT (RFC 5256 §3), SORT=DISPLAY (RFC 5957), ESORT (RFC 5267 §3.2).

The messages are those SEARCH would find (:func:`imap.handlers.search.matching`); the keys
come from the session's view (ARRIVAL = INTERNALDATE, SIZE) and from the sealed ENVELOPE
summaries (no body is decrypted for a sort): :mod:`imap.message.sortkeys`. Messages equal
on every key keep their mailbox order (RFC 5256 §3); ``REVERSE`` turns one key around.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from imap.backend import MessageMeta, MessageSummary
from imap.handlers.fetch import CHUNK
from imap.handlers.search import esearch_line, searched, uses_modseq
from imap.message.sortkeys import base_subject, display_key, mailbox_key, sent_date
from imap.proto import commands as c
from imap.proto import encoder, replies
from imap.proto.replies import Reply
from imap.proto.structure import Envelope
from imap.session import Session

_EMPTY = Envelope()
SortValue = dt.datetime | int | str
Item = tuple[int, MessageMeta, Envelope]


def _sent(item: Item) -> dt.datetime:
    """RFC 5256 §3 DATE."""
    return sent_date(item[2].date, item[1].internal_date)


_KEYS: dict[str, Callable[[Item], SortValue]] = {
    "ARRIVAL": lambda item: item[1].internal_date,
    "SIZE": lambda item: item[1].size,
    "DATE": _sent,
    "SUBJECT": lambda item: base_subject(item[2].subject),
    "FROM": lambda item: mailbox_key(item[2].from_),
    "TO": lambda item: mailbox_key(item[2].to),
    "CC": lambda item: mailbox_key(item[2].cc),
    "DISPLAYFROM": lambda item: display_key(item[2].from_),
    "DISPLAYTO": lambda item: display_key(item[2].to),
}


async def sort(s: Session, cmd: c.Sort) -> Reply:
    view = s.selected
    result = await searched(s, cmd.criteria)
    key, found = result.key, result.found
    summaries: dict[int, MessageSummary] = {}
    if any(k.key not in ("ARRIVAL", "SIZE") for k in cmd.keys):
        for start in range(0, len(found), CHUNK):
            uids = [meta.uid for _, meta in found[start : start + CHUNK]]
            got: Mapping[int, MessageSummary] = await s.boxes.fetch_summaries(view.name, uids)
            summaries.update(got)
    items: list[Item] = [(seq, meta, summaries[meta.uid].envelope if meta.uid in summaries else _EMPTY)
                         for seq, meta in found]
    for sort_key in reversed(cmd.keys):  # stable passes, last key first: ties keep mailbox order
        items.sort(key=_KEYS[sort_key.key], reverse=sort_key.reverse)
    numbers = [meta.uid if cmd.uid else seq for seq, meta, _ in items]
    if cmd.return_options is not None:  # RFC 5267 §3.2: MIN / MAX are the lowest / highest numbers
        ascending = sorted((meta.uid if cmd.uid else seq, meta.modseq) for seq, meta in found)
        await s.send(esearch_line(cmd.tag, cmd.uid, cmd.return_options, ascending,
                                  modseq=uses_modseq(key), order=numbers))
        return result.done(replies.SORT_COMPLETED)
    line = ("SORT " + " ".join(map(str, numbers))).strip()
    if uses_modseq(key) and found:  # RFC 7162 §3.1.5: SORT carries it as SEARCH does
        line += f" (MODSEQ {max(meta.modseq for _, meta in found)})"
    await s.send(encoder.untagged(line.encode("ascii")))
    return result.done(replies.SORT_COMPLETED)
