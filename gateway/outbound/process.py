"""One attempt on one claimed queue entry: plan, deliver, record, notify (SPEC §7).

* Local domains (hosted, or the patient domain) go through the composition root's
  :data:`InternalSubmit` (the delivery pipeline); remote ones through SMTP to a trusted domain,
  DKIM-signed with the key of their From: domain (:mod:`gateway.outbound.signing`).
* Results and the DSN they call for are written in one transaction: the DSN is itself a
  queue entry (null reverse-path, ``kind="dsn"``), so it survives a crash and is retried.
* An entry an operator bounced is closed as ``bounced`` with a DSN saying "cancelled by the
  operator" (5.0.0), never "delivery time expired".
* RFC 3461: failures per NOTIFY (default FAILURE); a "relayed" DSN for NOTIFY=SUCCESS when the
  peer has no DSN extension (§6.2.2; a DSN-capable peer reports success itself), "delivered"
  for local deliveries; one "delayed" DSN for NOTIFY=DELAY after ``queue.delay_notice_hours``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from gateway.accounts.pros import hosted_domain, trusted_domain
from gateway.outbound import queue
from gateway.outbound.client import deliver, local_failure
from gateway.outbound.dsn import DsnRecipient, build_dsn, notices
from gateway.outbound.mx import DnsResolver, RouteError, destinations
from gateway.outbound.queue import ClaimedEntry
from gateway.outbound.signing import sign_outgoing
from gateway.outbound.values import DeliveryReport, QueuedRecipient, RecipientResult, domain_of
from gateway.settings import QueueSettings
from gateway.store.db import Database
from gateway.store.keys import KeyService
from routing.address import InvalidAddress, normalise_domain

log = logging.getLogger("gateway.outbound")

# An operator's bounce (gateway queue bounce, the console): RFC 3463 has no code for "cancelled by
# an administrator"; 5.0.0 (other, permanent) with the reason in words, as Exim's "give up" does.
OPERATOR_BOUNCE_STATUS = "5.0.0"
OPERATOR_BOUNCE_TEXT = "cancelled by the operator"

# (mail_from or None for <>, recipients, raw message): the gateway's delivery pipeline.
InternalSubmit = Callable[[str | None, Sequence[str], bytes], Awaitable[None]]


@dataclass(frozen=True)
class Context:
    db: Database
    keys: KeyService
    settings: QueueSettings
    hostname: str  # server.hostname: EHLO, Reporting-MTA, MAILER-DAEMON@
    patient_domain: str
    tls: ssl.SSLContext  # verifies trusted peers against tls.ca_file, presents our certificate
    submit: InternalSubmit
    clock: Callable[[], datetime]
    resolver: DnsResolver | None = None
    public_tls: ssl.SSLContext | None = None  # for patient notifications outside the trust space

    @property
    def own_domains(self) -> frozenset[str]:
        """Domains the gateway writes mail from without hosting them: keyed on first use."""
        found = set()
        for name in (self.patient_domain, self.hostname):
            try:
                found.add(normalise_domain(name))
            except InvalidAddress:
                continue
        return frozenset(found)


@dataclass(frozen=True)
class DeliveryPlan:
    """How one queue entry goes out: handed back locally, over a route, or refused."""

    local: bool = False
    route: str | None = None
    message: bytes = b""
    tls: ssl.SSLContext | None = None
    refusal: DeliveryReport | None = None
    operator_dn: str | None = None  # the peer's certificate must carry it (SPEC §6)


def _plan(ctx: Context, entry: ClaimedEntry) -> DeliveryPlan:
    plan = _route(ctx, entry)
    if plan.local or plan.refusal is not None:
        return plan
    # Issue 17: everything leaving is signed, DSNs, MDNs and notifications included.
    return replace(plan, message=sign_outgoing(ctx.db, ctx.keys, entry.message, own_domains=ctx.own_domains))


def _route(ctx: Context, entry: ClaimedEntry) -> DeliveryPlan:
    rcpts = entry.envelope.recipients
    with ctx.db.read() as s:
        if entry.domain == ctx.patient_domain or hosted_domain(s, entry.domain) is not None:
            return DeliveryPlan(local=True, message=entry.message)
        if entry.kind == "notification":  # SPEC §4: the one message leaving the trust space
            return DeliveryPlan(route=ctx.settings.notification_relay or None, tls=ctx.public_tls or ctx.tls)
        trusted = trusted_domain(s, entry.domain)
        if trusted is None:  # removed from the trust list since it was queued
            return DeliveryPlan(refusal=local_failure(rcpts, permanent=True, status="5.7.1",
                                              text=f"{entry.domain} is not in the trust list"))
        if trusted.status != "active":
            return DeliveryPlan(refusal=local_failure(rcpts, permanent=False, status="4.7.1",
                                              text=f"{entry.domain} is suspended in the trust list"))
        if trusted.max_message_size and len(entry.message) > trusted.max_message_size:
            return DeliveryPlan(refusal=local_failure(rcpts, permanent=True, status="5.3.4",
                                              text=f"message larger than {entry.domain} accepts"))
        return DeliveryPlan(route=trusted.route, tls=ctx.tls, operator_dn=trusted.operator_dn)


async def attempt(ctx: Context, entry: ClaimedEntry) -> DeliveryReport:
    """Deliver once; never raises for delivery problems (they are results)."""
    rcpts = entry.envelope.recipients
    plan = await asyncio.to_thread(_plan, ctx, entry)
    if plan.refusal is not None:
        return plan.refusal
    if plan.local:
        try:
            await ctx.submit(entry.envelope.mail_from, [r.address for r in rcpts], plan.message)
        except Exception as exc:  # the pipeline's problem is temporary, unless it says it is final
            if getattr(exc, "permanent", False):  # the refusal's own status when it has one (a document refused)
                return local_failure(rcpts, permanent=True, status=getattr(exc, "enhanced", None) or "5.1.1",
                                     text=getattr(exc, "text", None) or "recipient refused")
            log.warning("local delivery from the queue failed",
                        extra={"entry": entry.uuid, "error": type(exc).__name__})
            if getattr(exc, "enhanced", None) == "4.2.2":  # every mailbox full (quota): kept, retried
                return local_failure(rcpts, permanent=False, status="4.2.2", text="mailbox full; will retry")
            return local_failure(rcpts, permanent=False, status="4.3.0", text="local delivery failed; will retry")
        results = tuple(RecipientResult(r, "delivered", 250, "2.0.0", "X-Gateway; delivered locally") for r in rcpts)
        return DeliveryReport(results, None, ("local",))
    try:
        hosts = await destinations(entry.domain, plan.route, ctx.resolver)
    except RouteError as exc:
        return local_failure(rcpts, permanent=exc.permanent, status=exc.status, text=exc.text)
    except ValueError:
        return local_failure(rcpts, permanent=False, status="4.3.5", text="the domain's route is misconfigured")
    assert plan.tls is not None
    budget = ctx.settings.lease_seconds * 0.8  # finish well before another worker may take the entry
    try:
        return await asyncio.wait_for(
            deliver(hosts, entry.envelope, plan.message, tls=plan.tls, helo=ctx.hostname,
                    connect_timeout=ctx.settings.connect_timeout_seconds,
                    command_timeout=ctx.settings.command_timeout_seconds, operator_dn=plan.operator_dn),
            timeout=budget,
        )
    except TimeoutError:
        return local_failure(rcpts, permanent=False, status="4.4.2", text="delivery took too long; will retry")


def _dsn_recipients(ctx: Context, entry: ClaimedEntry, report: DeliveryReport, now: datetime,
                    expired: bool) -> tuple[list[DsnRecipient], bool]:
    """The DSN recipients this attempt calls for, and whether a "delayed" DSN is among them."""
    env = entry.envelope
    found = notices(env, report.of("permanent"), "failed", now=now)
    temporary = report.of("temporary")
    if expired:  # RFC 3463 §3.5: X.4.7 delivery time expired
        found += notices(env, temporary, "failed", now=now, status="4.4.7")
    if "local" in report.notes:
        found += notices(env, report.of("delivered"), "delivered", now=now)
    elif "peer-without-dsn" in report.notes:
        found += notices(env, report.of("delivered"), "relayed", now=now)
    delayed: list[DsnRecipient] = []
    hours = ctx.settings.delay_notice_hours
    if temporary and not expired and hours and not env.delay_notified \
            and now - entry.created_at >= timedelta(hours=hours):
        delayed = notices(env, temporary, "delayed", now=now, retry_until=entry.expires_at)
    return found + delayed, bool(delayed)


def record(ctx: Context, entry: ClaimedEntry, report: DeliveryReport) -> str:
    """Write the attempt's outcome (and its DSN) in one transaction; returns the outcome."""
    now = ctx.clock()
    env = entry.envelope
    temporary = report.of("temporary")
    expired = bool(temporary) and now >= entry.expires_at
    dsn, delay_sent = _dsn_recipients(ctx, entry, report, now, expired)
    with ctx.db.write() as s:
        if temporary and not expired:
            remaining = replace(env.with_recipients(tuple(r.recipient for r in temporary)),
                                delay_notified=env.delay_notified or delay_sent)
            ok = queue.reschedule(s, ctx.keys, entry.uuid, entry.owner, envelope=remaining, results=report.results,
                                  now=now, retry_schedule_minutes=ctx.settings.retry_schedule_minutes) is not None
            outcome = "deferred"
        elif expired:
            ok = queue.fail(s, ctx.keys, entry.uuid, entry.owner, error="4.4.7 delivery time expired", now=now,
                            expired=True, results=report.results)
            outcome = "expired"
        else:
            ok = queue.complete(s, ctx.keys, entry.uuid, entry.owner, report.results, now=now)
            outcome = "delivered" if report.of("delivered") else "bounced"
        if not ok:
            return "lease-lost"
        if dsn and env.mail_from:
            message = build_dsn(reporting_mta=ctx.hostname, to=env.mail_from, recipients=dsn, original=entry.message,
                                now=now, envid=env.envid, ret=env.ret, arrival=entry.created_at,
                                cancelled=entry.bounced_by is not None)
            queue.enqueue(s, ctx.keys, domain=domain_of(env.mail_from), mail_from=None,
                          recipients=[QueuedRecipient(env.mail_from, ("NEVER",))], message=message, kind="dsn",
                          now=now, max_age=timedelta(hours=ctx.settings.max_age_hours))
    log.info("queue attempt", extra={"entry": entry.uuid, "domain": entry.domain, "outcome": outcome,
                                     "attempts": entry.attempts, "dsn": bool(dsn)})
    return outcome


async def process(ctx: Context, entry: ClaimedEntry) -> str:
    """Close (operator's bounce), expire, or attempt; then record.

    Returns delivered|deferred|bounced|expired|lease-lost.
    """
    if entry.bounced_by is not None:  # the operator gave up on it: a final failure, said as such
        report = local_failure(entry.envelope.recipients, permanent=True, status=OPERATOR_BOUNCE_STATUS,
                               text=OPERATOR_BOUNCE_TEXT)
    elif ctx.clock() >= entry.expires_at:
        rcpts = entry.envelope.recipients
        report = local_failure(rcpts, permanent=False, status="4.4.7", text="delivery time expired")
    else:
        report = await attempt(ctx, entry)
    return await asyncio.to_thread(record, ctx, entry, report)
