"""What a call to the session gives the shell (:class:`Output`) and the events in it."""

from __future__ import annotations

from dataclasses import dataclass

from smtp.replies import Reply


@dataclass(frozen=True, slots=True)
class StartTls:
    """Write the output, then run the TLS handshake and call :meth:`Session.tls_started`."""


@dataclass(frozen=True, slots=True)
class Close:
    """Write the output, then close the connection."""


@dataclass(frozen=True, slots=True)
class MessageRefused:
    """The DATA reader refused a message (smuggling, NUL, size, no room in the memory budget)."""

    reply: Reply


Event = StartTls | Close | MessageRefused


@dataclass(frozen=True, slots=True)
class Output:
    data: bytes = b""  # reply lines, CRLF-terminated, in order
    commands: int = 0  # command and SASL lines read in full (each restarts the idle deadline)
    message_bytes: int = 0  # DATA bytes read (the deadline's minimum data rate)
    events: tuple[Event, ...] = ()
    more: bool = False  # input is left: write this, then call receive_data(b"") before reading more

    @property
    def starttls(self) -> bool:
        return any(isinstance(e, StartTls) for e in self.events)

    @property
    def closes(self) -> bool:
        return any(isinstance(e, Close) for e in self.events)
