"""A smuggling-safe reader for the DATA phase (RFC 5321 §4.1.1.4, §4.5.2), sans-IO.

Feed it the bytes that follow the ``354`` reply; it answers :data:`NEED_MORE`, a
:class:`Done` with the message (dot-stuffing undone), or a :class:`~smtp.replies.Reply`
refusing the message.  Bytes after the end-of-data mark (pipelined commands) are left
in :attr:`DataReader.trailing`.

Rules (SPEC §6, SMTP smuggling, CVE-2023-51764/51765/51766 class):

* the data ends ONLY at ``<CRLF>.<CRLF>`` (RFC 5321 §4.1.1.4); the CRLF that ended the
  DATA command line counts as the first CRLF, so ``.<CRLF>`` at once is an empty message;
* a bare LF or bare CR anywhere (RFC 5321 §2.3.8: CR and LF only as a pair) refuses the
  whole message, after reading on to the real end-of-data so the session stays in step:
  ``<LF>.<LF>``, ``<LF>.<CRLF>``, ``<CR>.<CR>``, ``<CRLF>.<LF>`` ... never end it and are
  never stored, split or otherwise;
* a NUL byte anywhere refuses the message (``550 5.6.0``): RFC 5322 §2.2/§3.5 allow no NUL
  in a message, nor does 8BITMIME (RFC 6152 §2, we offer no BINARYMIME), and a NUL is itself an
  outbound smuggling vector for receivers that end lines at it; never stored nor relayed;
* over the size limit, the reader keeps reading without storing (bounded memory) and
  answers ``552 5.3.4`` (RFC 1870 §6.3).

Work is done on whole chunks with ``bytes.find``/``count``/``replace``, never per byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from smtp import replies
from smtp.replies import Reply

END: Final = b"\r\n.\r\n"
# Proper prefixes of END that a chunk may end with: kept back until the next chunk says
# whether they start the end-of-data mark.  Longest first.
_END_PREFIXES: Final = (b"\r\n.\r", b"\r\n.", b"\r\n", b"\r")


class NeedMore:
    """Feed more bytes."""

    _instance: NeedMore | None = None

    def __new__(cls) -> NeedMore:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_MORE"


NEED_MORE: Final = NeedMore()


@dataclass(frozen=True)
class Done:
    message: bytes  # CRLF line endings, dot-stuffing undone, without the final "."


def _has_bare_line_ending(segment: bytes) -> bool:
    """Segments never end in CR (kept back), so pairs are never split between them."""
    pairs = segment.count(b"\r\n")
    return segment.count(b"\n") != pairs or segment.count(b"\r") != pairs


class DataReader:
    """Reads one message's DATA; create a new reader for each DATA command."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        # The CRLF ending the DATA command line is the virtual start of the first line.
        self._buf = bytearray(b"\r\n")
        self._virtual = 2  # leading bytes of _buf that are not message content
        self._parts: list[bytes] = []
        self._size = 0  # message size after unstuffing, counted even when not stored
        self._line_start = True  # whether the last stored byte ended a line (CRLF)
        self._bare = False
        self._nul = False
        self._oversize = False
        self._result: Done | Reply | None = None
        self.trailing = b""

    @property
    def size(self) -> int:
        return self._size

    @property
    def buffered(self) -> int:
        """Bytes held in memory: the kept-back tail plus the stored message."""
        return len(self._buf) + sum(len(p) for p in self._parts)

    @property
    def finished(self) -> bool:
        return self._result is not None

    def feed(self, chunk: bytes) -> NeedMore | Done | Reply:
        if self._result is not None:
            raise RuntimeError("DataReader already finished; create a new one")
        buf = self._buf
        buf += chunk
        at = buf.find(END)
        if at >= 0:
            self._take(bytes(buf[self._virtual : at + 2]))  # the content keeps its last CRLF
            self.trailing = bytes(buf[at + len(END) :])
            self._buf = bytearray()
            self._result = self._finish()
            return self._result
        keep = next((len(p) for p in _END_PREFIXES if buf.endswith(p)), 0)
        cut = len(buf) - keep
        if cut > self._virtual:
            self._take(bytes(buf[self._virtual : cut]))
            del buf[:cut]
            self._virtual = 0
        return NEED_MORE

    def _take(self, segment: bytes) -> None:
        if not segment:
            return
        if not self._bare and _has_bare_line_ending(segment):
            self._bare = True
            self._parts.clear()
        if not self._nul and b"\x00" in segment:
            self._nul = True
            self._parts.clear()
        # RFC 5321 §4.5.2: a line starting with "." has that first "." removed.
        body = segment.replace(b"\r\n.", b"\r\n")
        if self._line_start and body.startswith(b"."):
            body = body[1:]
        self._line_start = segment.endswith(b"\r\n")
        self._size += len(body)
        if self._size > self.max_size:
            self._oversize = True
            self._parts.clear()
        if not (self._bare or self._nul or self._oversize):
            self._parts.append(body)

    def _finish(self) -> Done | Reply:
        if self._bare:
            return replies.BARE_LINE_ENDING
        if self._nul:
            return replies.NUL_IN_MESSAGE
        if self._oversize:
            return replies.MESSAGE_TOO_BIG
        message = b"".join(self._parts)
        self._parts.clear()
        return Done(message)
