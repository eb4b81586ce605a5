"""Per-address connection counting and the unit an address is counted in (SPEC §6), pure.

Login throttling needs state shared by every node and lives with the store
(``gateway/accounts/throttle.py``); this module only keeps what a single listener counts.
"""

from __future__ import annotations

import ipaddress

from smtp import replies
from smtp.replies import Reply


def client_key(ip: str) -> str:
    """The unit an address is counted in: the IPv4 address, or the IPv6 /64 (one host's
    usual allocation), IPv4-mapped IPv6 counted as IPv4.  Unparseable text is kept as is."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class ConnectionLimiter:
    """Open connections per client address (IPv6 per /64), with an optional global cap."""

    def __init__(self, max_per_ip: int, max_total: int | None = None) -> None:
        self.max_per_ip = max_per_ip
        self.max_total = max_total
        self._open: dict[str, int] = {}
        self._total = 0

    def open(self, ip: str) -> Reply | None:
        """Count a new connection; a reply (421 4.7.0) means refuse it and close."""
        key = client_key(ip)
        current = self._open.get(key, 0)
        if current >= self.max_per_ip or (self.max_total is not None and self._total >= self.max_total):
            return replies.TOO_MANY_CONNECTIONS
        self._open[key] = current + 1
        self._total += 1
        return None

    def close(self, ip: str) -> None:
        key = client_key(ip)
        current = self._open.get(key, 0)
        if current <= 0:
            return
        self._total -= 1
        if current == 1:
            del self._open[key]
        else:
            self._open[key] = current - 1

    def count(self, ip: str) -> int:
        return self._open.get(client_key(ip), 0)

    @property
    def total(self) -> int:
        return self._total
