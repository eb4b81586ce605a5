"""Free loopback ports for servers started by tests."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_given: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now and below the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, which
    outgoing connections (to PostgreSQL, say) also draw from: between this call and the
    server's own bind one of them could take it (seen: EADDRINUSE in the PostgreSQL pass).
    Ports below that range are only ever taken by an explicit bind; each is given once per
    process.
    """
    high = _ephemeral_low() - 1
    for _ in range(200):
        port = random.randint(20000, high) if high > 21000 else random.randint(1024, 65535)
        if port in _given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _given.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # fall back to the kernel's pick
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def listen_env(names: tuple[str, ...] = ("mx", "submission", "submissions", "imap", "imaps", "http")) -> dict[str, str]:
    """``GATEWAY__LISTEN__*`` variables putting every listener on its own free port."""
    return {f"GATEWAY__LISTEN__{n.upper()}": f"127.0.0.1:{free_port()}" for n in names}


def wait_port(host: str, port: int, timeout: float = 20.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
