"""Mail the gateway writes itself (DSNs, bounces, MDNs, patient notifications).

It goes through the same routing decisions (sender kind ``gateway``, channel
``internal``) and the same delivery pipeline as everything else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from gateway.delivery.directory import Directory
from gateway.delivery.pipeline import Delivered, Inbound, Pipeline, Rcpt
from routing.address import InvalidAddress, parse_address
from routing.decide import decide_rcpt
from routing.facts import NO_CONVERSATION, Sender

log = logging.getLogger("gateway.internal")


class RecipientRefused(Exception):
    """No recipient of an internal message may receive it (reason codes in ``reasons``).

    ``permanent``: the queue worker bounces instead of retrying (gateway.outbound.process)."""

    permanent = True

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = reasons


class InternalMail:
    def __init__(self, directory: Directory, pipeline: Pipeline) -> None:
        self.directory = directory
        self.pipeline = pipeline

    async def submit(self, mail_from: str | None, recipients: Sequence[str], raw: bytes, *,
                     kind: str = "message", notification: bool = False) -> Delivered:
        return await asyncio.to_thread(self.submit_sync, mail_from, recipients, raw, kind=kind,
                                       notification=notification)

    def submit_sync(self, mail_from: str | None, recipients: Sequence[str], raw: bytes, *,
                    kind: str = "message", notification: bool = False) -> Delivered:
        sender_address = parse_address(mail_from) if mail_from else None
        sender = Sender(kind="gateway", address=sender_address, channel="internal")
        snap = self.directory.snapshot()
        accepted: list[Rcpt] = []
        refused: list[str] = []
        with self.directory.db.read() as session:
            for text in recipients:
                try:
                    address = parse_address(text)
                except InvalidAddress:
                    refused.append("rcpt.malformed")
                    continue
                facts, target = self.directory.recipient(session, address, snap, notification=notification)
                verdict = decide_rcpt(sender, facts, NO_CONVERSATION, snap.trust)
                if verdict.accept and target is not None:
                    accepted.append(Rcpt(address, target))
                else:
                    refused.append(verdict.reason)
        if not accepted:
            raise RecipientRefused(refused)
        if refused:
            log.warning("internal message: some recipients refused", extra={"reasons": refused})
        inbound = Inbound(mail_from=sender_address, recipients=tuple(accepted), actor="system",
                          protocol="local", sender_is_professional=False, kind=kind)
        return self.pipeline.deliver_sync(inbound, raw)

    async def submit_callback(self, mail_from: str | None, recipients: Sequence[str], raw: bytes) -> None:
        """The ``InternalSubmit`` shape the outbound worker calls for DSNs."""
        await self.submit(mail_from, recipients, raw, kind="dsn")
