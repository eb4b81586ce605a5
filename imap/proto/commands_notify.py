"""The parts of the NOTIFY command (RFC 5465 §5): events, filters, event groups. The
command itself is :class:`imap.proto.commands.Notify`.

Mailbox names are decoded (modified UTF-7) and INBOX upper-cased, like every mailbox
argument; event names keep RFC 5465's spelling (:class:`Event`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from imap.proto.command_types import FetchItem


class Event(enum.StrEnum):
    """RFC 5465 §5 events; the last three are recognised but not offered (BADEVENT)."""

    MESSAGE_NEW = "MessageNew"
    MESSAGE_EXPUNGE = "MessageExpunge"
    FLAG_CHANGE = "FlagChange"
    MAILBOX_NAME = "MailboxName"
    SUBSCRIPTION_CHANGE = "SubscriptionChange"
    ANNOTATION_CHANGE = "AnnotationChange"
    MAILBOX_METADATA_CHANGE = "MailboxMetadataChange"
    SERVER_METADATA_CHANGE = "ServerMetadataChange"


#: Events this server reports (RFC 5465 §5.4: the others get ``NO [BADEVENT (...)]``).
SUPPORTED_EVENTS: tuple[Event, ...] = (
    Event.MESSAGE_NEW, Event.MESSAGE_EXPUNGE, Event.FLAG_CHANGE, Event.MAILBOX_NAME, Event.SUBSCRIPTION_CHANGE,
)  # fmt: skip
MESSAGE_EVENTS = frozenset({Event.MESSAGE_NEW, Event.MESSAGE_EXPUNGE, Event.FLAG_CHANGE, Event.ANNOTATION_CHANGE})


class Filter(enum.StrEnum):
    """RFC 5465 §6 filter-mailboxes."""

    SELECTED = "SELECTED"
    SELECTED_DELAYED = "SELECTED-DELAYED"
    INBOXES = "INBOXES"
    PERSONAL = "PERSONAL"
    SUBSCRIBED = "SUBSCRIBED"
    SUBTREE = "SUBTREE"
    MAILBOXES = "MAILBOXES"


@dataclass(frozen=True, slots=True)
class EventGroup:
    """``(filter [mailboxes] events)``: ``events`` empty for ``NONE``; ``fetch`` the
    fetch-att list of MessageNew (selected mailbox only, RFC 5465 §5.2)."""

    filter: Filter
    events: frozenset[Event] = frozenset()
    mailboxes: tuple[str, ...] = ()
    fetch: tuple[FetchItem, ...] = ()

    @property
    def selected(self) -> bool:
        return self.filter in (Filter.SELECTED, Filter.SELECTED_DELAYED)
