"""Where to deliver a domain's mail: the trust entry's route, else its MX (RFC 5321 §5.1).

The resolver is a parameter (``dns.asyncresolver.Resolver`` in production, a fake in tests).
Answers are read through ``preference``/``exchange`` (MX) and ``to_text()`` (A/AAAA) only.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import dns.exception
import dns.resolver

from routing.trust import parse_route

SMTP_PORT = 25
RESERVED_TLDS = ("test", "example", "invalid", "localhost")
RESERVED_DOMAINS = ("example.com", "example.net", "example.org")


def is_reserved(domain: str) -> bool:
    """RFC 2606 §2-3 / RFC 6761 §6: reserved names used for tests and documentation."""
    name = domain.lower().rstrip(".")
    return name.rsplit(".", 1)[-1] in RESERVED_TLDS or any(
        name == d or name.endswith("." + d) for d in RESERVED_DOMAINS)


class DnsResolver(Protocol):
    """The part of ``dns.asyncresolver.Resolver`` we use."""

    async def resolve(self, qname: str, rdtype: str) -> Iterable[Any]: ...


@dataclass(frozen=True)
class RouteError(Exception):
    """No destination: ``permanent`` decides bounce (5.x.x) or retry (4.x.x)."""

    permanent: bool
    status: str  # RFC 3463 enhanced status code
    text: str

    def __str__(self) -> str:
        return f"{self.status} {self.text}"


class ReservedNamesResolver:
    """Wraps the system resolver: RFC 2606 / RFC 6761 §6 reserved names never go to the DNS
    (they cannot resolve; asking leaks test traffic), they answer NXDOMAIN at once."""

    def __init__(self, inner: DnsResolver) -> None:
        self.inner = inner

    async def resolve(self, qname: str, rdtype: str) -> Iterable[Any]:
        if is_reserved(qname):
            raise dns.resolver.NXDOMAIN
        return await self.inner.resolve(qname, rdtype)


async def _lookup(resolver: DnsResolver, name: str, rdtype: str) -> list[Any] | None:
    """Records, or None when the name exists without records of that type (NoAnswer)."""
    try:
        return list(await resolver.resolve(name, rdtype))
    except dns.resolver.NoAnswer:
        return None
    except dns.resolver.NXDOMAIN:
        # RFC 3463 §3.2: X.1.2 bad destination system address
        raise RouteError(True, "5.1.2", f"domain {name} does not exist") from None
    except dns.exception.DNSException:  # timeout, SERVFAIL (NoNameservers), ...: temporary
        raise RouteError(False, "4.4.3", f"DNS lookup of {name} failed; will retry") from None


async def destinations(
    domain: str, route: str | None, resolver: DnsResolver | None, *, rng: random.Random | None = None
) -> list[tuple[str, int]]:
    """Hosts to try in order. ``route`` (host:port) wins over DNS; raises :class:`RouteError`."""
    if route:
        return [parse_route(route)]
    if resolver is None:
        raise RouteError(False, "4.4.3", "no route configured and no DNS resolver available")
    records = await _lookup(resolver, domain, "MX")
    if records is None or not records:
        # RFC 5321 §5.1: no MX records: the domain itself is the implicit MX, if it has an address.
        for rdtype in ("AAAA", "A"):
            if await _lookup(resolver, domain, rdtype):
                return [(domain, SMTP_PORT)]
        raise RouteError(True, "5.1.2", f"domain {domain} has no mail server (no MX, A or AAAA)")
    hosts: list[tuple[int, str]] = []
    for rec in records:
        name = str(rec.exchange).rstrip(".").lower()
        hosts.append((int(rec.preference), name))
    # RFC 7505 §3: a single MX of "." (null MX) says the domain accepts no mail.
    if len(hosts) == 1 and hosts[0][1] == "":
        raise RouteError(True, "5.1.10", f"domain {domain} accepts no mail (null MX, RFC 7505)")
    hosts = [h for h in hosts if h[1]]
    # RFC 5321 §5.1: lowest preference first; equal preferences in random order.
    (rng or random.Random()).shuffle(hosts)
    hosts.sort(key=lambda h: h[0])
    seen: list[str] = []
    for _pref, name in hosts:
        if name not in seen:
            seen.append(name)
    return [(name, SMTP_PORT) for name in seen]
