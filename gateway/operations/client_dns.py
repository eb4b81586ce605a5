"""The DNS records of a hosted domain, in zone-file syntax (``gateway domain hosted dns``).

* RFC 6186 SRV records, with RFC 8314 §5.1's preference for implicit TLS (``_imaps`` and
  ``_submissions`` get the lower priority); POP3 is published as "not offered" (target ``.``,
  RFC 6186 §3.4) so that clients do not look for it.
* ``autoconfig`` and ``autodiscover`` CNAMEs to the gateway's web listener (Thunderbird and
  Outlook look for them) and Outlook's ``_autodiscover._tcp`` SRV record.
* The MX hint (the gateway's host name) and the domain's DKIM TXT record.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.dkim_keys import zone_record
from gateway.operations.client_config import SERVERS, client_hostname
from gateway.settings import Settings
from gateway.store.models import HostedDomain
from routing.address import InvalidAddress, normalise_domain


@dataclass(frozen=True)
class DnsPlan:
    domain: str
    client_host: str  # IMAP, submission and the autoconfiguration web listener
    mx_host: str
    dkim_selector: str | None
    dkim_public_key: str | None


class NotHosted(LookupError):
    """The domain is not hosted here."""


def plan_for(session: Session, settings: Settings, domain: str) -> DnsPlan:
    """The records of hosted ``domain``; :class:`NotHosted` for any other name."""
    try:
        name = normalise_domain(domain)
    except InvalidAddress as exc:
        raise NotHosted(f"{domain!r}: {exc}") from None
    row = session.execute(select(HostedDomain).where(HostedDomain.name == name)).scalar_one_or_none()
    if row is None:
        raise NotHosted(f"{name} is not a hosted domain (see: gateway domain hosted list)")
    return DnsPlan(name, client_hostname(settings), settings.server.hostname, row.dkim_selector, row.dkim_public_key)


def _fqdn(name: str) -> str:
    return name.rstrip(".") + "."


_SERVICE = {("imap", True): "_imaps", ("imap", False): "_imap",
            ("smtp", True): "_submissions", ("smtp", False): "_submission"}


def zone_lines(plan: DnsPlan) -> list[str]:
    """The records to publish in ``plan.domain``'s zone, with ``;`` comments."""
    d, host, mx = plan.domain, _fqdn(plan.client_host), _fqdn(plan.mx_host)
    lines = [f"; {d}: records for the gateway (zone-file syntax, names absolute)",
             "; mail exchanger (hint: the gateway's MX host name)",
             f"{d}. IN MX 10 {mx}",
             "; RFC 6186 / RFC 8314: IMAP and submission, implicit TLS preferred"]
    for server in SERVERS:
        priority = 0 if server.implicit_tls else 10
        lines.append(f"{_SERVICE[(server.protocol, server.implicit_tls)]}._tcp.{d}. IN SRV "
                     f"{priority} 1 {server.port} {host}")
    lines += ["; POP3 is not offered (RFC 6186 §3.4)",
              f"_pop3s._tcp.{d}. IN SRV 0 0 0 .",
              f"_pop3._tcp.{d}. IN SRV 0 0 0 .",
              "; client autoconfiguration (Thunderbird autoconfig, Microsoft Autodiscover) over HTTPS",
              f"autoconfig.{d}. IN CNAME {host}",
              f"autodiscover.{d}. IN CNAME {host}",
              f"_autodiscover._tcp.{d}. IN SRV 0 1 443 {host}"]
    if plan.dkim_selector and plan.dkim_public_key:
        lines += ["; DKIM key the gateway signs this domain's mail with",
                  zone_record(plan.dkim_selector, d, plan.dkim_public_key)]
    else:
        lines.append("; no DKIM key for this domain")
    return lines
