"""Free loopback ports for servers started by tests.

Under pytest-xdist every worker draws from its own slice of the range, so two workers never
pick the same port between the check and the server's bind; ``GATEWAY_TEST_PORTS=LOW-HIGH``
narrows the range of a whole run (two runs at once each get their own).
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Mapping
from pathlib import Path

_given: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_range(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """The ports this process may give out, both ends included.

    The run's range (``GATEWAY_TEST_PORTS``, else 20000 up to the kernel's ephemeral range),
    cut in ``PYTEST_XDIST_WORKER_COUNT`` equal slices: worker ``gwN`` gets slice N.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    low, high = 20000, _ephemeral_low() - 1
    if env.get("GATEWAY_TEST_PORTS"):
        given = env["GATEWAY_TEST_PORTS"]
        first, _, last = given.partition("-")
        if not (first.isdigit() and last.isdigit() and 1024 <= int(first) < int(last) <= 65535):
            raise ValueError(f"GATEWAY_TEST_PORTS={given}: expected LOW-HIGH within 1024-65535")
        low, high = int(first), int(last)
    worker, count = env.get("PYTEST_XDIST_WORKER", ""), int(env.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if worker.startswith("gw") and worker[2:].isdigit() and count > 1:
        index, span = int(worker[2:]), (high - low + 1) // count
        low, high = low + index * span, low + (index + 1) * span - 1
    return low, high


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now and below the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, which
    outgoing connections (to PostgreSQL, say) also draw from: between this call and the
    server's own bind one of them could take it (seen: EADDRINUSE in the PostgreSQL pass).
    Ports below that range are only ever taken by an explicit bind; each is given once per
    process, and each pytest-xdist worker has its own slice (:func:`port_range`).
    """
    low, high = port_range()
    for _ in range(200):
        port = random.randint(low, high) if high - low >= 50 else random.randint(1024, 65535)
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
