"""COMPRESS=DEFLATE (RFC 4978), sans-IO: one raw DEFLATE stream each way (RFC 1951, no zlib
header: ``wbits=-15``), as the shell (:mod:`imap.server`) wraps a connection's reads and
writes once the session answered ``COMPRESS DEFLATE`` with OK.

Every write is ended with a sync flush (RFC 4978 §4: the peer must be able to read a whole
response without waiting for more); reads are inflated in pieces of at most ``limit`` octets,
so a small compressed input never becomes one large buffer (the receiver's line and literal
limits then apply to what comes out, piece by piece).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

LEVEL = 6  # zlib's default: most of the gain, little CPU


class CompressionError(Exception):
    """The client's DEFLATE stream is corrupt or ended: the connection must be closed."""


class Deflate:
    def __init__(self, level: int = LEVEL) -> None:
        self._deflater = zlib.compressobj(level, zlib.DEFLATED, -15)
        self._inflater = zlib.decompressobj(-15)

    def compress(self, data: bytes) -> bytes:
        """``data`` compressed and sync-flushed: everything up to here can be inflated at once."""
        return self._deflater.compress(data) + self._deflater.flush(zlib.Z_SYNC_FLUSH)

    def decompress(self, data: bytes, limit: int) -> Iterator[bytes]:
        """The octets ``data`` inflates to, in pieces of at most ``limit`` octets."""
        pending = data
        while pending:
            try:
                out = self._inflater.decompress(pending, limit)
            except zlib.error as exc:
                raise CompressionError(str(exc)) from None
            if self._inflater.eof:  # a final block: the client ended the stream (RFC 4978 §3)
                raise CompressionError("end of the DEFLATE stream")
            pending = self._inflater.unconsumed_tail
            if out:
                yield out
            elif pending:  # no progress while input remains: cannot happen with a limit > 0
                raise CompressionError("no progress")
