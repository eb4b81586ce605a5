"""What ENABLE (RFC 5161) has switched on in a session: one small value, :class:`Enabled`,
held by :class:`imap.session.Session` as ``enabled``; handlers ask it (``s.enabled.utf8``) rather
than keeping flags of their own.

:data:`ENABLEABLE` is the table of capabilities a client may ENABLE, by name, with the mode
each one sets; an extension that adds one (QRESYNC, ...) adds a row and a member.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


class Enabled(enum.Flag):
    NONE = 0
    CONDSTORE = enum.auto()  # RFC 7162 §3.1: MODSEQ in FETCH responses, HIGHESTMODSEQ
    UTF8_ACCEPT = enum.auto()  # RFC 6855 §3: UTF-8 quoted strings and mailbox names
    IMAP4REV2 = enum.auto()  # RFC 9051 Appendix A: the IMAP4rev2 replies (see :attr:`rev2`)
    QRESYNC = enum.auto()  # RFC 7162 §3.2: VANISHED, SELECT (QRESYNC ...); implies CONDSTORE

    @property
    def utf8(self) -> bool:
        """Mailbox names and strings go as UTF-8, not modified UTF-7 (RFC 6855 §3; IMAP4rev2
        includes it, RFC 9051 §5.1 and Appendix A)."""
        return bool(self._value_ & _UTF8_BITS)

    @property
    def rev2(self) -> bool:
        """IMAP4rev2 replies (RFC 9051 Appendix E): no RECENT response or ``\\Recent`` flag
        (item 12), no ``[UNSEEN]`` at SELECT (item 11), SEARCH answered with ESEARCH (item 4),
        a LIST response at SELECT (item 10), ``[CLOSED]`` when a SELECT replaces one (item 9),
        UID in every unsolicited FETCH (item 21)."""
        return bool(self._value_ & Enabled.IMAP4REV2._value_)

    @property
    def condstore(self) -> bool:
        return bool(self._value_ & Enabled.CONDSTORE._value_)

    @property
    def qresync(self) -> bool:
        return bool(self._value_ & Enabled.QRESYNC._value_)


# The tests above are on the members' integer values: ``Flag.__and__`` / ``__contains__`` make
# or look up a pseudo-member each time (microseconds), and FETCH asks once per item per message.
_UTF8_BITS = Enabled.UTF8_ACCEPT.value | Enabled.IMAP4REV2.value


#: ENABLE-able capability (upper case, as parsed) → (its spelling in ENABLED, what it sets).
ENABLEABLE: Mapping[str, tuple[str, Enabled]] = MappingProxyType({
    "CONDSTORE": ("CONDSTORE", Enabled.CONDSTORE),  # RFC 7162 §3.1
    "UTF8=ACCEPT": ("UTF8=ACCEPT", Enabled.UTF8_ACCEPT),  # RFC 6855 §3
    "IMAP4REV2": ("IMAP4rev2", Enabled.IMAP4REV2),  # RFC 9051 Appendix A
    "QRESYNC": ("QRESYNC", Enabled.QRESYNC | Enabled.CONDSTORE),  # RFC 7162 §3.2.3
})
