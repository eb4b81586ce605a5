"""Typed IMAP commands (RFC 3501 §6 and extensions).

Every command is a frozen dataclass with its ``tag`` and a class-level ``name`` (the key
of the state table in :mod:`imap.state`). UID variants share the class of the plain command
with ``uid=True``; their ``command_name`` is ``"UID FETCH"`` etc.
Search keys and fetch attributes live in :mod:`imap.proto.command_types`.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import ClassVar

from imap.proto.command_types import FetchItem, SearchKey
from imap.proto.commands_notify import EventGroup
from imap.proto.seqset import SequenceSet


@dataclass(frozen=True, slots=True)
class Command:
    tag: str
    name: ClassVar[str] = ""

    @property
    def command_name(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class _UidCommand(Command):
    @property
    def command_name(self) -> str:
        uid: bool = getattr(self, "uid", False)
        return f"UID {self.name}" if uid else self.name


# --- any state (RFC 3501 §6.1) -------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Capability(Command):
    name: ClassVar[str] = "CAPABILITY"


@dataclass(frozen=True, slots=True)
class Noop(Command):
    name: ClassVar[str] = "NOOP"


@dataclass(frozen=True, slots=True)
class Logout(Command):
    name: ClassVar[str] = "LOGOUT"


@dataclass(frozen=True, slots=True)
class Id(Command):
    """RFC 2971: ``ID NIL`` or ``ID ("name" "value" ...)``."""

    name: ClassVar[str] = "ID"
    parameters: tuple[tuple[str, str | None], ...] | None = None


# --- not authenticated (RFC 3501 §6.2) -----------------------------------------------
@dataclass(frozen=True, slots=True)
class StartTls(Command):
    name: ClassVar[str] = "STARTTLS"


@dataclass(frozen=True, slots=True)
class Authenticate(Command):
    """RFC 3501 §6.2.2, with the RFC 4959 SASL-IR initial response (already base64-decoded)."""

    name: ClassVar[str] = "AUTHENTICATE"
    mechanism: str = ""
    initial_response: bytes | None = None


@dataclass(frozen=True, slots=True)
class Login(Command):
    name: ClassVar[str] = "LOGIN"
    userid: str = ""
    password: str = field(default="", repr=False)


# --- authenticated (RFC 3501 §6.3 and extensions) ------------------------------------
@dataclass(frozen=True, slots=True)
class QresyncParams:
    """RFC 7162 §3.2.5 ``QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]])``."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select(Command):
    """SELECT, with the RFC 7162 §3.1.8 ``(CONDSTORE)`` and §3.2.5 ``(QRESYNC (...))`` parameters."""

    name: ClassVar[str] = "SELECT"
    mailbox: str = ""
    condstore: bool = False
    qresync: QresyncParams | None = None

    @property
    def readonly(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class Examine(Select):
    name: ClassVar[str] = "EXAMINE"

    @property
    def readonly(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Create(Command):
    """CREATE, with the RFC 6154 §3 ``USE (\\Drafts ...)`` parameter."""

    name: ClassVar[str] = "CREATE"
    mailbox: str = ""
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delete(Command):
    name: ClassVar[str] = "DELETE"
    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class Rename(Command):
    name: ClassVar[str] = "RENAME"
    mailbox: str = ""
    new_name: str = ""


@dataclass(frozen=True, slots=True)
class Subscribe(Command):
    name: ClassVar[str] = "SUBSCRIBE"
    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class Unsubscribe(Command):
    name: ClassVar[str] = "UNSUBSCRIBE"
    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class List(Command):
    """LIST (RFC 3501 §6.3.8) with RFC 5258 selection/return options used by RFC 6154.

    ``patterns`` are decoded mailbox patterns (``%`` and ``*`` are wildcards); one that is
    not valid modified UTF-7 (RFC 3501 §5.1.3) matches nothing and is left out, as are all
    of them under such a reference.
    ``select_options`` e.g. ``("SUBSCRIBED", "SPECIAL-USE")``; ``return_options`` e.g.
    ``("SPECIAL-USE", "CHILDREN")``; both upper-cased. ``RETURN (STATUS (...))`` (RFC 5819
    LIST-STATUS) puts ``"STATUS"`` in ``return_options`` and its items in ``status_items``.
    """

    name: ClassVar[str] = "LIST"
    reference: str = ""
    patterns: tuple[str, ...] = ()
    select_options: tuple[str, ...] = ()
    return_options: tuple[str, ...] = ()
    status_items: tuple[StatusItem, ...] = ()


@dataclass(frozen=True, slots=True)
class Lsub(Command):
    """``pattern`` None: the pattern or the reference is not modified UTF-7 (matches nothing)."""

    name: ClassVar[str] = "LSUB"
    reference: str = ""
    pattern: str | None = ""


class StatusItem(enum.StrEnum):
    """RFC 3501 §6.3.10, RFC 7162 §3.1.6 (HIGHESTMODSEQ), RFC 7889 (APPENDLIMIT), RFC 8438 (SIZE),
    RFC 8474 (MAILBOXID), RFC 9208 §4.2 (DELETED, DELETED-STORAGE; RFC 9051 §6.3.11)."""

    MESSAGES = "MESSAGES"
    RECENT = "RECENT"
    UIDNEXT = "UIDNEXT"
    UIDVALIDITY = "UIDVALIDITY"
    UNSEEN = "UNSEEN"
    HIGHESTMODSEQ = "HIGHESTMODSEQ"
    APPENDLIMIT = "APPENDLIMIT"
    SIZE = "SIZE"  # RFC 8438 STATUS=SIZE
    MAILBOXID = "MAILBOXID"  # RFC 8474 §4.3
    DELETED = "DELETED"  # RFC 9208 §4.2.1 (RFC 9051 §6.3.11)
    DELETED_STORAGE = "DELETED-STORAGE"  # RFC 9208 §4.2.2


@dataclass(frozen=True, slots=True)
class Status(Command):
    name: ClassVar[str] = "STATUS"
    mailbox: str = ""
    items: tuple[StatusItem, ...] = ()


@dataclass(frozen=True, slots=True)
class CatenatePart:
    """One CATENATE part (RFC 4469 §5): a ``TEXT`` literal, or an IMAP ``URL`` (``url`` set)."""

    url: str | None = None
    text: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of an APPEND: its flags, date-time and either the literal ``message`` or,
    for CATENATE (RFC 4469), the ``catenate`` parts it is assembled from."""

    flags: tuple[str, ...] = ()
    date_time: dt.datetime | None = None
    message: bytes = field(default=b"", repr=False)
    catenate: tuple[CatenatePart, ...] | None = None
    binary: bool = False  # sent as a literal8 (RFC 3516 §4.2)


@dataclass(frozen=True, slots=True)
class Append(Command):
    """APPEND (RFC 3501 §6.3.11). ``flags`` as written (e.g. ``\\Seen``).

    The first message is in ``flags`` / ``date_time`` / ``message`` / ``catenate`` / ``binary``; MULTIAPPEND
    (RFC 3502) puts any further ones in ``more``. :attr:`messages` gives them all, in order."""

    name: ClassVar[str] = "APPEND"
    mailbox: str = ""
    flags: tuple[str, ...] = ()
    date_time: dt.datetime | None = None
    message: bytes = field(default=b"", repr=False)
    catenate: tuple[CatenatePart, ...] | None = None
    more: tuple[AppendMessage, ...] = ()
    binary: bool = False

    @property
    def messages(self) -> tuple[AppendMessage, ...]:
        return (AppendMessage(self.flags, self.date_time, self.message, self.catenate, self.binary), *self.more)


@dataclass(frozen=True, slots=True)
class Enable(Command):
    """RFC 5161. Capability names are upper-cased."""

    name: ClassVar[str] = "ENABLE"
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Compress(Command):
    """RFC 4978 §3: ``COMPRESS mechanism`` (upper-cased); only DEFLATE is known."""

    name: ClassVar[str] = "COMPRESS"
    mechanism: str = ""


@dataclass(frozen=True, slots=True)
class Namespace(Command):
    name: ClassVar[str] = "NAMESPACE"


@dataclass(frozen=True, slots=True)
class Idle(Command):
    """RFC 2177: the shell then switches the receiver to line mode to wait for ``DONE``."""

    name: ClassVar[str] = "IDLE"


@dataclass(frozen=True, slots=True)
class Notify(Command):
    """RFC 5465: ``NOTIFY NONE`` (``none``), or ``NOTIFY SET [STATUS]`` with its event groups."""

    name: ClassVar[str] = "NOTIFY"
    groups: tuple[EventGroup, ...] = ()
    status: bool = False  # NOTIFY SET STATUS: a STATUS for each watched mailbox first (§5.1)
    none: bool = True


# --- selected (RFC 3501 §6.4 and extensions) -----------------------------------------
@dataclass(frozen=True, slots=True)
class Check(Command):
    name: ClassVar[str] = "CHECK"


@dataclass(frozen=True, slots=True)
class Close(Command):
    name: ClassVar[str] = "CLOSE"


@dataclass(frozen=True, slots=True)
class Unselect(Command):
    name: ClassVar[str] = "UNSELECT"


@dataclass(frozen=True, slots=True)
class Expunge(_UidCommand):
    """EXPUNGE; with ``uid=True`` it is RFC 4315 §2.1 UID EXPUNGE over ``sequence_set``."""

    name: ClassVar[str] = "EXPUNGE"
    uid: bool = False
    sequence_set: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class Search(_UidCommand):
    """SEARCH (RFC 3501 §6.4.4). ``criteria`` is one key (an implicit AND of the list).

    ``return_options`` (RFC 4731 ESEARCH): None for a plain SEARCH, else the upper-cased
    ``RETURN`` options, ``("ALL",)`` for ``RETURN ()``; with ``PARTIAL`` (RFC 5267 §4.4),
    ``partial`` is its range (first, last), negative counted from the end (RFC 9394)."""

    name: ClassVar[str] = "SEARCH"
    uid: bool = False
    charset: str | None = None
    criteria: SearchKey | None = None
    return_options: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class CancelUpdate(Command):
    """RFC 5267 §4.3 CANCELUPDATE: end the update contexts of these SEARCH tags."""

    name: ClassVar[str] = "CANCELUPDATE"
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SortKey:
    """One RFC 5256 §3 sort-criterion: ARRIVAL CC DATE FROM SIZE SUBJECT TO, or (RFC 5957)
    DISPLAYFROM DISPLAYTO; ``reverse`` for a ``REVERSE`` before it."""

    key: str
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Sort(_UidCommand):
    """SORT (RFC 5256 §3): the messages ``criteria`` matches, ordered by ``keys`` (ties by
    sequence number). ``return_options`` as :class:`Search` (RFC 5267 §3.2 ESORT)."""

    name: ClassVar[str] = "SORT"
    uid: bool = False
    keys: tuple[SortKey, ...] = ()
    charset: str = "UTF-8"
    criteria: SearchKey | None = None
    return_options: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Thread(_UidCommand):
    """THREAD (RFC 5256 §3): ``algorithm`` ORDEREDSUBJECT or REFERENCES (upper-cased)."""

    name: ClassVar[str] = "THREAD"
    uid: bool = False
    algorithm: str = "REFERENCES"
    charset: str = "UTF-8"
    criteria: SearchKey | None = None


@dataclass(frozen=True, slots=True)
class Fetch(_UidCommand):
    """FETCH (RFC 3501 §6.4.5) with RFC 7162 §3.1.4 CHANGEDSINCE.

    Macros are expanded. For UID FETCH the ``UID`` item is added (RFC 3501 §6.4.8) and with
    CHANGEDSINCE the ``MODSEQ`` item is added (RFC 7162 §3.1.4.1), so handlers need no
    special case.
    """

    name: ClassVar[str] = "FETCH"
    uid: bool = False
    sequence_set: SequenceSet = field(default_factory=lambda: SequenceSet(()))
    items: tuple[FetchItem, ...] = ()
    changed_since: int | None = None
    vanished: bool = False  # RFC 7162 §3.2.6 UID FETCH modifier VANISHED


class StoreMode(enum.Enum):
    REPLACE = ""
    ADD = "+"
    REMOVE = "-"


@dataclass(frozen=True, slots=True)
class Store(_UidCommand):
    """STORE (RFC 3501 §6.4.6) with RFC 7162 §3.1.3 UNCHANGEDSINCE."""

    name: ClassVar[str] = "STORE"
    uid: bool = False
    sequence_set: SequenceSet = field(default_factory=lambda: SequenceSet(()))
    mode: StoreMode = StoreMode.REPLACE
    silent: bool = False
    flags: tuple[str, ...] = ()
    unchanged_since: int | None = None


@dataclass(frozen=True, slots=True)
class Copy(_UidCommand):
    name: ClassVar[str] = "COPY"
    uid: bool = False
    sequence_set: SequenceSet = field(default_factory=lambda: SequenceSet(()))
    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class Move(_UidCommand):
    """RFC 6851."""

    name: ClassVar[str] = "MOVE"
    uid: bool = False
    sequence_set: SequenceSet = field(default_factory=lambda: SequenceSet(()))
    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class GetQuota(Command):
    """RFC 9208 §4.1.1: ``GETQUOTA quota-root-name``."""

    name: ClassVar[str] = "GETQUOTA"
    root: str = ""


@dataclass(frozen=True, slots=True)
class GetQuotaRoot(Command):
    """RFC 9208 §4.1.2: ``GETQUOTAROOT mailbox``."""

    name: ClassVar[str] = "GETQUOTAROOT"
    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class SetQuota(Command):
    """RFC 9208 §4.1.3: ``SETQUOTA quota-root-name (resource limit ...)``."""

    name: ClassVar[str] = "SETQUOTA"
    root: str = ""
    limits: tuple[tuple[str, int], ...] = ()


ALL_COMMANDS: tuple[type[Command], ...] = (
    Capability, Noop, Logout, Id, StartTls, Authenticate, Login, Select, Examine, Create,
    Delete, Rename, Subscribe, Unsubscribe, List, Lsub, Status, Append, Enable, Namespace,
    Idle, Notify, Compress, Check, Close, Unselect, Expunge, Search, Fetch, Store, Copy, Move, Sort,
    Thread, CancelUpdate,
    GetQuota, GetQuotaRoot, SetQuota,
)  # fmt: skip

#: Every name the state table must cover (RFC 3501 §6.4.8 UID forms included).
COMMAND_NAMES: tuple[str, ...] = tuple(c.name for c in ALL_COMMANDS) + tuple(
    f"UID {c.name}" for c in (Expunge, Search, Fetch, Store, Copy, Move, Sort, Thread)
)
