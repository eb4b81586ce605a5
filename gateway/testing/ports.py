"""Free loopback ports for servers started by tests."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
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
