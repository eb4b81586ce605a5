"""The resource budgets of one process (issue 15): open files, connection caps, bodies in memory.

At start the soft ``RLIMIT_NOFILE`` is raised to the hard limit (at most ``limits.open_files``).
A share of it is reserved (``limits.reserved_files``; by default 3 descriptors per database
connection, for SQLite's database, journal and shared-memory files, 2 per outbound
delivery and 128 for logs, pipes, DNS and uploads); the rest is split between the listeners
whose ``limits.<listener>_connections`` is 0, in :data:`WEIGHTS` proportions. The caps add
up to at most the descriptors left, so a flood is refused at accept (``gateway.net.accept``)
and never reaches ``EMFILE``.

Caps hold per process: each SMTP process (``smtp.processes``) has its own open files
and its own caps; the per-address SMTP caps are split between the processes
(``ceil(cap / processes)`` each) so that one address gets about ``cap`` over them all.
"""

from __future__ import annotations

import logging
import math
import resource
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.net.accept import AddressLimit, Gate, RefusalLog
from gateway.net.bodies import COPIES, STEP, BodyBudget
from gateway.net.proxy import Network

if TYPE_CHECKING:
    from gateway.settings import Settings

log = logging.getLogger("gateway.limits")

LISTENERS = ("mx", "submission", "submissions", "imap", "imaps", "http")
SMTP_LISTENERS = ("mx", "submission", "submissions")
WEIGHTS = {"mx": 3, "submission": 1, "submissions": 1, "imap": 2, "imaps": 2, "http": 1}
FIXED_RESERVE = 128


def raise_open_files(ceiling: int) -> int:
    """Raise the soft open-file limit to the hard limit (at most ``ceiling``; 0: leave it);
    returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if ceiling <= 0:
        return soft
    target = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit", extra={"soft": soft, "hard": hard, "error": str(exc)})
            return soft
        return target
    return soft


def reserved_files(settings: Settings) -> int:
    if settings.limits.reserved_files:
        return settings.limits.reserved_files
    pool = settings.storage.pool_size + settings.storage.max_overflow
    return 3 * pool + 2 * settings.queue.concurrency + FIXED_RESERVE


@dataclass(frozen=True)
class Plan:
    """What one process allows: its open files, reserve, and per listener caps."""

    open_files: int
    reserved: int
    caps: dict[str, int]
    per_address: dict[str, int]

    @property
    def over_budget(self) -> bool:
        return sum(self.caps.values()) > self.open_files - self.reserved


def plan(settings: Settings, open_files: int) -> Plan:
    limits = settings.limits
    reserved = reserved_files(settings)
    usable = max(open_files - reserved, len(LISTENERS))
    explicit = {n: limits.connections(n) for n in LISTENERS if limits.connections(n)}
    auto = [n for n in LISTENERS if n not in explicit]
    left = max(usable - sum(explicit.values()), len(auto))
    weight = sum(WEIGHTS[n] for n in auto) or 1
    caps = {**{n: max(1, left * WEIGHTS[n] // weight) for n in auto}, **explicit}
    processes = settings.smtp.processes
    per_address = {}
    for name in LISTENERS:
        share = limits.per_address(name)
        if name in SMTP_LISTENERS and processes > 1:
            share = math.ceil(share / processes)
        per_address[name] = min(share, caps[name])
    return Plan(open_files, reserved, {n: caps[n] for n in LISTENERS}, per_address)


class Budgets:
    """One process's budgets: a :class:`Gate` per listener, one refusal log, one
    :class:`~gateway.net.bodies.BodyBudget` for message bodies in memory."""

    def __init__(self, settings: Settings, open_files: int | None = None) -> None:
        self.settings = settings
        files = raise_open_files(settings.limits.open_files) if open_files is None else open_files
        self.plan = plan(settings, files)
        self.refusals = RefusalLog()
        self._gates: dict[str, Gate] = {}
        self._limits: dict[str, AddressLimit] = {}
        limits = settings.limits
        self.bodies = BodyBudget(limits.body_memory_bytes, limits.body_memory_per_address,
                                 limits.body_memory_wait_seconds)
        if self.bodies.per_address < COPIES * settings.smtp.max_message_size + STEP:
            log.warning("limits.body_memory_per_address is below 4 x smtp.max_message_size: the largest "
                        "messages will always get a temporary failure",
                        extra={"per_address": self.bodies.per_address,
                               "max_message_size": settings.smtp.max_message_size})
        if self.plan.over_budget:
            log.warning("connection caps exceed the open files left after the reserve",
                        extra={"open_files": files, "reserved": self.plan.reserved, "caps": self.plan.caps})

    def gate(self, listener: str, deferred: tuple[Network, ...] = ()) -> Gate:
        """The gate of ``listener`` (one per process, shared by its sockets)."""
        gate = self._gates.get(listener)
        if gate is None:
            gate = Gate(listener, self.plan.caps[listener], self.plan.per_address[listener],
                        refusals=self.refusals, deferred=deferred, address_limit=self._limits.get(listener))
            self._gates[listener] = gate
        return gate

    def address_limits(self, listener: str, lookup: AddressLimit) -> None:
        """Per-address allowances of ``listener`` from ``lookup`` (the MX: the trust list's
        :meth:`routing.trust.TrustList.connection_limit`), split between the SMTP processes as
        the default is, and never above the listener's cap."""
        processes = self.settings.smtp.processes if listener in SMTP_LISTENERS else 1
        cap = self.plan.caps[listener]

        def limit(ip: str) -> int | None:
            own = lookup(ip)
            return None if own is None else min(cap, math.ceil(own / processes))

        self._limits[listener] = limit
        if listener in self._gates:
            self._gates[listener].address_limit = limit

    def describe(self) -> str:
        caps = ", ".join(f"{n} {self.plan.caps[n]} ({self.plan.per_address[n]}/address)" for n in LISTENERS)
        return f"{self.plan.open_files} open files, {self.plan.reserved} reserved; {caps}"


def process_budgets(settings: Settings) -> Budgets:
    """This process's budgets (the open-file limit raised), logged once; the composition root
    makes them when its first listener starts (``gateway.app.gateway.Gateway.budgets``)."""
    made = Budgets(settings)
    log.info("connection budgets", extra={"plan": made.describe()})
    return made
