"""What a command handler returns: the text (and response code) of its tagged OK.

Handlers write untagged responses through the session and *raise* :mod:`imap.proto.errors`
for NO / BAD, so the tagged response is produced in one place (DESIGN rule 5).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Ok:
    """``tag OK [code] text`` (RFC 3501 §7.1.1)."""

    text: str = "completed"
    code: str | None = None
