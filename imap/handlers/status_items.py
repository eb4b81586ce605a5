"""The ``* STATUS`` response (RFC 3501 §7.2.4), for STATUS and for LIST-STATUS (RFC 5819),
with SIZE (RFC 8438), MAILBOXID (RFC 8474 §4.3), DELETED and DELETED-STORAGE (RFC 9208 §4.2, RFC 9051 §6.3.11)."""

from __future__ import annotations

from imap.backend import FolderStatus
from imap.proto import encoder
from imap.proto.commands import StatusItem


def mailbox_id(status: FolderStatus) -> bytes:
    """RFC 8474 §4.1: the objectid in parentheses, as the MAILBOXID code and status item give it."""
    return b"(" + status.mailbox_id.encode("ascii") + b")"


def status_line(name: str, status: FolderStatus, items: tuple[StatusItem, ...], appendlimit: int, *,
                utf8: bool = False) -> bytes:
    """``utf8``: the name as a UTF-8 string (RFC 6855 §3, IMAP4rev2) rather than modified UTF-7."""
    values = {
        StatusItem.MESSAGES: status.messages, StatusItem.RECENT: status.recent, StatusItem.UIDNEXT: status.uidnext,
        StatusItem.UIDVALIDITY: status.uidvalidity, StatusItem.UNSEEN: status.unseen,
        StatusItem.HIGHESTMODSEQ: status.highestmodseq, StatusItem.APPENDLIMIT: appendlimit,
        StatusItem.SIZE: status.size, StatusItem.DELETED: status.deleted,
        # RFC 9208 §4.2.2: what an EXPUNGE would free, in KiB like STORAGE (§5.1)
        StatusItem.DELETED_STORAGE: -(-status.deleted_octets // 1024),
    }  # fmt: skip
    words = [item.value.encode() + b" " + (mailbox_id(status) if item is StatusItem.MAILBOXID else
                                           b"%d" % values[item]) for item in items]
    return encoder.untagged(b"STATUS " + encoder.mailbox(name, utf8=utf8) + b" (" + b" ".join(words) + b")")
