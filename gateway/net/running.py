"""What a started listener (or background task) hands back to the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass
class Running:
    name: str
    address: str
    description: str
    close: Callable[[], Awaitable[None]]
    listen_fds: tuple[int, ...] = ()
    """Listening sockets' descriptors, for listeners that the SMTP processes share
    (``gateway.delivery.smtp_processes``)."""
