"""Accepting connections behind a connection budget (issue 15), for every listener.

asyncio's ``loop.create_server`` accepts up to ``backlog`` connections per wake-up, builds a
transport for each and only then lets the protocol see it; a connection refused there still
holds its descriptor for a few loop iterations, so a flood holds hundreds more than the caps
allow. When ``accept()`` does fail with ``EMFILE`` asyncio logs "socket.accept() out of
system resource" for every failure (130 MB of log in a minute in issue 15). This module
accepts itself, with public asyncio API only:

- :class:`Gate` counts open connections of one listener: a cap on the listener and one per
  client address (IPv6 per /64, ``smtp.throttle.client_key``), which an ``address_limit``
  lookup may set per address (the MX: a trusted operator's own allowance, issue 17).
  Admission gives a :class:`Ticket` that the connection releases when it ends.
- :class:`Acceptor` waits for its listening socket to be readable, accepts, asks the gate,
  and either writes the listener's refusal (``421 4.7.0``, ``* BYE``, ``503``) and closes
  *at once* (the descriptor is back before the next accept) or hands the socket to
  ``loop.connect_accepted_socket`` (TLS included). ``EMFILE``/``ENFILE`` (or any error but
  a connection gone before it was accepted) pause that listener for :data:`PAUSE_S` instead
  of spinning; every refusal and error is counted
  (``gateway_limit_refusals_total``) and logged by :class:`RefusalLog`: one line per
  interval with the counts, never one per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from gateway import metrics
from gateway.net.proxy import Network, is_trusted
from smtp.throttle import client_key

log = logging.getLogger("gateway.limits")

PAUSE_S = 0.1
BATCH = 64  # accepts per wake-up: other listeners get their turn
LOG_INTERVAL_S = 10.0
_CONNECTION_GONE = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENETDOWN, errno.EHOSTUNREACH,
                              errno.ENETUNREACH, errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.EAGAIN})


class RefusalLog:
    """Refusals and accept errors, counted per (listener, reason), logged once per interval."""

    def __init__(self, interval: float = LOG_INTERVAL_S) -> None:
        self.interval = interval
        self.pending: Counter[tuple[str, str]] = Counter()
        self._timer: asyncio.TimerHandle | None = None

    def note(self, listener: str, reason: str) -> None:
        metrics.limit_refused(listener, reason)
        self.pending[(listener, reason)] += 1
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a test of the pure parts): log at once
                self.flush()
                return
            self._timer = loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        self._timer = None
        if not self.pending:
            return
        counts = {f"{listener}/{reason}": n for (listener, reason), n in sorted(self.pending.items())}
        self.pending.clear()
        log.warning("connections refused by limits", extra={"counts": counts, "interval_s": self.interval})


class Ticket:
    """One admitted connection; :meth:`release` is idempotent."""

    __slots__ = ("gate", "key", "released")

    def __init__(self, gate: Gate, key: str | None) -> None:
        self.gate = gate
        self.key = key
        self.released = False

    def assign(self, ip: str) -> str | None:
        """Count the connection against ``ip`` (the client a PROXY header revealed); a reason
        code means refuse it (the caller answers, closes, and the ticket is then released)."""
        key = client_key(ip)
        if self.released or key == self.key:
            return None
        if self.gate.by_key.get(key, 0) >= self.gate.limit_for(ip):
            return self.gate.refused("address_full")
        self.gate.drop_key(self.key)
        self.key = key
        self.gate.by_key[key] = self.gate.by_key.get(key, 0) + 1
        return None

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.gate.open -= 1
        self.gate.drop_key(self.key)


AddressLimit = Callable[[str], "int | None"]  # a client address -> its own per-address cap (None: the default)


class Gate:
    """Open connections of one listener in this process: at most ``max_total``, at most
    ``max_per_address`` per client address, or what ``address_limit`` says for that address.
    Peers in ``deferred`` (trusted PROXY senders) count against the address of their PROXY
    header instead, via :meth:`Ticket.assign`."""

    def __init__(self, listener: str, max_total: int, max_per_address: int, *, refusals: RefusalLog | None = None,
                 deferred: Sequence[Network] = (), address_limit: AddressLimit | None = None) -> None:
        self.listener = listener
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.address_limit = address_limit
        self.deferred = tuple(deferred)
        self.refusals = refusals or RefusalLog()
        self.open = 0
        self.by_key: dict[str, int] = {}

    def admit(self, ip: str) -> Ticket | str:
        """A ticket, or the reason code of a refusal (``listener_full``, ``address_full``)."""
        if self.open >= self.max_total:
            return self.refused("listener_full")
        key = None if self.deferred and is_trusted(ip, self.deferred) else client_key(ip)
        if key is not None:
            count = self.by_key.get(key, 0)
            if count and count >= self.limit_for(ip):  # every allowance is at least 1
                return self.refused("address_full")
            self.by_key[key] = count + 1
        self.open += 1
        return Ticket(self, key)

    def limit_for(self, ip: str) -> int:
        """The connections ``ip`` may hold: its own allowance, else ``max_per_address``."""
        if self.address_limit is None:
            return self.max_per_address
        try:
            own = self.address_limit(ip)
        except Exception:  # a lookup that fails leaves the default, never the accept loop broken
            log.exception("per-address limit lookup failed", extra={"listener": self.listener})
            return self.max_per_address
        return self.max_per_address if own is None else own

    def refused(self, reason: str) -> str:
        self.refusals.note(self.listener, reason)
        return reason

    def drop_key(self, key: str | None) -> None:
        if key is None:
            return
        count = self.by_key.get(key, 0)
        if count <= 1:
            self.by_key.pop(key, None)
        else:
            self.by_key[key] = count - 1

    def count(self, ip: str) -> int:
        return self.by_key.get(client_key(ip), 0)


Connect = Callable[[socket.socket, Ticket], Awaitable[None]]


class Acceptor:
    """Accepts on one listening socket behind ``gate``; see the module text.

    ``connect(sock, ticket)`` takes an admitted socket over (usually through
    ``loop.connect_accepted_socket``) and must see that ``ticket`` is released when the
    connection ends; if it raises, the acceptor releases the ticket and closes the socket.
    ``refusal(reason)`` gives the bytes to write before closing a refused connection (None:
    close without a word, e.g. before a TLS handshake). Duck-types ``asyncio.Server``'s
    ``close``/``wait_closed`` (uvicorn calls them).
    """

    def __init__(self, sock: socket.socket, gate: Gate, connect: Connect,
                 refusal: Callable[[str], bytes | None]) -> None:
        self.sock = sock
        self.gate = gate
        self.connect = connect
        self.refusal = refusal
        self.tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False
        self._closed = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.sock.setblocking(False)
        self._resume()

    def _resume(self) -> None:
        if self._closed or self._reading or self._loop is None:
            return
        self._loop.add_reader(self.sock.fileno(), self._ready)
        self._reading = True

    def _pause(self) -> None:
        if self._reading and self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._reading = False

    def _ready(self) -> None:
        for _ in range(BATCH):
            try:
                conn, address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _CONNECTION_GONE:  # that connection is gone: take the next
                    continue
                # out of descriptors (should not happen below the caps) or anything else: never spin on it
                reason = "accept_" + errno.errorcode.get(exc.errno or 0, "error").lower()
                self.gate.refusals.note(self.gate.listener, reason)
                self._pause()
                assert self._loop is not None
                self._loop.call_later(PAUSE_S, self._resume)
                return
            self._take(conn, address)

    def _take(self, conn: socket.socket, address: object) -> None:
        conn.setblocking(False)
        ip = str(address[0]) if isinstance(address, tuple) else ""
        admitted = self.gate.admit(ip)
        if isinstance(admitted, str):
            data = self.refusal(admitted)
            if data:
                with contextlib.suppress(OSError):
                    conn.send(data)  # a new socket's send buffer is empty: all of it or nothing
            conn.close()
            return
        assert self._loop is not None
        task = self._loop.create_task(self._serve(conn, admitted))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve(self, conn: socket.socket, ticket: Ticket) -> None:
        try:
            await self.connect(conn, ticket)
        except asyncio.CancelledError:
            ticket.release()
            conn.close()
            raise
        except Exception as exc:  # TLS handshake failed or timed out, peer reset: nothing to answer
            ticket.release()
            conn.close()
            if isinstance(exc, OSError | TimeoutError):
                self.gate.refusals.note(self.gate.listener, "tls_handshake")
            else:
                log.error("connection set-up failed", exc_info=exc, extra={"listener": self.gate.listener})

    def close(self) -> None:
        self._closed = True
        self._pause()
        self.sock.close()
        for task in self.tasks:
            task.cancel()

    async def wait_closed(self) -> None:
        await asyncio.gather(*self.tasks, return_exceptions=True)


def listening_sockets(host: str, port: int, backlog: int = 512) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for ``host:port`` (every address it resolves
    to, as ``loop.create_server`` does): SO_REUSEADDR, IPv6 sockets IPv6-only."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
