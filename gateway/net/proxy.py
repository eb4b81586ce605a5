"""PROXY protocol v1/v2 on the TCP listeners, for nodes behind a TCP load balancer.

With ``listen.proxy_protocol`` on, every connection must start with a PROXY header
(HAProxy's protocol, v1 text or v2 binary) sent by an address in ``listen.proxy_trusted``;
the client address it carries is the one limits, throttles and the audit trail see.
Parsing is aiosmtpd's (``aiosmtpd.proxy_protocol.get_proxy``), a maintained
implementation of both versions; this module only adds the trust check.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from typing import Any

from aiosmtpd.proxy_protocol import get_proxy

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyRefused(Exception):
    """The connection did not come from a trusted proxy or carried no valid header."""


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def is_trusted(peer_ip: str, networks: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(peer_ip.split("%", 1)[0])
    except ValueError:
        return False
    return any(address in net for net in networks)


async def client_address(reader: Any, peer_ip: str, networks: Sequence[Network], timeout: float = 10.0) -> str:
    """Read the PROXY header; return the original client address (the peer's for LOCAL)."""
    if not is_trusted(peer_ip, networks):
        raise ProxyRefused("connection from an address that is not a trusted proxy")
    try:
        data = await asyncio.wait_for(get_proxy(reader), timeout)
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
        raise ProxyRefused("no PROXY header") from exc
    if not data.valid:
        raise ProxyRefused("invalid PROXY header")
    if data.src_addr is None:  # v2 LOCAL command (health checks): the proxy itself
        return peer_ip
    return str(data.src_addr)
