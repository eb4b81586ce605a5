"""Message flags (RFC 3501 §2.3.2): the system flags, defined here once for the whole product.

System flags begin with ``\\`` and are matched case-insensitively; keywords are atoms kept
as given. ``\\Recent`` is a system flag the server sets, never stored by a client: a session
flag, one session sees a new message as recent (:mod:`imap.selected_view`).
"""

from __future__ import annotations

from collections.abc import Iterable

SYSTEM_FLAGS: tuple[str, ...] = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
RECENT = "\\Recent"
ANY_KEYWORD = "\\*"  # RFC 3501 §7.1 PERMANENTFLAGS: clients may create new keywords
_BY_UPPER = {flag.upper(): flag for flag in SYSTEM_FLAGS}


def is_system(flag: str) -> bool:
    """One of :data:`SYSTEM_FLAGS`, in any case (``\\Recent`` is not: it cannot be stored)."""
    return flag.upper() in _BY_UPPER


def is_recent(flag: str) -> bool:
    return flag.upper() == RECENT.upper()


def canonical(flag: str) -> str:
    """A system flag in its canonical case; a keyword unchanged."""
    return _BY_UPPER.get(flag.upper(), flag)


def normalise_flags(flags: Iterable[str]) -> list[str]:
    """The flags a client asks to store: system flags in canonical case, duplicates dropped,
    ``\\Recent`` left out (RFC 3501 §2.3.2, §6.4.6)."""
    out: list[str] = []
    for flag in flags:
        if is_recent(flag):
            continue
        value = canonical(flag)
        if value not in out:
            out.append(value)
    return out
