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
  never stored, split or otherwise. That is mode ``"reject"`` (the MX's). Mode ``"normalize"``
  (submission's, as Postfix's ``smtpd_forbid_bare_newline = normalize``, issue 17) still ends
  the data only at a real ``<CRLF>.<CRLF>`` and still refuses a bare CR (``550 5.5.2``), but
  takes a bare LF as a line break: stored as CRLF, and the line after it dot-unstuffed like any
  other (what ``smtplib.sendmail(msg.as_bytes())`` sends for LF-terminated lines). A fake end
  with a bare LF is then a line of the one message, and what follows it is content;
* a NUL byte anywhere refuses the message (``550 5.6.0``): RFC 5322 §2.2/§3.5 allow no NUL
  in a message, nor does 8BITMIME (RFC 6152 §2, we offer no BINARYMIME), and a NUL is itself an
  outbound smuggling vector for receivers that end lines at it; never stored nor relayed;
* over the size limit, the reader keeps reading without storing (bounded memory) and
  answers ``552 5.3.4`` (RFC 1870 §6.3);
* :meth:`DataReader.refuse` does the same with a reply of the caller's (``452 4.3.1`` when the
  process's memory budget for bodies has no room), unless a permanent refusal above applies.

Work is done on whole chunks with ``bytes.find``/``count``/``replace``, never per byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from smtp import replies
from smtp.replies import Reply

BareLineEndings = Literal["reject", "normalize"]
BARE_LINE_ENDINGS: Final[tuple[BareLineEndings, ...]] = ("reject", "normalize")

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


def _has_bare_cr(segment: bytes) -> bool:
    return segment.count(b"\r") != segment.count(b"\r\n")


def _normalized(segment: bytes) -> bytes:
    """Every bare LF as CRLF; only for a segment without a bare CR."""
    if segment.count(b"\n") == segment.count(b"\r\n"):
        return segment
    return segment.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class DataReader:
    """Reads one message's DATA; create a new reader for each DATA command."""

    def __init__(self, max_size: int, *, bare_line_endings: BareLineEndings = "reject") -> None:
        if bare_line_endings not in BARE_LINE_ENDINGS:
            raise ValueError(f"bare_line_endings: one of {', '.join(BARE_LINE_ENDINGS)}")
        self.max_size = max_size
        self.normalize = bare_line_endings == "normalize"
        # The CRLF ending the DATA command line is the virtual start of the first line.
        self._buf = bytearray(b"\r\n")
        self._virtual = 2  # leading bytes of _buf that are not message content
        self._parts: list[bytes] = []
        self._size = 0  # message size after unstuffing, counted even when not stored
        self._line_start = True  # whether the last stored byte ended a line (CRLF)
        self._bare = False
        self._nul = False
        self._oversize = False
        self._refusal: Reply | None = None
        self._result: Done | Reply | None = None
        self.trailing = b""

    @property
    def size(self) -> int:
        return self._size

    @property
    def buffered(self) -> int:
        """Bytes held in memory: the kept-back tail plus the stored message."""
        return len(self._buf) + self.stored

    @property
    def stored(self) -> int:
        """Bytes of the message stored so far (0 once it is refused)."""
        return sum(len(p) for p in self._parts)

    @property
    def storing(self) -> bool:
        """False once the message is refused (bare line ending, NUL, size, :meth:`refuse`)."""
        return not (self._bare or self._nul or self._oversize or self._refusal)

    @property
    def finished(self) -> bool:
        return self._result is not None

    def refuse(self, reply: Reply) -> None:
        """Store nothing more: read on to the end of data, then answer ``reply``."""
        if self._refusal is None:
            self._refusal = reply
            self._parts.clear()

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
        if self.normalize:
            if not self._bare and _has_bare_cr(segment):
                self._bare = True
                self._parts.clear()
            if not self._bare:
                segment = _normalized(segment)
        elif not self._bare and _has_bare_line_ending(segment):
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
        if not (self._bare or self._nul or self._oversize or self._refusal):
            self._parts.append(body)

    def _finish(self) -> Done | Reply:
        if self._bare:
            return replies.BARE_CR if self.normalize else replies.BARE_LINE_ENDING
        if self._nul:
            return replies.NUL_IN_MESSAGE
        if self._oversize:
            return replies.MESSAGE_TOO_BIG
        if self._refusal is not None:
            return self._refusal
        message = b"".join(self._parts)
        self._parts.clear()
        return Done(message)
