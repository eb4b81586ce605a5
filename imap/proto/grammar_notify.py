"""NOTIFY grammar (RFC 5465 §8): ``NOTIFY NONE`` / ``NOTIFY SET [STATUS] 1*(SP event-group)``.

``event-group = "(" filter-mailboxes SP events ")"``; ``events = "(" event *(SP event) ")" /
"NONE"``; MessageNew may carry ``"(" fetch-att *(SP fetch-att) ")"`` for the selected
mailbox. Syntax errors and the rules of §5 (``selected`` once; for it MessageNew and
MessageExpunge together, FlagChange only with them) answer BAD; an event this server does
not offer answers ``NO [BADEVENT (...)]`` (§5.4) once the whole command has parsed.
"""

from __future__ import annotations

from imap.proto import replies
from imap.proto.command_types import FetchItem
from imap.proto.commands import Notify
from imap.proto.commands_notify import SUPPORTED_EVENTS, Event, EventGroup, Filter
from imap.proto.errors import CommandFailed
from imap.proto.grammar_select import fetch_items
from imap.proto.reader import Reader

_EVENTS = {e.value.upper(): e for e in Event}
_NEW_OR_EXPUNGE = frozenset({Event.MESSAGE_NEW, Event.MESSAGE_EXPUNGE})
_NEEDS_NEW_AND_EXPUNGE = _NEW_OR_EXPUNGE | {Event.FLAG_CHANGE, Event.ANNOTATION_CHANGE}


def parse_notify(reader: Reader, tag: str) -> Notify:
    reader.sp()
    word = reader.keyword()
    if word == "NONE":
        return Notify(tag)
    if word != "SET":
        raise reader.error()
    reader.sp()
    status = False
    if reader.data[reader.pos : reader.pos + 7].upper() == b"STATUS ":
        reader.pos += 7
        status = True
    groups = [_group(reader)]
    while reader.maybe_sp():
        groups.append(_group(reader))
    if sum(1 for g in groups if g.selected) > 1:
        raise reader.error(replies.UNKNOWN_NOTIFY_FILTER)
    bad = sorted({e for g in groups for e in g.events} - set(SUPPORTED_EVENTS))
    if bad and reader.refusal is None:
        supported = "(" + " ".join(e.value for e in SUPPORTED_EVENTS) + ")"
        reader.refusal = CommandFailed(replies.UNSUPPORTED_EVENT, code_arg=supported)
    return Notify(tag, tuple(groups), status, none=False)


def _group(reader: Reader) -> EventGroup:
    reader.expect(b"(")
    try:
        kind = Filter(reader.keyword())
    except ValueError:
        raise reader.error(replies.UNKNOWN_NOTIFY_FILTER) from None
    mailboxes: tuple[str, ...] = ()
    if kind in (Filter.SUBTREE, Filter.MAILBOXES):
        reader.sp()
        mailboxes = _one_or_more_mailbox(reader)
    reader.sp()
    selected = kind in (Filter.SELECTED, Filter.SELECTED_DELAYED)
    events, fetch = _events(reader, selected=selected)
    reader.expect(b")")
    return EventGroup(kind, events, mailboxes, fetch)


def _one_or_more_mailbox(reader: Reader) -> tuple[str, ...]:
    if not reader.peek_is(b"("):
        return (reader.mailbox(),)
    reader.pos += 1
    names = [reader.mailbox()]
    while reader.maybe_sp():
        names.append(reader.mailbox())
    reader.expect(b")")
    return tuple(names)


def _events(reader: Reader, *, selected: bool) -> tuple[frozenset[Event], tuple[FetchItem, ...]]:
    if not reader.peek_is(b"("):
        if reader.keyword() != "NONE":
            raise reader.error(replies.INVALID_NOTIFY_EVENTS)
        return frozenset(), ()
    reader.pos += 1
    events: set[Event] = set()
    fetch: tuple[FetchItem, ...] = ()
    while True:
        name = reader.atom().upper()
        event = _EVENTS.get(name)
        if event is None:
            raise reader.error(replies.INVALID_NOTIFY_EVENTS)
        events.add(event)
        if event is Event.MESSAGE_NEW and reader.data.startswith(b" (", reader.pos):
            if not selected:  # RFC 5465 §5.2: fetch attributes only for the selected mailbox
                raise reader.error(replies.INVALID_NOTIFY_EVENTS)
            reader.pos += 1
            fetch = tuple(fetch_items(reader))
        if reader.peek_is(b")"):
            reader.pos += 1
            break
        reader.sp()
    if selected and events & _NEEDS_NEW_AND_EXPUNGE and not _NEW_OR_EXPUNGE <= events:
        raise reader.error(replies.INVALID_NOTIFY_EVENTS)  # RFC 5465 §5
    return frozenset(events), fetch
