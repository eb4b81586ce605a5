"""Plain data for ENVELOPE and BODYSTRUCTURE (RFC 3501 §7.4.2).

:mod:`imap.message.mime` computes these from raw message bytes; the store may cache them (they are
plain frozen dataclasses of str / int / tuples); :mod:`imap.proto.encoder` writes them.
Strings are the header text as found (RFC 2047 encoded-words are *not* decoded).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EnvelopeAddress:
    """RFC 3501 §9 ``address``: (name adl mailbox host).

    A group start is ``EnvelopeAddress(None, None, "group", None)`` and its end is all ``None``
    (RFC 3501 §7.4.2 "RFC 2822 group syntax").
    """

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None


@dataclass(frozen=True, slots=True)
class Envelope:
    date: str | None = None
    subject: str | None = None
    from_: tuple[EnvelopeAddress, ...] = ()
    sender: tuple[EnvelopeAddress, ...] = ()
    reply_to: tuple[EnvelopeAddress, ...] = ()
    to: tuple[EnvelopeAddress, ...] = ()
    cc: tuple[EnvelopeAddress, ...] = ()
    bcc: tuple[EnvelopeAddress, ...] = ()
    in_reply_to: str | None = None
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Disposition:
    value: str  # e.g. "attachment"
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class BodyStructure:
    """One body part; ``parts`` non-empty means multipart (then most leaf fields are unused).

    ``lines`` is set for ``text/*`` and ``message/rfc822``; ``envelope`` and ``body`` for
    ``message/rfc822``. ``size`` is the body size in octets (RFC 3501 §7.4.2 body-fld-octets).
    """

    type: str
    subtype: str
    params: tuple[tuple[str, str], ...] = ()
    id: str | None = None
    description: str | None = None
    encoding: str = "7BIT"
    size: int = 0
    lines: int | None = None
    envelope: Envelope | None = None
    body: BodyStructure | None = None
    parts: tuple[BodyStructure, ...] = ()
    md5: str | None = None
    disposition: Disposition | None = None
    language: tuple[str, ...] | None = None
    location: str | None = None

    @property
    def is_multipart(self) -> bool:
        return bool(self.parts)
