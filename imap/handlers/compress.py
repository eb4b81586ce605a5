"""COMPRESS (RFC 4978 §3), authenticated and selected states: the tagged OK is the last
uncompressed octets; the shell (:mod:`imap.server`) then deflates both directions
(:mod:`imap.compress`). A second COMPRESS is ``NO [COMPRESSIONACTIVE]``; a mechanism other
than DEFLATE is a BAD."""

from __future__ import annotations

from imap.proto import commands as c
from imap.proto import replies
from imap.proto.errors import BadCommand, CommandFailed
from imap.proto.replies import Reply
from imap.session import Session


async def compress(s: Session, cmd: c.Compress) -> Reply:
    if s.compressed or s.compress_requested:
        raise CommandFailed(replies.COMPRESSION_ACTIVE)
    if cmd.mechanism != "DEFLATE":
        raise BadCommand(replies.UNKNOWN_COMPRESSION)
    s.compress_requested = True  # the session reads no further input until the shell switched
    return replies.COMPRESS_COMPLETED
