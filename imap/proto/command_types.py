"""Value types inside commands: SEARCH keys (RFC 3501 §6.4.4) and FETCH items (§6.4.5).

SEARCH keys are normalised so a handler has few cases: flag keys become
:class:`SearchFlag` (``NEW`` is ``RECENT UNSEEN``, ``OLD`` is ``NOT RECENT``), address and
subject keys become :class:`SearchHeader`, a parenthesised list becomes :class:`SearchAnd`.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from imap.proto.seqset import SequenceSet


# --- SEARCH -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SearchAll:
    pass


@dataclass(frozen=True, slots=True)
class SearchFlag:
    """Message has (``present``) or lacks ``flag`` (system flag ``\\Seen`` or a keyword)."""

    flag: str
    present: bool = True


class DateField(enum.Enum):
    INTERNAL = "internal"  # BEFORE / ON / SINCE: internal date, RFC 3501 §6.4.4
    SENT = "sent"  # SENTBEFORE / SENTON / SENTSINCE: the Date: header
    SAVED = "saved"  # SAVEDBEFORE / SAVEDON / SAVEDSINCE: the save date (RFC 8514 §4.3)


class DateOp(enum.Enum):
    BEFORE = "before"
    ON = "on"
    SINCE = "since"


@dataclass(frozen=True, slots=True)
class SearchDate:
    field: DateField
    op: DateOp
    date: dt.date


@dataclass(frozen=True, slots=True)
class SearchHeader:
    """Header ``name`` contains ``value`` (case-insensitive substring); empty value = has header."""

    name: str
    value: str


class TextScope(enum.Enum):
    BODY = "body"
    TEXT = "text"  # header and body


@dataclass(frozen=True, slots=True)
class SearchText:
    scope: TextScope
    value: str


@dataclass(frozen=True, slots=True)
class SearchSize:
    larger: bool  # LARGER n (size > n) or SMALLER n (size < n)
    size: int


@dataclass(frozen=True, slots=True)
class SearchSet:
    """A sequence set (``uid=False``) or ``UID`` set."""

    sequence_set: SequenceSet
    uid: bool = False


@dataclass(frozen=True, slots=True)
class SearchModSeq:
    """RFC 7162 §3.1.5: ``MODSEQ ["/flags/\\Seen" all] 620162338``."""

    modseq: int
    entry_name: str | None = None
    entry_type: str | None = None


@dataclass(frozen=True, slots=True)
class SearchAge:
    """RFC 5032 WITHIN: ``OLDER n`` (INTERNALDATE at least ``seconds`` ago) or ``YOUNGER n``
    (less than ``seconds`` ago)."""

    older: bool
    seconds: int


@dataclass(frozen=True, slots=True)
class SearchObjectId:
    """RFC 8474 §6: ``EMAILID objectid`` / ``THREADID objectid``; ``kind`` is the key name."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class SearchSaveDateSupported:
    """RFC 8514 §4.3 SAVEDATESUPPORTED: every message of a mailbox that keeps save dates."""


@dataclass(frozen=True, slots=True)
class SearchNot:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class SearchOr:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class SearchAnd:
    keys: tuple[SearchKey, ...]


SearchKey = (
    SearchAll | SearchFlag | SearchDate | SearchHeader | SearchText | SearchSize | SearchSet
    | SearchModSeq | SearchAge | SearchObjectId | SearchSaveDateSupported | SearchNot | SearchOr | SearchAnd
)  # fmt: skip


# --- FETCH --------------------------------------------------------------------------
class FetchAttr(enum.StrEnum):
    """Non-body FETCH data items (RFC 3501 §6.4.5, RFC 7162 §3.1.4 MODSEQ, RFC 8474 §5 EMAILID /
    THREADID, RFC 8514 §4.2 SAVEDATE, RFC 8970 §3 PREVIEW; ``PREVIEW (LAZY)`` is answered as
    ``PREVIEW``)."""

    FLAGS = "FLAGS"
    INTERNALDATE = "INTERNALDATE"
    RFC822 = "RFC822"
    RFC822_HEADER = "RFC822.HEADER"
    RFC822_SIZE = "RFC822.SIZE"
    RFC822_TEXT = "RFC822.TEXT"
    ENVELOPE = "ENVELOPE"
    BODY = "BODY"  # the non-extensible BODYSTRUCTURE
    BODYSTRUCTURE = "BODYSTRUCTURE"
    UID = "UID"
    MODSEQ = "MODSEQ"
    EMAILID = "EMAILID"
    THREADID = "THREADID"
    SAVEDATE = "SAVEDATE"
    PREVIEW = "PREVIEW"
    PREVIEW_LAZY = "PREVIEW (LAZY)"


class SectionText(enum.StrEnum):
    HEADER = "HEADER"
    HEADER_FIELDS = "HEADER.FIELDS"
    HEADER_FIELDS_NOT = "HEADER.FIELDS.NOT"
    TEXT = "TEXT"
    MIME = "MIME"


@dataclass(frozen=True, slots=True)
class Section:
    """``BODY[1.2.HEADER.FIELDS (From To)]``: ``parts=(1, 2)``; ``headers`` upper-cased."""

    parts: tuple[int, ...] = ()
    text: SectionText | None = None
    headers: tuple[str, ...] = ()

    def __str__(self) -> str:
        out = ".".join(str(p) for p in self.parts)
        if self.text is not None:
            out = f"{out}.{self.text.value}" if out else self.text.value
            if self.text in (SectionText.HEADER_FIELDS, SectionText.HEADER_FIELDS_NOT):
                out += " (" + " ".join(self.headers) + ")"
        return out


@dataclass(frozen=True, slots=True)
class FetchBody:
    """``BODY[section]<origin.count>`` / ``BODY.PEEK[...]`` (RFC 3501 §6.4.5); with ``binary``
    ``BINARY[part]<origin.count>`` / ``BINARY.PEEK[...]``, and with ``size`` too
    ``BINARY.SIZE[part]`` (RFC 3516 §4.3: the content decoded, only a part number)."""

    section: Section
    partial: tuple[int, int] | None = None  # (origin, count)
    peek: bool = False
    binary: bool = False
    size: bool = False

    def response_name(self) -> str:
        """Name of the item in the FETCH response: no ``.PEEK``, only the origin (§7.4.2)."""
        kind = "BINARY.SIZE" if self.size else "BINARY" if self.binary else "BODY"
        name = f"{kind}[{self.section}]"
        if self.partial is not None:
            name += f"<{self.partial[0]}>"
        return name

    @property
    def sets_seen(self) -> bool:
        """RFC 3501 §6.4.5: BODY[...] (not PEEK) implicitly sets ``\\Seen``; so does BINARY[...]
        (RFC 3516 §4.3), never BINARY.SIZE."""
        return not self.peek and not self.size


FetchItem = FetchAttr | FetchBody

#: RFC 3501 §6.4.5 macros.
FETCH_MACROS: dict[str, tuple[FetchAttr, ...]] = {
    "ALL": (FetchAttr.FLAGS, FetchAttr.INTERNALDATE, FetchAttr.RFC822_SIZE, FetchAttr.ENVELOPE),
    "FAST": (FetchAttr.FLAGS, FetchAttr.INTERNALDATE, FetchAttr.RFC822_SIZE),
    "FULL": (
        FetchAttr.FLAGS, FetchAttr.INTERNALDATE, FetchAttr.RFC822_SIZE, FetchAttr.ENVELOPE, FetchAttr.BODY,
    ),
}  # fmt: skip
