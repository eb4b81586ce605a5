"""The storage contract the IMAP command handlers need (DESIGN rule 1).

``gateway/store`` implements :class:`Backend` and :class:`Mailboxes`; the IMAP package
never imports it. Every method is ``async`` (the store talks to a database); every value
is a frozen dataclass. Folder names are decoded Unicode (the encoder applies modified
UTF-7), hierarchy delimiter :data:`DELIMITER`, ``INBOX`` spelled upper-case.
Messages are addressed by UID; sequence numbers are a per-session view the handlers keep.

Failures are raised as the errors below (they know their IMAP response); anything else
is a server bug (the shell answers ``NO [SERVERBUG]`` and logs it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from imap import uid_ranges
from imap.proto import replies
from imap.proto.commands import StoreMode
from imap.proto.errors import CommandFailed
from imap.proto.flags import ANY_KEYWORD, SYSTEM_FLAGS
from imap.proto.structure import BodyStructure, Envelope

DELIMITER = "/"


# --- errors -----------------------------------------------------------------------------
class AuthenticationFailed(CommandFailed):
    """Wrong user name or password (RFC 5530 AUTHENTICATIONFAILED); the text never says which."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(replies.AUTHENTICATION_FAILED, detail=detail)


class TokenRefused(CommandFailed):
    """An access token refused (SASL OAUTHBEARER / XOAUTH2): ``challenge`` is the JSON error the
    server sends as a continuation first (RFC 7628 §3.2.2), the tagged
    ``NO [AUTHENTICATIONFAILED]`` follows the client's answer."""

    def __init__(self, challenge: bytes, detail: str | None = None) -> None:
        super().__init__(replies.AUTHENTICATION_FAILED, detail=detail)
        self.challenge = challenge


class MailboxNotFound(CommandFailed):
    """RFC 5530 NONEXISTENT; APPEND / COPY / MOVE handlers answer TRYCREATE (RFC 3501 §6.3.11)."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(replies.NO_SUCH_MAILBOX, detail=detail)


class MailboxExists(CommandFailed):
    def __init__(self, detail: str | None = None) -> None:
        super().__init__(replies.MAILBOX_EXISTS, detail=detail)


class OverQuota(CommandFailed):
    def __init__(self, detail: str | None = None) -> None:
        super().__init__(replies.OVER_QUOTA, detail=detail)


# --- values -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str
    remote_address: str | None = None
    tls: bool = False


@dataclass(frozen=True, slots=True)
class TokenCredentials:
    """A bearer token (RFC 7628 OAUTHBEARER, XOAUTH2) and the mailbox asked for (the SASL
    authzid; None: the token's own). ``repr`` never shows the token."""

    mechanism: str
    authzid: str | None
    token: str = field(repr=False)
    remote_address: str | None = None
    tls: bool = False


@dataclass(frozen=True, slots=True)
class CertificateCredentials:
    """SASL EXTERNAL (RFC 4422 appendix A): the verified client certificate (DER) and the mailbox
    asked for (the authzid; None: the one the certificate is bound to)."""

    certificate: bytes = field(repr=False)
    authzid: str | None
    remote_address: str | None = None


@dataclass(frozen=True, slots=True)
class OpenedByToken:
    """A mailbox opened by a token, and the token's expiry (the session ends a grace time after it)."""

    mailboxes: Mailboxes
    expires_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class FolderInfo:
    """One LIST entry: ``special_use`` like ``("\\Sent",)`` (RFC 6154 §2)."""

    name: str
    subscribed: bool = False
    has_children: bool = False
    selectable: bool = True
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """SELECT / STATUS data (RFC 3501 §6.3.1, §6.3.10; RFC 7162 HIGHESTMODSEQ; RFC 8438 SIZE;
    RFC 8474 MAILBOXID, an objectid: 1-255 of ``A-Za-z0-9_-``).

    ``recent_uid`` is the folder's recent mark: messages with a higher UID have not yet been
    taken as recent by any session (:meth:`Mailboxes.claim_recent`); ``recent`` counts them
    (STATUS RECENT)."""

    uidvalidity: int
    uidnext: int
    highestmodseq: int
    messages: int
    unseen: int
    recent: int = 0
    recent_uid: int = 0
    deleted: int = 0  # messages with \Deleted (STATUS DELETED, RFC 9051 §6.3.11)
    first_unseen_uid: int | None = None  # for the UNSEEN code of SELECT
    permanent_flags: tuple[str, ...] = (*SYSTEM_FLAGS, ANY_KEYWORD)
    read_only: bool = False
    size: int = 0  # RFC 8438 STATUS SIZE: the RFC822.SIZE of every message, summed
    mailbox_id: str = ""  # RFC 8474 MAILBOXID: kept across RENAME, never reused
    deleted_octets: int = 0  # their RFC822.SIZE summed (RFC 9208 §4.2.2 DELETED-STORAGE, sent in KiB)


@dataclass(frozen=True, slots=True)
class Vanished:
    """The answer to :meth:`Mailboxes.expunged_since`: UIDs as sorted, disjoint, inclusive
    ranges (:mod:`imap.uid_ranges`).

    ``exact``: the UIDs expunged since the mod-sequence. Otherwise the store no longer knows
    (it forgot the expunges at and below a mod-sequence above the client's, to bound what it
    keeps) and answers every UID below UIDNEXT that no longer exists, which RFC 7162
    §3.2.5.2 / §3.2.6 allow (``VANISHED (EARLIER)`` may name UIDs the client never saw): a
    client resynchronising never misses an expunge either way."""

    ranges: tuple[tuple[int, int], ...]
    exact: bool = True

    @classmethod
    def of(cls, uids: Iterable[int]) -> Vanished:
        return cls(uid_ranges.compact(uids))

    @classmethod
    def all_missing(cls, live: Sequence[int], uidnext: int) -> Vanished:
        """Every UID below ``uidnext`` not among the ascending ``live`` ones."""
        return cls(uid_ranges.missing(live, uidnext - 1), exact=False)

    def uids(self) -> list[int]:
        """As a list (tests; the handlers keep ranges)."""
        return [u for lo, hi in self.ranges for u in range(lo, hi + 1)]


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """What a session keeps per message; ``size`` is RFC822.SIZE in octets."""

    uid: int
    flags: frozenset[str]
    internal_date: dt.datetime
    size: int
    modseq: int


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """Cached, decrypted structure so ENVELOPE / BODYSTRUCTURE do not need the body.

    ``encoded`` holds the FETCH handler's encoding of ENVELOPE / BODY / BODYSTRUCTURE once
    made, so a store that keeps summaries in memory spares repeated header fetches the
    encoding too; ``searchable`` likewise SEARCH's decoded, case-folded SUBJECT / FROM / TO /
    CC / BCC text, by header name (:mod:`imap.handlers.search`). Neither is part of equality."""

    envelope: Envelope
    bodystructure: BodyStructure
    preview: str | None = None  # RFC 8970 PREVIEW, made at delivery; None: not made (older summary)
    encoded: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)
    searchable: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MessageObject:
    """A message's identity and save date (RFC 8474 §5 EMAILID / THREADID, RFC 8514 SAVEDATE).

    ``email_id`` is the same for the same message in every mailbox (kept by COPY and MOVE);
    ``thread_id`` None is ``THREADID NIL`` (no thread known); ``save_date`` is when the
    message was put in this mailbox (delivery, APPEND, COPY, MOVE)."""

    email_id: str
    thread_id: str | None
    save_date: dt.datetime


@dataclass(frozen=True, slots=True)
class AppendResult:
    """RFC 4315 APPENDUID uidvalidity uid."""

    uidvalidity: int
    uid: int


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One message of a MULTIAPPEND (RFC 3502): its octets, flags and internal date."""

    message: bytes = field(repr=False)
    flags: tuple[str, ...] = ()
    internal_date: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class AppendManyResult:
    """RFC 4315 §3 APPENDUID uidvalidity uid-set, the UIDs in the order of the messages."""

    uidvalidity: int
    uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CopyResult:
    """RFC 4315 COPYUID: destination uidvalidity and (source uid, destination uid) pairs."""

    uidvalidity: int
    mapping: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class StoreResult:
    """RFC 7162 §3.1.3: messages whose flags changed, and UIDs that failed UNCHANGEDSINCE."""

    updated: tuple[MessageMeta, ...]
    conflicts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class QuotaResource:
    """One resource of a quota root (RFC 9208 §5): ``STORAGE`` in KiB, ``MESSAGE`` in messages."""

    name: str
    usage: int
    limit: int


@dataclass(frozen=True, slots=True)
class QuotaRoot:
    """A quota root and its limited resources (RFC 9208 §3.1); a resource without a limit is
    not listed."""

    name: str
    resources: tuple[QuotaResource, ...]


# --- protocols --------------------------------------------------------------------------
class Mailboxes(Protocol):
    """One authenticated user's folders and messages."""

    @property
    def username(self) -> str: ...

    async def still_open(self) -> bool:
        """False once the account may no longer use this session (an administrator suspended
        or removed it): the session then ends with ``* BYE``. Asked before every command of
        the authenticated states and while IDLE, so the host keeps it cheap (an answer at most
        a few seconds stale is fine; say the bound)."""
        ...

    async def list_folders(self) -> Sequence[FolderInfo]:
        """Every folder of the user, subscribed or not (LIST / LSUB filter them)."""
        ...

    async def create_folder(self, name: str, special_use: Sequence[str] = ()) -> None:
        """Raises MailboxExists; creates missing parents (RFC 3501 §6.3.3); subscribes nothing."""
        ...

    async def delete_folder(self, name: str) -> None:
        """Raises MailboxNotFound; INBOX cannot be deleted (CommandFailed CANNOT)."""
        ...

    async def rename_folder(self, old: str, new: str) -> None:
        """Renaming INBOX moves its messages to ``new`` (RFC 3501 §6.3.5)."""
        ...

    async def set_subscribed(self, name: str, subscribed: bool) -> None:
        """SUBSCRIBE needs the folder (MailboxNotFound); UNSUBSCRIBE also takes a subscribed
        name whose folder was deleted (RFC 3501 §6.3.6: DELETE keeps the subscription)."""
        ...

    async def list_subscriptions(self) -> Sequence[str]:
        """Every subscribed name, whether a folder has it or not (LSUB, RFC 3501 §6.3.9)."""
        ...

    async def folder_status(self, name: str) -> FolderStatus:
        """Raises MailboxNotFound."""
        ...

    async def select_folder(self, name: str, *, read_only: bool) -> FolderStatus:
        """:meth:`folder_status` for SELECT / EXAMINE; the store records the access (audit)."""
        ...

    async def claim_recent(self, name: str, up_to_uid: int) -> int:
        """Raise the folder's recent mark to ``up_to_uid`` and return the mark it had, in one
        atomic step across sessions and nodes: the caller alone sees the messages with UIDs
        above the old mark, up to ``up_to_uid``, as ``\\Recent`` (RFC 3501 §2.3.2)."""
        ...

    async def list_messages(self, name: str, *, changed_since: int | None = None) -> Sequence[MessageMeta]:
        """Messages in UID order; with ``changed_since`` only those with modseq above it."""
        ...

    async def fetch_raw(self, name: str, uid: int) -> bytes | None:
        """The decrypted RFC 5322 message, or None if it was expunged meanwhile."""
        ...

    async def fetch_raws(self, name: str, uids: Sequence[int]) -> Mapping[int, bytes]:
        """:meth:`fetch_raw` for several messages (expunged ones are left out); the caller
        bounds the total size it asks for at once."""
        ...

    async def fetch_summary(self, name: str, uid: int) -> MessageSummary | None:
        """Cached ENVELOPE / BODYSTRUCTURE data (computed with :mod:`imap.message.mime` at delivery)."""
        ...

    async def fetch_summaries(self, name: str, uids: Sequence[int]) -> Mapping[int, MessageSummary]:
        """:meth:`fetch_summary` for many messages at once (expunged ones are left out)."""
        ...

    async def fetch_objects(self, name: str, uids: Sequence[int]) -> Mapping[int, MessageObject]:
        """EMAILID / THREADID / SAVEDATE of messages (expunged ones are left out); no content read."""
        ...

    async def append(
        self, name: str, message: bytes, flags: Sequence[str], internal_date: dt.datetime | None
    ) -> AppendResult:
        """Raises MailboxNotFound, OverQuota."""
        ...

    async def append_many(self, name: str, messages: Sequence[NewMessage]) -> AppendManyResult:
        """MULTIAPPEND (RFC 3502 §6.3.11): all the messages in one transaction, or none of them
        (an error on any one leaves the folder as it was). Raises MailboxNotFound, OverQuota."""
        ...

    async def copy(self, source: str, uids: Sequence[int], destination: str) -> CopyResult: ...

    async def move(self, source: str, uids: Sequence[int], destination: str) -> CopyResult:
        """Atomic copy + expunge (RFC 6851 §3.3)."""
        ...

    async def store_flags(
        self,
        name: str,
        uids: Sequence[int],
        mode: StoreMode,
        flags: Sequence[str],
        *,
        unchanged_since: int | None = None,
    ) -> StoreResult:
        """Each change bumps the message modseq (RFC 7162 §3.1.1)."""
        ...

    async def expunge(self, name: str, uids: Sequence[int] | None = None) -> Sequence[int]:
        """Remove ``\\Deleted`` messages (only among ``uids`` when given); returns their UIDs."""
        ...

    async def quota_roots(self, name: str) -> Sequence[QuotaRoot]:
        """The quota roots of folder ``name`` (RFC 9208 §4.1.2), none when no limit applies;
        raises MailboxNotFound."""
        ...

    async def quota(self, root: str) -> QuotaRoot | None:
        """Quota root ``root`` with its usage and limits (RFC 9208 §4.1.1), None if there is none."""
        ...

    async def wait_for_change(self, name: str, since_modseq: int, timeout: float) -> bool:
        """Block until the folder's highest modseq exceeds ``since_modseq`` or a message was
        expunged (True), or ``timeout`` seconds pass (False). Backs IDLE (RFC 2177); across
        nodes the store uses PostgreSQL LISTEN/NOTIFY. The caller then re-lists with
        ``changed_since`` and diffs its UID view to emit EXISTS / EXPUNGE / FETCH."""
        ...


    async def expunged_since(self, name: str, modseq: int) -> Vanished:
        """UIDs expunged from the folder (EXPUNGE, MOVE, RENAME of INBOX) at a mod-sequence
        above ``modseq``: RFC 7162 §3.2.5 / §3.2.6 ``VANISHED (EARLIER)``. Exact while the
        store still keeps every expunge above ``modseq``; else every UID below UIDNEXT that no
        longer exists (:class:`Vanished`). A folder that does not exist has none."""
        ...

    async def wait_for_any_change(self, seen: int, timeout: float) -> int:
        """A counter that moves whenever anything of the user changes (messages, flags,
        folders, subscriptions), in this process or, through PostgreSQL LISTEN/NOTIFY, on
        another node. Returns it at once when it differs from ``seen``; else waits up to
        ``timeout`` seconds for it to move and returns it. Backs NOTIFY (RFC 5465)."""
        ...


class Backend(Protocol):
    async def authenticate(self, credentials: Credentials) -> Mailboxes:
        """Raises AuthenticationFailed (same response for unknown user and bad password)."""
        ...

    async def authenticate_token(self, credentials: TokenCredentials) -> OpenedByToken:
        """Check an access token and that its identity may open ``credentials.authzid``.
        Raises TokenRefused (with the RFC 7628 §3.2.2 challenge), or CommandFailed with
        LOGIN_THROTTLED / TOKEN_CHECK_UNAVAILABLE (no challenge: the token was not judged)."""
        ...

    async def authenticate_certificate(self, credentials: CertificateCredentials) -> Mailboxes:
        """The application mailbox a verified client certificate opens (EXTERNAL). Raises
        AuthenticationFailed, or CommandFailed with LOGIN_THROTTLED."""
        ...
