"""A trusted peer's MX for tests: aiosmtpd with STARTTLS, recording what it receives."""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Sink:
    messages: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(bytes(envelope.content))
        return "250 2.0.0 stored"

    def message_ids(self) -> list[str]:
        with self.lock:
            found = [re.search(rb"Message-ID: (<[^>]+>)", m, re.IGNORECASE) for m in self.messages]
        return [m.group(1).decode() for m in found if m]


@contextmanager
def running_sink(port: int, cert_file: str, key_file: str, *, smtputf8: bool = True) -> Iterator[Sink]:
    """``smtputf8=False``: a peer that does not offer SMTPUTF8 (RFC 6531); aiosmtpd offers it by default."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_file, key_file)
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True,
                            ready_timeout=10, loop=asyncio.new_event_loop(), enable_SMTPUTF8=smtputf8)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
