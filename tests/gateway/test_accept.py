"""Connection budgets (``gateway.net.accept``, ``gateway.net.budgets``), in process on loopback.

- :class:`Gate`: the listener cap, the per-address cap (IPv6 per /64), release, PROXY
  clients counted once their header is read;
- :class:`Acceptor`: refused connections are answered and closed at once, admitted ones
  handed over; ``EMFILE`` pauses the listener (no spinning) and is logged once per interval
  with its count, never once per failure;
- :func:`plan`: caps sized from the open files, within them, SMTP per-address caps split
  between processes.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Any

import pytest

from gateway import metrics
from gateway.app.config import load_settings
from gateway.net.accept import Acceptor, Gate, RefusalLog, Ticket, listening_sockets
from gateway.net.budgets import LISTENERS, Budgets, plan, raise_open_files
from gateway.net.proxy import parse_networks


def _refusals(listener: str, reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value("gateway_limit_refusals_total", {"listener": listener, "reason": reason})
    return value or 0.0


def test_gate_caps_per_address_and_per_listener() -> None:
    before = _refusals("gate-test", "address_full"), _refusals("gate-test", "listener_full")
    gate = Gate("gate-test", max_total=5, max_per_address=2)
    a1, a2 = gate.admit("192.0.2.1"), gate.admit("192.0.2.1")
    assert isinstance(a1, Ticket) and isinstance(a2, Ticket)
    assert gate.admit("192.0.2.1") == "address_full"
    assert gate.admit("::ffff:192.0.2.1") == "address_full"  # IPv4-mapped is the same client
    b1 = gate.admit("2001:db8:1:2::1")
    assert isinstance(b1, Ticket)
    assert isinstance(gate.admit("2001:db8:1:2::ffff"), Ticket)
    assert gate.admit("2001:db8:1:2:abcd::1") == "address_full"  # same /64
    assert isinstance(gate.admit("2001:db8:1:3::1"), Ticket)  # another /64
    assert gate.open == 5
    assert gate.admit("198.51.100.7") == "listener_full"
    a1.release()
    a1.release()  # idempotent
    assert gate.open == 4 and gate.count("192.0.2.1") == 1
    assert isinstance(gate.admit("198.51.100.7"), Ticket)
    assert (_refusals("gate-test", "address_full"), _refusals("gate-test", "listener_full")) == (
        before[0] + 3, before[1] + 1)


def test_proxy_peers_count_against_the_client_of_their_header() -> None:
    gate = Gate("mx", max_total=10, max_per_address=1, deferred=parse_networks(["127.0.0.1/32"]))
    first = gate.admit("127.0.0.1")
    second = gate.admit("127.0.0.1")  # the load balancer itself is not capped per address
    assert isinstance(first, Ticket) and isinstance(second, Ticket)
    assert first.assign("192.0.2.9") is None
    assert second.assign("192.0.2.9") == "address_full"
    second.release()
    assert gate.admit("192.0.2.9") == "address_full"  # directly, too
    first.release()
    assert gate.open == 0 and gate.by_key == {}


def test_an_operator_address_gets_its_trust_entry_allowance() -> None:
    """Issue 17 item 2: the MX gate asks the trust list for a client address's own allowance."""
    overrides = {"192.0.2.7": 3, "192.0.2.8": 1}
    gate = Gate("gate-op", max_total=10, max_per_address=2, address_limit=overrides.get)
    before = _refusals("gate-op", "address_full")
    op = [gate.admit("192.0.2.7") for _ in range(4)]
    assert [isinstance(t, Ticket) for t in op] == [True, True, True, False] and op[3] == "address_full"
    assert isinstance(gate.admit("192.0.2.8"), Ticket) and gate.admit("192.0.2.8") == "address_full"  # lowered
    assert [isinstance(gate.admit("198.51.100.1"), Ticket) for _ in range(3)] == [True, True, False]  # default
    assert _refusals("gate-op", "address_full") == before + 3
    broken = Gate("gate-op", max_total=10, max_per_address=1, address_limit=lambda ip: 1 // 0)
    assert isinstance(broken.admit("192.0.2.7"), Ticket)  # a failing lookup: the default, never a crash
    assert broken.admit("192.0.2.7") == "address_full"


def test_proxy_clients_get_their_operator_allowance_too() -> None:
    gate = Gate("mx", max_total=10, max_per_address=1, deferred=parse_networks(["127.0.0.1/32"]),
                address_limit={"192.0.2.9": 2}.get)
    tickets = [gate.admit("127.0.0.1") for _ in range(3)]
    assert all(isinstance(t, Ticket) for t in tickets)
    assert [t.assign("192.0.2.9") for t in tickets if isinstance(t, Ticket)] == [None, None, "address_full"]


def test_budgets_split_an_operator_allowance_between_smtp_processes() -> None:
    budgets = Budgets(_settings(), 65536)
    budgets.address_limits("mx", {"192.0.2.7": 120}.get)
    assert budgets.gate("mx").limit_for("192.0.2.7") == 120 and budgets.gate("mx").limit_for("192.0.2.1") == 50
    split = Budgets(load_settings(None, environ={"GATEWAY__SMTP__PROCESSES": "4"}), 65536)
    gate = split.gate("mx")
    split.address_limits("mx", {"192.0.2.7": 120}.get)  # also for a gate made before
    assert gate.limit_for("192.0.2.7") == 30 and gate.limit_for("192.0.2.1") == 13


def test_refusal_log_without_a_loop_logs_each_note(caplog: pytest.LogCaptureFixture) -> None:
    log = RefusalLog()
    with caplog.at_level(logging.WARNING, logger="gateway.limits"):
        log.note("imap", "address_full")
    assert [r.getMessage() for r in caplog.records] == ["connections refused by limits"]
    assert caplog.records[0].counts == {"imap/address_full": 1}  # type: ignore[attr-defined]


def _settings(**limits: Any) -> Any:
    env = {f"GATEWAY__LIMITS__{k.upper()}": str(v) for k, v in limits.items()}
    return load_settings(None, environ=env)


def test_plan_fits_the_open_files() -> None:
    settings = _settings()
    p = plan(settings, 1024)
    assert p.reserved == 3 * 20 + 2 * 10 + 128
    assert sum(p.caps.values()) <= 1024 - p.reserved and not p.over_budget
    assert abs(p.caps["mx"] - 3 * p.caps["http"]) < 3 and abs(p.caps["imap"] - 2 * p.caps["submission"]) < 2
    assert p.per_address == {"mx": 50, "submission": 20, "submissions": 20, "imap": 50, "imaps": 50, "http": 50}
    explicit = plan(_settings(mx_connections=100, mx_per_address=500), 1024)
    assert explicit.caps["mx"] == 100 and explicit.per_address["mx"] == 100  # never above the cap
    assert sum(explicit.caps.values()) <= 1024 - explicit.reserved
    split = plan(load_settings(None, environ={"GATEWAY__SMTP__PROCESSES": "3"}), 65536)
    assert split.per_address["mx"] == 17 and split.per_address["submission"] == 7 and split.per_address["imap"] == 50
    assert set(p.caps) == set(LISTENERS)


def test_open_file_limit_is_raised_to_the_hard_limit_at_most() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        assert raise_open_files(0) == min(soft, 256)
        assert raise_open_files(300) == min(300, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == min(300, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _connect_from(address: str, port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    sock.bind((address, 0))
    await loop.sock_connect(sock, ("127.0.0.1", port))
    return sock


def test_acceptor_refuses_at_once_and_hands_over_the_admitted() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        gate = Gate("mx", max_total=3, max_per_address=2)
        served: list[Ticket] = []

        async def connect(conn: socket.socket, ticket: Ticket) -> None:
            served.append(ticket)
            await loop.sock_sendall(conn, b"hello\r\n")
            await loop.sock_recv(conn, 1)  # held until the client closes
            conn.close()
            ticket.release()

        sock = listening_sockets("127.0.0.1", 0)[0]
        acceptor = Acceptor(sock, gate, connect, lambda reason: f"no: {reason}\r\n".encode())
        acceptor.start()
        port = sock.getsockname()[1]
        try:
            clients = [await _connect_from(a, port) for a in ("127.0.3.1", "127.0.3.1", "127.0.3.1")]
            answers = [await asyncio.wait_for(loop.sock_recv(c, 100), 5) for c in clients]
            assert sorted(answers) == [b"hello\r\n", b"hello\r\n", b"no: address_full\r\n"]
            for c in clients:
                c.close()
            for _ in range(100):
                if gate.open == 0:
                    break
                await asyncio.sleep(0.01)
            assert gate.open == 0 and len(served) == 2
        finally:
            acceptor.close()
            await acceptor.wait_closed()

    asyncio.run(main())


def test_implicit_tls_listener_closes_refused_connections_without_a_word() -> None:
    """No reply can be read before TLS, and a handshake per refused connection is the flood's cost."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        gate = Gate("imaps", max_total=1, max_per_address=1)

        async def connect(conn: socket.socket, ticket: Ticket) -> None:
            await loop.sock_recv(conn, 1)
            conn.close()
            ticket.release()

        sock = listening_sockets("127.0.0.1", 0)[0]
        acceptor = Acceptor(sock, gate, connect, lambda reason: None)
        acceptor.start()
        try:
            held = await _connect_from("127.0.3.2", sock.getsockname()[1])
            refused = await _connect_from("127.0.3.3", sock.getsockname()[1])
            assert await asyncio.wait_for(loop.sock_recv(refused, 100), 5) == b""
            refused.close()
            held.close()
        finally:
            acceptor.close()
            await acceptor.wait_closed()

    asyncio.run(main())


class _Exhausted(socket.socket):
    """A listening socket whose ``accept`` fails as with a full descriptor table."""

    calls = 0

    def accept(self) -> tuple[socket.socket, Any]:
        type(self).calls += 1
        raise OSError(errno.EMFILE, "Too many open files")


def test_emfile_pauses_the_listener_and_logs_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        gate = Gate("imap", max_total=10, max_per_address=10, refusals=RefusalLog(interval=0.5))
        real = listening_sockets("127.0.0.1", 0)[0]
        sock = _Exhausted(real.family, real.type, fileno=real.detach())
        acceptor = Acceptor(sock, gate, lambda conn, ticket: asyncio.sleep(0), lambda reason: None)
        acceptor.start()
        pending = await _connect_from("127.0.0.1", sock.getsockname()[1])  # readable for good
        try:
            await asyncio.sleep(1.2)
        finally:
            acceptor.close()
            pending.close()

    _Exhausted.calls = 0
    with caplog.at_level(logging.WARNING, logger="gateway.limits"):
        asyncio.run(main())
    assert 5 <= _Exhausted.calls <= 14, _Exhausted.calls  # one try per 0.1 s pause, not a busy loop
    lines = [r for r in caplog.records if r.getMessage() == "connections refused by limits"]
    assert len(lines) == 2, lines
    assert sum(r.counts["imap/accept_emfile"] for r in lines) >= 5  # type: ignore[attr-defined]
