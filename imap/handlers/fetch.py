"""FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2; RFC 7162 §3.1.4 CHANGEDSINCE / MODSEQ;
RFC 3516 §4.3 BINARY, BINARY.PEEK and BINARY.SIZE; RFC 8474 §5 EMAILID / THREADID; RFC 8514
§4.2 SAVEDATE; RFC 8970 PREVIEW).

ENVELOPE, BODYSTRUCTURE and PREVIEW come from the store's cached summaries; the message is
only decrypted (``fetch_raw``) when body octets are asked for, or for ``PREVIEW`` (not
``PREVIEW (LAZY)``, which is NIL then) of a message stored before previews were made at
delivery. Work is done in chunks so a
``1:*`` over a large folder streams out with bounded memory.
"""

from __future__ import annotations

from collections.abc import Mapping

from imap.backend import MessageMeta, MessageObject, MessageSummary
from imap.handlers.qresync import fetch_vanished
from imap.message import mime, transfer
from imap.message.preview import preview
from imap.proto import commands as c
from imap.proto import encoder, replies
from imap.proto.command_types import FetchAttr, FetchBody, FetchItem, Section, SectionText
from imap.proto.commands import StoreMode
from imap.proto.dates import format_date_time
from imap.proto.errors import CommandFailed
from imap.proto.replies import Reply
from imap.session import Session

CHUNK = 200
RAW_BATCH = 16 * 1024 * 1024  # decrypted octets held at once by one FETCH
_SUMMARY = {FetchAttr.ENVELOPE, FetchAttr.BODY, FetchAttr.BODYSTRUCTURE, FetchAttr.PREVIEW, FetchAttr.PREVIEW_LAZY}
_ENCODED = {FetchAttr.ENVELOPE, FetchAttr.BODY, FetchAttr.BODYSTRUCTURE}
_OBJECT = {FetchAttr.EMAILID, FetchAttr.THREADID, FetchAttr.SAVEDATE}
_RAW = {FetchAttr.RFC822, FetchAttr.RFC822_HEADER, FetchAttr.RFC822_TEXT}
_SEEN = {FetchAttr.RFC822, FetchAttr.RFC822_TEXT}  # RFC 3501 §6.4.5: these set \Seen


def summary_of(raw: bytes) -> MessageSummary:
    root = mime.parse(raw)
    return MessageSummary(mime.envelope(root), mime.bodystructure(root), preview(root))


class _Body:
    """The decrypted message; parsed into MIME parts only when a section needs it."""

    __slots__ = ("_root", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._root: mime.Part | None = None

    @property
    def root(self) -> mime.Part:
        if self._root is None:
            self._root = mime.parse(self.raw)
        return self._root

    def section(self, spec: Section) -> bytes:
        if not spec.parts and spec.text is None:
            return self.raw  # BODY[]: the whole message, no parsing
        return mime.section(self.root, spec)

    def decoded(self, spec: Section) -> bytes:
        """RFC 3516 §4.3 ``BINARY[part]``: the part's content with its transfer encoding
        removed; ``BINARY[]`` is the whole message as stored."""
        if not spec.parts:
            return self.raw
        part = mime.find_part(self.root, spec.parts)
        if part is None:
            return b""
        try:
            return transfer.decoded(part)
        except transfer.UnknownEncoding:
            raise CommandFailed(replies.UNKNOWN_CTE) from None
        except transfer.InvalidEncoding:
            raise CommandFailed(replies.INVALID_CTE_DATA) from None


def _value(item: FetchItem, meta: MessageMeta, summary: MessageSummary | None,
           body: _Body | None, flags: list[str], obj: MessageObject | None = None,
           utf8: bool = False) -> tuple[str, encoder.Value]:
    if isinstance(item, FetchBody):
        assert body is not None
        if not item.binary:
            return item.response_name(), encoder.Literal(mime.partial(body.section(item.section), item.partial))
        content = body.decoded(item.section)
        if item.size:
            return item.response_name(), len(content)
        data = mime.partial(content, item.partial)
        # RFC 3516 §4.3: literal8 when the content holds a NUL, else a plain literal.
        return item.response_name(), encoder.Raw(b"~" + encoder.literal(data)) if b"\x00" in data \
            else encoder.Literal(data)
    if item is FetchAttr.FLAGS:
        return "FLAGS", encoder.Raw(encoder.flags(flags))
    if item is FetchAttr.INTERNALDATE:
        return "INTERNALDATE", encoder.Raw(encoder.quoted(format_date_time(meta.internal_date)))
    if item is FetchAttr.RFC822_SIZE:
        return "RFC822.SIZE", meta.size
    if item is FetchAttr.UID:
        return "UID", meta.uid
    if item is FetchAttr.MODSEQ:
        return "MODSEQ", [meta.modseq]
    if item in _OBJECT:
        assert obj is not None
        if item is FetchAttr.SAVEDATE:
            return "SAVEDATE", encoder.Raw(encoder.quoted(format_date_time(obj.save_date)))
        ident = obj.email_id if item is FetchAttr.EMAILID else obj.thread_id
        return item.value, encoder.Raw(b"NIL" if ident is None else b"(" + ident.encode("ascii") + b")")
    if item in (FetchAttr.PREVIEW, FetchAttr.PREVIEW_LAZY):
        assert summary is not None
        return "PREVIEW", summary.preview  # RFC 8970 §3: nstring
    if item in _ENCODED:
        assert summary is not None
        name = FetchAttr(item).value
        key = name + " UTF8" if utf8 and item is FetchAttr.ENVELOPE else name
        encoded = summary.encoded.get(key)
        if encoded is None:  # encoded once per summary (the store may keep it in memory)
            value = encoder.envelope(summary.envelope, utf8=utf8) if item is FetchAttr.ENVELOPE else \
                encoder.bodystructure(summary.bodystructure, extended=item is FetchAttr.BODYSTRUCTURE)
            encoded = summary.encoded[key] = encoder.encode(value)
        return name, encoder.Raw(encoded)
    assert body is not None
    text = {FetchAttr.RFC822: None, FetchAttr.RFC822_HEADER: SectionText.HEADER,
            FetchAttr.RFC822_TEXT: SectionText.TEXT}[FetchAttr(item)]
    return item.value, encoder.Literal(body.section(Section(text=text)))


def batches(pairs: list[tuple[int, int]], sizes: dict[int, int], by_size: bool, *,
            chunk: int = CHUNK) -> list[list[tuple[int, int]]]:
    """At most ``chunk`` messages, and (when bodies are read) about RAW_BATCH octets, per batch."""
    out: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    total = 0
    for pair in pairs:
        size = sizes.get(pair[1], 0) if by_size else 0
        if current and (len(current) >= chunk or total + size > RAW_BATCH):
            out.append(current)
            current, total = [], 0
        current.append(pair)
        total += size
    if current:
        out.append(current)
    return out


async def fetch(s: Session, cmd: c.Fetch) -> Reply:
    view = s.selected
    pairs = view.resolve(cmd.sequence_set, uid=cmd.uid)
    await fetch_vanished(s, cmd)  # RFC 7162 §3.2.6 (QRESYNC is on: so is CONDSTORE)
    if cmd.changed_since is not None or FetchAttr.MODSEQ in cmd.items:
        await s.enable_condstore()  # RFC 7162 §3.1
    if cmd.changed_since is not None:
        pairs = [(q, u) for q, u in pairs if u in view.meta and view.meta[u].modseq > cmd.changed_since]
    need_summary = any(i in _SUMMARY for i in cmd.items if isinstance(i, FetchAttr))
    need_objects = any(i in _OBJECT for i in cmd.items if isinstance(i, FetchAttr))
    make_preview = FetchAttr.PREVIEW in cmd.items
    need_raw = any(isinstance(i, FetchBody) or i in _RAW for i in cmd.items)
    sets_seen = not view.read_only and any(
        (isinstance(i, FetchBody) and i.sets_seen) or i in _SEEN for i in cmd.items
    )
    live = [(q, u) for q, u in pairs if u not in view.pending_expunge]
    left_out = len(live) < len(pairs)  # expunged by another session, not told yet: no data to give
    sizes = {u: view.meta[u].size for _, u in live}
    utf8 = s.enabled.utf8  # asked once: an enum.Flag test costs microseconds, per item per message
    # PREVIEW may open messages stored without one: batches bounded in octets then too.
    for chunk in batches(live, sizes, need_raw or make_preview):
        uids = [u for _, u in chunk]
        seen_now: set[int] = set()
        if sets_seen:
            unseen = [u for u in uids if "\\Seen" not in view.meta[u].flags]
            if unseen:
                result = await s.boxes.store_flags(view.name, unseen, StoreMode.ADD, ["\\Seen"])
                for meta in result.updated:
                    view.update(meta)
                    seen_now.add(meta.uid)
        summaries: Mapping[int, MessageSummary] = {}
        if need_summary:
            summaries = await s.boxes.fetch_summaries(view.name, uids)
        raws: Mapping[int, bytes] = {}
        if need_raw:
            raws = await s.boxes.fetch_raws(view.name, uids)
        elif make_preview and (old := [u for u in uids if u in summaries and summaries[u].preview is None]):
            raws = await s.boxes.fetch_raws(view.name, old)  # summaries older than PREVIEW: one read
        objects: Mapping[int, MessageObject] = {}
        if need_objects:
            objects = await s.boxes.fetch_objects(view.name, uids)
        for seq, uid in chunk:
            meta = view.meta[uid]
            body: _Body | None = None
            if need_raw:
                if uid not in raws:
                    left_out = True  # expunged by another session meanwhile (RFC 2180 §4.1.3 allows omitting)
                    continue
                body = _Body(raws[uid])
            summary = summaries.get(uid)
            if need_summary and summary is None:
                raw = body.raw if body is not None else await s.boxes.fetch_raw(view.name, uid)
                if raw is None:
                    left_out = True
                    continue
                summary = summary_of(raw)
            if make_preview and summary is not None and summary.preview is None:
                # Stored before previews were made at delivery: made now from the message.
                raw = raws.get(uid)
                if raw is None:
                    continue  # expunged meanwhile
                summary = MessageSummary(summary.envelope, summary.bodystructure, preview(mime.parse(raw)))
            obj = objects.get(uid)
            if need_objects and obj is None:
                continue  # expunged meanwhile
            flags = view.flags_of(meta)
            items = [_value(item, meta, summary, body, flags, obj, utf8) for item in cmd.items]
            if uid in seen_now:  # \Seen set by this FETCH: RFC 3501 §6.4.5, RFC 7162 §3.1.4.1
                if FetchAttr.FLAGS not in cmd.items:
                    items.append(_value(FetchAttr.FLAGS, meta, None, None, flags))
                if s.condstore and FetchAttr.MODSEQ not in cmd.items:
                    items.append(_value(FetchAttr.MODSEQ, meta, None, None, flags))
            await s.send(encoder.fetch_response(seq, items))
    # RFC 5530 §3: say that messages were left out (imaptest, like Dovecot, then expects no data for them)
    return replies.FETCH_COMPLETED.expunge_issued() if left_out else replies.FETCH_COMPLETED
