"""Connection counting per client address (:mod:`smtp.throttle`): IPv6 per /64."""

from __future__ import annotations

from smtp import replies
from smtp.throttle import ConnectionLimiter, client_key


def test_connection_limiter() -> None:
    limiter = ConnectionLimiter(max_per_ip=2, max_total=3)
    assert limiter.open("192.0.2.1") is None
    assert limiter.open("192.0.2.1") is None
    assert limiter.open("192.0.2.1") == replies.TOO_MANY_CONNECTIONS
    assert limiter.count("192.0.2.1") == 2
    assert limiter.open("192.0.2.2") is None
    assert limiter.open("192.0.2.3") == replies.TOO_MANY_CONNECTIONS  # global cap
    limiter.close("192.0.2.1")
    assert limiter.open("192.0.2.3") is None
    for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.3", "198.51.100.9"):
        limiter.close(ip)  # closing more than opened never goes negative
    assert limiter.total == 0 and limiter.count("192.0.2.1") == 0
    assert replies.TOO_MANY_CONNECTIONS.code == 421


def test_ipv6_counted_per_64() -> None:
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key("not-an-ip") == "not-an-ip"
    limiter = ConnectionLimiter(max_per_ip=1)
    assert limiter.open("2001:db8::1") is None
    assert limiter.open("2001:db8::2") == replies.TOO_MANY_CONNECTIONS
