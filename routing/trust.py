"""The trust list: which professional domains belong to the trust space (SPEC §6).

Each entry carries the fields of the MSSanté "liste blanche" (domain, description,
operator certificate DN, contacts, last update) plus our own policy (DKIM, route
override, TLS, size limit, status).  Pure values: loading from XML/TOML/the database
is the job of ``gateway``.

Connections per entry (issue 17): ``networks`` are the operator's sending addresses and
``max_connections`` how many connections each of those addresses may hold on the MX (instead
of ``limits.mx_per_address``); the MX's gate asks :meth:`TrustList.connection_limit` by client
address at accept time, before any TLS, since the address is all it knows then.

DKIM per entry (SPEC §4, issue 17): ``dkim_policy`` says where the domain's keys come from
(``dns``, ``pinned`` selector and key, or ``none``: not checked); ``dkim_required`` says
whether a passing signature is needed on top of the operator certificate. An entry with no
certificate DN always needs one (unless its policy is ``none``: a private link).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Literal, get_args

from routing.address import InvalidAddress, normalise_domain

DkimPolicy = Literal["dns", "none", "pinned"]
TrustStatus = Literal["active", "suspended"]
TrustOrigin = Literal["manual", "import"]

_DKIM_POLICIES: frozenset[str] = frozenset(get_args(DkimPolicy))
_STATUSES: frozenset[str] = frozenset(get_args(TrustStatus))
_ORIGINS: frozenset[str] = frozenset(get_args(TrustOrigin))
# RFC 6376 §3.1: a selector is a sequence of dot-separated sub-domain labels.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SELECTOR_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
MAX_CONNECTIONS = 100_000  # the same ceiling as limits.mx_per_address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(text: str) -> IpNetwork:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"not an IP address or network: {text.strip()!r}") from None


def parse_networks(text: str) -> tuple[str, ...]:
    """Addresses and CIDR networks separated by commas or spaces, normalised (``192.0.2.1/32``)."""
    return tuple(str(_network(part)) for part in re.split(r"[\s,]+", text) if part)


def _client_ip(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        found = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


@dataclass(frozen=True)
class Contacts:
    """Contacts from the official list (plain strings as published; may be absent)."""

    responsable: str | None = None
    support: str | None = None


@dataclass(frozen=True)
class TrustEntry:
    """One trusted professional domain and our policy for it."""

    domain: str  # A-label, lower case (routing.address.normalise_domain)
    description: str = ""
    operator_dn: str | None = None  # the operator's client certificate subject, RFC 4514 form
    contacts: Contacts = field(default_factory=Contacts)
    updated_at: datetime | None = None
    dkim_policy: DkimPolicy = "dns"
    dkim_selector: str | None = None
    dkim_public_key: str | None = None  # base64 "p=" value of the pinned key (RFC 6376 §3.6.1)
    dkim_required: bool = False  # a passing author signature is needed even with the certificate
    route: str | None = None  # "host:port" override of the MX lookup
    tls_required: bool = True
    max_message_size: int | None = None
    status: TrustStatus = "active"
    origin: TrustOrigin = "manual"
    max_connections: int | None = None  # per address of ``networks`` on the MX (None: the default)
    networks: tuple[str, ...] = ()  # the operator's sending addresses, CIDR (normalised here)

    def __post_init__(self) -> None:
        try:
            canonical = normalise_domain(self.domain)
        except InvalidAddress as exc:
            raise ValueError(f"trust entry domain {self.domain!r}: {exc}") from None
        if canonical != self.domain:
            raise ValueError(f"trust entry domain must be normalised: {canonical!r}, not {self.domain!r}")
        if self.dkim_policy not in _DKIM_POLICIES:
            raise ValueError(f"unknown DKIM policy {self.dkim_policy!r}")
        if self.dkim_policy == "pinned" and not (self.dkim_selector and self.dkim_public_key):
            raise ValueError("a pinned DKIM policy needs a selector and a public key")
        if self.dkim_required and self.dkim_policy == "none":
            raise ValueError("a required DKIM signature needs a key source: DKIM policy dns or pinned")
        if self.dkim_selector is not None and not _SELECTOR_RE.match(self.dkim_selector):
            raise ValueError(f"invalid DKIM selector {self.dkim_selector!r}")
        if self.route is not None:
            parse_route(self.route)
        if self.max_message_size is not None and self.max_message_size <= 0:
            raise ValueError("max_message_size must be positive")
        if self.status not in _STATUSES:
            raise ValueError(f"unknown status {self.status!r}")
        if self.origin not in _ORIGINS:
            raise ValueError(f"unknown origin {self.origin!r}")
        if self.max_connections is not None and not 1 <= self.max_connections <= MAX_CONNECTIONS:
            raise ValueError(f"max_connections must be from 1 to {MAX_CONNECTIONS}")
        object.__setattr__(self, "networks", tuple(str(_network(n)) for n in self.networks))

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def dkim_checked(self) -> bool:
        """Whether the gateway verifies this domain's DKIM signatures (policy dns or pinned)."""
        return self.dkim_policy != "none"

    def certificate_matches(self, tls: bool, peer_dn: str | None) -> bool:
        """The connection's verified client certificate is the one bound to this entry."""
        return self.operator_dn is not None and tls and dn_matches(self.operator_dn, peer_dn)

    @property
    def route_host_port(self) -> tuple[str, int] | None:
        return None if self.route is None else parse_route(self.route)


def parse_route(route: str) -> tuple[str, int]:
    """Split a ``host:port`` route (``[v6]:port`` for IPv6 literals); ValueError if malformed."""
    host, sep, port_text = route.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"route must be host:port, not {route!r}")
    if any(c.isspace() for c in host):
        raise ValueError(f"route must be host:port, not {route!r}")
    return host, int(port_text)


def _split_rdns(dn: str) -> list[str]:
    """RFC 4514 §3: split a DN string at unescaped commas (or ``/`` in OpenSSL one-line form)."""
    text = dn.strip()
    sep = ","
    if text.startswith("/"):  # OpenSSL "/C=FR/O=Operator/CN=host" form
        text, sep = text[1:], "/"
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == sep or (sep == "," and ch == ";"):
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [_normalise_rdn(p) for p in parts if p.strip()]


def _normalise_rdn(rdn: str) -> str:
    attr, _, value = rdn.partition("=")
    # X.520 directory strings compare case-insensitively with insignificant spaces folded.
    return attr.strip().upper() + "=" + " ".join(value.split()).casefold()


def dn_matches(expected: str, presented: str | None) -> bool:
    """Whether a presented certificate subject DN is the trust entry's operator DN.

    Attribute types and values compare case-insensitively, spaces around separators are
    ignored, and RDNs may come in either order (RFC 4514 strings list the most specific
    RDN first, the OpenSSL one-line form the least specific first).
    """
    if presented is None:
        return False
    want = _split_rdns(expected)
    got = _split_rdns(presented)
    if not want:
        return False
    return got == want or got == list(reversed(want))


class TrustList(Mapping[str, TrustEntry]):
    """An immutable mapping domain -> entry; only ``active`` entries count as trusted."""

    __slots__ = ("_entries", "_limits")

    def __init__(self, entries: Iterable[TrustEntry] = ()) -> None:
        table: dict[str, TrustEntry] = {}
        for entry in entries:
            if entry.domain in table:
                raise ValueError(f"duplicate trust entry for {entry.domain}")
            table[entry.domain] = entry
        self._entries: Mapping[str, TrustEntry] = MappingProxyType(table)
        # (network, max_connections) of the active entries that set both: connection_limit's table
        self._limits: tuple[tuple[IpNetwork, int], ...] = tuple(
            (_network(n), e.max_connections) for e in table.values()
            if e.active and e.max_connections is not None for n in e.networks)

    def __getitem__(self, domain: str) -> TrustEntry:
        return self._entries[domain]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"TrustList({len(self)} entries)"

    def entry(self, domain: str) -> TrustEntry | None:
        """The entry for a domain whatever its status (None when absent or not a domain)."""
        try:
            return self._entries.get(normalise_domain(domain))
        except InvalidAddress:
            return None

    def lookup(self, domain: str) -> TrustEntry | None:
        """The entry for a domain only when it is active (suspended domains are not trusted)."""
        found = self.entry(domain)
        return found if found is not None and found.active else None

    def is_trusted(self, domain: str) -> bool:
        return self.lookup(domain) is not None

    def by_operator_dn(self, dn: str | None) -> tuple[TrustEntry, ...]:
        """Active entries whose operator certificate DN matches ``dn``."""
        if dn is None:
            return ()
        return tuple(e for e in self._entries.values() if e.active and e.operator_dn and dn_matches(e.operator_dn, dn))

    def operator_entry(self, domain: str, dn: str | None) -> TrustEntry | None:
        """The active entry for ``domain`` or its nearest parent whose operator DN matches ``dn``.

        For the null reverse-path: an MTA writes its own notices from a host name under its
        domain (Postfix: ``MAILER-DAEMON@$myorigin``, by default ``$myhostname``), and the
        operator certificate bound to the parent domain vouches for it.
        """
        try:
            name = normalise_domain(domain)
        except InvalidAddress:
            return None
        labels = name.split(".")
        for i in range(len(labels) - 1):
            found = self._entries.get(".".join(labels[i:]))
            if found is not None and found.active and found.operator_dn and dn_matches(found.operator_dn, dn):
                return found
        return None

    def connection_limit(self, ip: str) -> int | None:
        """The connections one client address may hold on the MX by its operator's entry: the
        largest ``max_connections`` of the active entries whose ``networks`` hold ``ip`` (None:
        no entry says, the listener's default applies)."""
        if not self._limits:
            return None
        address = _client_ip(ip)
        if address is None:
            return None
        allowed = [limit for network, limit in self._limits if address in network]
        return max(allowed) if allowed else None

    def with_entry(self, entry: TrustEntry) -> TrustList:
        """A new list with ``entry`` added or replacing the one for its domain."""
        return TrustList([*(e for e in self._entries.values() if e.domain != entry.domain), entry])

    def without(self, domain: str) -> TrustList:
        return TrustList(e for e in self._entries.values() if e.domain != domain)

    def with_status(self, domain: str, status: TrustStatus) -> TrustList:
        return self.with_entry(replace(self._entries[domain], status=status))
