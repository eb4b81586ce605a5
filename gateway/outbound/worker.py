"""The outbound queue worker, run inside ``gateway serve`` (SPEC §7, §11).

It claims due entries in bounded batches (never more than ``queue.concurrency`` in flight),
delivers them concurrently, and writes each result as it comes. Several processes, on one
host or many, may run a worker on the same database: claims are leases (see ``queue``).
Clock, resolver, TLS contexts and owner id are parameters; :func:`from_services` builds the
production ones from the settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gateway import metrics
from gateway.outbound import queue
from gateway.outbound.client import client_tls_context
from gateway.outbound.mx import DnsResolver, ReservedNamesResolver
from gateway.outbound.process import Context, InternalSubmit, process
from gateway.outbound.queue import ClaimedEntry
from gateway.settings import QueueSettings
from gateway.store.db import Database
from gateway.store.keys import KeyService
from gateway.store.partitions import QUEUE_BUCKETS
from gateway.store.services import Services

__all__ = ["OutboundWorker", "from_services", "start_worker"]

log = logging.getLogger("gateway.outbound.worker")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class OutboundWorker:
    def __init__(self, ctx: Context, *, owner: str) -> None:
        self.ctx = ctx
        self.owner = owner
        self._next_bucket = zlib.crc32(owner.encode()) % QUEUE_BUCKETS
        self._tasks: set[asyncio.Task[str]] = set()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    @property
    def settings(self) -> QueueSettings:
        return self.ctx.settings

    def _claim(self, limit: int) -> list[ClaimedEntry]:
        start = self._next_bucket  # this worker's own rotation over the buckets (issue 23)
        self._next_bucket = (start + 1) % QUEUE_BUCKETS
        with self.ctx.db.write() as s:
            return queue.claim_due(s, self.ctx.keys, owner=self.owner, now=self.ctx.clock(),
                                   lease=timedelta(seconds=self.settings.lease_seconds), limit=limit, start=start)

    async def claim(self, limit: int) -> list[ClaimedEntry]:
        return await asyncio.to_thread(self._claim, limit)

    async def _guarded(self, entry: ClaimedEntry) -> str:
        try:
            outcome = await process(self.ctx, entry)
            metrics.delivery(outcome)
            return outcome
        except Exception as exc:  # keep the worker alive; the lease runs out and the entry is retried
            log.error("queue entry processing failed", extra={"entry": entry.uuid, "error": type(exc).__name__})
            metrics.delivery("error")
            return "error"

    async def run_once(self) -> list[str]:
        """Claim one batch, process it (bounded concurrency), return the outcomes."""
        entries = await self.claim(self.settings.batch_size)
        if not entries:
            return []
        gate = asyncio.Semaphore(self.settings.concurrency)

        async def one(entry: ClaimedEntry) -> str:
            async with gate:
                return await self._guarded(entry)

        return list(await asyncio.gather(*(one(e) for e in entries)))

    async def drain(self, *, max_rounds: int = 10) -> list[str]:
        """Run batches until nothing is due (bounded): for tests and the ``queue run`` command."""
        outcomes: list[str] = []
        for _ in range(max_rounds):
            batch = await self.run_once()
            if not batch:
                break
            outcomes += batch
        return outcomes

    def wake(self) -> None:
        """Look for due work now (e.g. right after the pipeline queued something)."""
        self._wake.set()

    async def run(self) -> None:
        """Claim while there is room, until :meth:`stop`; sleep ``worker_interval_seconds`` when idle."""
        while not self._stopping.is_set():
            room = self.settings.concurrency - len(self._tasks)
            claimed: list[ClaimedEntry] = []
            if room > 0:
                try:
                    claimed = await self.claim(min(room, self.settings.batch_size))
                except Exception as exc:  # database away: try again later
                    log.error("queue claim failed", extra={"error": type(exc).__name__})
            for entry in claimed:
                task = asyncio.create_task(self._guarded(entry))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if claimed and len(claimed) == room:
                continue  # more may be due and there may be room again soon
            waiters: set[asyncio.Future[object]] = {
                asyncio.ensure_future(self._stopping.wait()), asyncio.ensure_future(self._wake.wait())}
            if room <= 0 or claimed:
                waiters |= set(self._tasks)  # type: ignore[arg-type]
            _done, pending = await asyncio.wait(waiters, timeout=self.settings.worker_interval_seconds,
                                                return_when=asyncio.FIRST_COMPLETED)
            for fut in pending:
                if fut not in self._tasks:
                    fut.cancel()
            self._wake.clear()

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self.run(), name=f"outbound-worker-{self.owner}")

    async def stop(self, *, grace: float = 30.0) -> None:
        """Stop claiming, let deliveries in flight finish (up to ``grace`` seconds), then cancel.

        A cancelled delivery keeps its lease: another worker retries it once the lease runs out.
        """
        self._stopping.set()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)


def default_owner(hostname: str) -> str:
    return f"{hostname}:{socket.gethostname()}:{os.getpid()}"[:47]


def start_worker(
    db: Database,
    keys: KeyService,
    *,
    settings: QueueSettings,
    hostname: str,
    patient_domain: str,
    tls: ssl.SSLContext,
    submit: InternalSubmit,
    owner: str | None = None,
    resolver: DnsResolver | None = None,
    public_tls: ssl.SSLContext | None = None,
    clock: Callable[[], datetime] = _utcnow,
) -> OutboundWorker:
    """Create and start a worker in the running loop; ``await worker.stop()`` to end it."""
    ctx = Context(db=db, keys=keys, settings=settings, hostname=hostname, patient_domain=patient_domain,
                  tls=tls, submit=submit, clock=clock, resolver=resolver, public_tls=public_tls)
    worker = OutboundWorker(ctx, owner=owner or default_owner(hostname))
    worker.start()
    return worker


def from_services(svc: Services, submit: InternalSubmit) -> OutboundWorker:
    """A started worker with the production parameters: TLS from ``[tls]``, the system DNS resolver."""
    import dns.asyncresolver

    s = svc.settings
    tls = client_tls_context(ca_file=s.path(s.tls.ca_file), cert_file=s.path(s.tls.cert_file),
                             key_file=s.path(s.tls.key_file), min_version=s.tls.min_version)
    public = ssl.create_default_context()  # notifications to personal addresses: public CAs
    public.minimum_version = ssl.TLSVersion.TLSv1_2
    return start_worker(svc.db, svc.keys, settings=s.queue, hostname=s.server.hostname,
                        patient_domain=s.domains.patient_domain, tls=tls, submit=submit,
                        resolver=ReservedNamesResolver(dns.asyncresolver.Resolver()), public_tls=public)
