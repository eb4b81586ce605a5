"""Authentication-failure throttling and per-IP connection counting (SPEC §6), pure.

No clock is read here: every call takes ``now`` (seconds, any monotonic origin).  The
state is bounded: old keys are evicted first once ``max_tracked`` is reached, and only the
last ``lockout_after`` failures per key are kept.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass

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


@dataclass(frozen=True)
class ThrottleConfig:
    window: float = 900.0  # seconds over which failures count
    account_delay_after: int = 3  # failures before answers are delayed
    account_lockout_after: int = 10  # failures before the account is locked
    ip_delay_after: int = 5
    ip_lockout_after: int = 30
    base_delay: float = 1.0  # first delay; doubles with each further failure
    max_delay: float = 30.0
    lockout: float = 900.0  # seconds a lockout lasts
    max_tracked: int = 100_000


@dataclass(frozen=True)
class ThrottleVerdict:
    allowed: bool
    delay: float  # seconds to wait before answering the attempt
    locked_until: float | None
    reason: str  # "auth.ok" | "auth.delayed" | "auth.account_locked" | "auth.ip_locked"
    reply: Reply | None  # what to answer instead of trying the credentials


class AuthThrottle:
    """Failures per account and per client address over a sliding window -> delay, then lockout."""

    def __init__(self, config: ThrottleConfig | None = None) -> None:
        self.config = config or ThrottleConfig()
        self._failures: dict[str, deque[float]] = {}
        self._locked: dict[str, float] = {}

    @staticmethod
    def _account_key(account: str | None) -> str | None:
        return None if account is None else "a:" + account.strip().casefold()

    def _keys(self, account: str | None, ip: str) -> list[tuple[str, int, int]]:
        c = self.config
        keys = [("i:" + client_key(ip), c.ip_delay_after, c.ip_lockout_after)]
        akey = self._account_key(account)
        if akey is not None:
            keys.insert(0, (akey, c.account_delay_after, c.account_lockout_after))
        return keys

    def _recent(self, key: str, now: float) -> int:
        times = self._failures.get(key)
        if times is None:
            return 0
        while times and times[0] <= now - self.config.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        return len(times)

    def _lock_of(self, key: str, now: float) -> float | None:
        until = self._locked.get(key)
        if until is None:
            return None
        if now >= until:  # lockout over: start afresh
            del self._locked[key]
            self._failures.pop(key, None)
            return None
        return until

    def verdict(self, account: str | None, ip: str, now: float) -> ThrottleVerdict:
        delay = 0.0
        for key, delay_after, _ in self._keys(account, ip):
            until = self._lock_of(key, now)
            if until is not None:
                reason = "auth.account_locked" if key.startswith("a:") else "auth.ip_locked"
                return ThrottleVerdict(False, 0.0, until, reason, replies.AUTH_TOO_MANY_FAILURES)
            count = self._recent(key, now)
            if count >= delay_after:
                step = self.config.base_delay * 2.0 ** min(count - delay_after, 32)
                delay = max(delay, min(step, self.config.max_delay))
        return ThrottleVerdict(True, delay, None, "auth.delayed" if delay else "auth.ok", None)

    def record_failure(self, account: str | None, ip: str, now: float) -> ThrottleVerdict:
        for key, _, lockout_after in self._keys(account, ip):
            if self._lock_of(key, now) is not None:
                continue
            times = self._failures.pop(key, None)
            if times is None or times.maxlen != lockout_after:
                times = deque(times or (), maxlen=lockout_after)
            times.append(now)
            self._failures[key] = times  # re-inserted: most recently used last
            if self._recent(key, now) >= lockout_after:
                self._locked[key] = now + self.config.lockout
        self._evict()
        return self.verdict(account, ip, now)

    def record_success(self, account: str | None, ip: str, now: float) -> None:
        """A success clears the account's failures, not the address's (a valid account
        must not let one client reset its own guessing budget)."""
        akey = self._account_key(account)
        if akey is not None:
            self._failures.pop(akey, None)

    def _evict(self) -> None:
        limit = self.config.max_tracked
        while len(self._failures) > limit:
            del self._failures[next(iter(self._failures))]
        while len(self._locked) > limit:
            del self._locked[next(iter(self._locked))]

    @property
    def tracked(self) -> int:
        return len(self._failures) + len(self._locked)


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
