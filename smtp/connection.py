"""One SMTP connection in the shell: the asyncio protocol that runs a session (see :mod:`smtp.server`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from smtp import replies
from smtp.backend import TlsFacts
from smtp.output import MessageRefused, Output
from smtp.replies import format_reply
from smtp.session import Session

if TYPE_CHECKING:
    from smtp.server import SmtpServer

log = logging.getLogger("smtp.server")

#: Replies to a connection its host's budget refuses (``gateway.net.accept.Gate`` reason codes).
REFUSALS = {"address_full": replies.TOO_MANY_CONNECTIONS, "listener_full": replies.SERVICE_BUSY}


def refusal(reason: str) -> bytes:
    """The ``421 4.7.0`` line to write before closing a connection refused for ``reason``."""
    return format_reply(REFUSALS.get(reason, replies.SERVICE_BUSY)).encode("ascii") + b"\r\n"


def default_tls_facts(ssl_object: Any) -> TlsFacts:
    if ssl_object is None:
        return TlsFacts()
    cipher = ssl_object.cipher()
    return TlsFacts(version=ssl_object.version(), cipher=cipher[0] if cipher else None,
                    peer_certificate=ssl_object.getpeercert(binary_form=True) or None)


class Deadline:
    """When a connection times out; pure (times are passed in)."""

    def __init__(self, timeout: float, min_data_rate: float, now: float) -> None:
        self.timeout = timeout
        self.min_data_rate = min_data_rate
        self.at = now + timeout

    def command(self, now: float) -> None:
        self.at = now + self.timeout

    def data(self, received: int, now: float) -> None:
        """``received`` DATA bytes buy ``received / min_data_rate`` seconds, never more than
        the timeout from now."""
        self.at = min(self.at + received / self.min_data_rate, now + self.timeout)

    def expired(self, now: float) -> bool:
        return now >= self.at


class _Signal:
    """What :meth:`SmtpConnection.read` returns instead of bytes."""

    def __init__(self, name: str) -> None:
        self.name = name


ENDED: Final = _Signal("ended")  # end of input, or the connection is gone
TIMED_OUT: Final = _Signal("timed out")
STOPPING: Final = _Signal("stopping")  # the server is closing


class SmtpConnection(asyncio.Protocol):
    def __init__(self, server: SmtpServer, on_close: Callable[[], None] | None = None,
                 admit: Callable[[str], str | None] | None = None) -> None:
        self.server = server
        self.on_close = on_close  # called once when the connection is over (the host's ticket)
        self.admit = admit
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.task: asyncio.Task[None] | None = None
        self.peer = ""
        self._inbox: list[bytes] = []
        self._size = 0
        self._prelude: asyncio.StreamReader | None = None  # before the greeting, for the peer resolver
        self._eof = self._lost = self._stopping = self._reading_paused = self._writing_paused = False
        self._wakeup = asyncio.Event()
        self._deadline: Deadline | None = None
        self._timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if isinstance(peername, tuple) else ""
        if self.server.peer_resolver is not None:
            self._prelude = asyncio.StreamReader()
        self.server.connections.add(self)
        self.task = asyncio.get_running_loop().create_task(self._run())

    def data_received(self, data: bytes) -> None:
        if self._prelude is not None:
            self._prelude.feed_data(data)
            return
        self._inbox.append(data)
        self._size += len(data)
        if self._size > self.server.config.read_limit and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wakeup.set()

    def eof_received(self) -> bool | None:
        self._eof = True
        if self._prelude is not None:
            self._prelude.feed_eof()
        self._wakeup.set()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._prelude is not None:
            self._prelude.feed_eof()
        self._wakeup.set()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wakeup.set()

    # --- the loop -----------------------------------------------------------------------
    def stop(self) -> asyncio.Task[None] | None:
        """The server is closing: an idle session answers 421 4.3.2 at once; the task to wait for."""
        self._stopping = True
        self._wakeup.set()
        return self.task

    async def _run(self) -> None:
        try:
            await self._serve()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("smtp connection failed")
        finally:
            if self._timer is not None:
                self._timer.cancel()
            if self.session is not None:
                self.session.close()
            if self.transport is not None:
                self.transport.close()
            self.server.connections.discard(self)
            if self.on_close is not None:
                self.on_close()

    async def _serve(self) -> None:
        server, loop = self.server, asyncio.get_running_loop()
        transport = self.transport
        assert transport is not None
        if self._prelude is not None and server.peer_resolver is not None:
            try:
                self.peer = await server.peer_resolver(self._prelude, self.peer)
            except Exception:
                log.info("smtp connection refused by the peer resolver")
                return
            prelude, self._prelude = self._prelude, None
            prelude.feed_eof()
            rest = await prelude.read()  # what came after the header, already here
            if rest:
                self.data_received(rest)
        reason = self.admit(self.peer) if self.admit is not None else None
        if reason is not None:
            transport.write(refusal(reason))
            return
        ssl_object = transport.get_extra_info("ssl_object")
        tls = server.tls_facts(ssl_object) if ssl_object is not None else None
        session = self.session = Session(server.backend(self.peer), server.session_config, peer=self.peer, tls=tls)
        server.notice("connection")
        self._deadline = Deadline(server.config.timeout, server.config.min_data_rate, loop.time())
        if not await self._write(session.greeting()):
            return
        while not session.closed:
            data = await self.read()
            if data is ENDED:
                return
            if data is TIMED_OUT:
                server.notice("timeout")
                await self._write(session.timeout())
                return
            if data is STOPPING:
                await self._write(session.shutdown())
                return
            assert isinstance(data, bytes)
            output = await session.receive_data(data)
            while True:
                now = loop.time()
                if output.commands:
                    self._deadline.command(now)
                elif output.message_bytes:
                    self._deadline.data(output.message_bytes, now)
                for event in output.events:
                    if isinstance(event, MessageRefused):
                        server.notice("message_refused", event.reply.enhanced)
                if not await self._write(output) or output.closes:
                    return
                if output.starttls and not await self._starttls(session):
                    return
                if not output.more:
                    break
                output = await session.receive_data(b"")  # the rest of what was read, once written

    async def read(self) -> bytes | _Signal:
        """Everything received so far, once there is something, or why there is nothing."""
        while True:
            if self._expired():
                return TIMED_OUT
            if self._stopping:
                return STOPPING
            if self._inbox:
                data = b"".join(self._inbox)
                self._inbox.clear()
                self._size = 0
                if self._reading_paused and self.transport is not None and not self._lost:
                    self._reading_paused = False
                    self.transport.resume_reading()
                return data
            if self._eof or self._lost:
                return ENDED
            await self._wait()

    async def _write(self, output: Output) -> bool:
        """Write and wait until the transport takes more; False when the connection is gone."""
        if output.data and self.transport is not None and not self._lost:
            self.transport.write(output.data)
        while self._writing_paused and not self._lost:
            if self._expired():  # a client that does not read is cut at the same deadline
                if self.transport is not None:
                    self.transport.abort()
                return False
            await self._wait()
        return not self._lost

    async def _starttls(self, session: Session) -> bool:
        """RFC 3207 §4: drop plaintext received behind STARTTLS, then the handshake."""
        self._inbox.clear()
        self._size = 0
        context = self.server.starttls_context
        assert context is not None and self.transport is not None
        loop = asyncio.get_running_loop()
        try:
            new = await loop.start_tls(self.transport, self, context, server_side=True,
                                       ssl_handshake_timeout=self.server.config.tls_handshake_timeout)
        except (OSError, TimeoutError, ConnectionError) as exc:
            log.info("smtp TLS handshake failed: %s", type(exc).__name__)
            self.server.notice("tls_failed")
            return False
        if new is None:
            return False
        self.transport = new
        session.tls_started(self.server.tls_facts(new.get_extra_info("ssl_object")))
        assert self._deadline is not None
        self._deadline.command(loop.time())
        return True

    def _expired(self) -> bool:
        return self._deadline is not None and self._deadline.expired(asyncio.get_running_loop().time())

    async def _wait(self) -> None:
        """Until something happens: input, end, writable again, the deadline, the server closing."""
        deadline = self._deadline
        if deadline is not None and (self._timer is None or self._timer.when() > deadline.at):
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_at(deadline.at, self._due)
        self._wakeup.clear()
        await self._wakeup.wait()

    def _due(self) -> None:
        self._timer = None
        self._wakeup.set()
