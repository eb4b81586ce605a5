"""The thin asyncio shell around :class:`imap.session.Session` (DESIGN rule 2).

asyncio streams only; the storage comes in as an :class:`imap.backend.Backend`, TLS as
ready ``ssl.SSLContext`` objects (implicit TLS for IMAPS, RFC 8314 §3.3; STARTTLS on the
plain port, RFC 3501 §6.2.1). Reads are bounded (``read_size`` per read, the receiver's
line / literal limits per command); every write is drained (back-pressure); a
connection silent for ``idle_timeout`` seconds is logged out (RFC 3501 §5.4: at least
30 minutes); one that has not logged in ``login_timeout`` seconds after it was accepted is
closed (RFC 3501 §5.4's 30 minutes are for authenticated sessions; Dovecot allows 3 minutes).
After a session's OK to ``COMPRESS DEFLATE`` (RFC 4978) every read is inflated (in pieces of
at most ``read_size``) and every write deflated and sync-flushed (:mod:`imap.compress`),
inside TLS when TLS is on; a corrupt or ended stream closes the connection.

:meth:`ImapServer.start` listens by itself; a host process with its own accept loop (the
gateway's connection budgets) calls :meth:`ImapServer.handle` for each admitted connection,
with an ``admit`` callback for the client address a PROXY header reveals, and writes
:func:`refusal` itself to connections it turns away at accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from imap.backend import Backend
from imap.compress import CompressionError, Deflate
from imap.proto import replies
from imap.session import BodyHold, Session, SessionConfig

log = logging.getLogger("imap.server")

AUTOLOGOUT_SECONDS = 30 * 60.0  # RFC 3501 §5.4


# Reads what precedes the IMAP greeting (a PROXY header) and returns the client address.
PeerResolver = Callable[[asyncio.StreamReader, str], Awaitable[str]]
# Counts the client address a PROXY header revealed; a reason code means refuse it.
Admit = Callable[[str], "str | None"]
# Told of each connection closed by a limit ("login_timeout"), for metrics.
LimitEvent = Callable[[str], None]

_REFUSALS = {"address_full": replies.ADDRESS_FULL, "listener_full": replies.LISTENER_FULL}


def _peer_certificate(writer: asyncio.StreamWriter) -> bytes | None:
    """The client certificate the TLS handshake verified (DER), if one was presented; a context
    with ``CERT_OPTIONAL`` ends the handshake on one that does not verify."""
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    return ssl_object.getpeercert(binary_form=True) or None


def refusal(reason: str) -> bytes:
    """``* BYE [UNAVAILABLE] ...`` for a connection refused by a connection budget (RFC 5530 §3)."""
    return _REFUSALS.get(reason, replies.LISTENER_FULL).line()


@dataclass(frozen=True)
class ServerConfig:
    session: SessionConfig = field(default_factory=SessionConfig)
    idle_timeout: float = AUTOLOGOUT_SECONDS
    login_timeout: float = 60.0
    read_size: int = 64 * 1024
    max_connections: int = 2000
    tls_handshake_timeout: float = 30.0


class ImapServer:
    """One listening socket. ``ssl_context`` = implicit TLS; ``starttls_context`` = STARTTLS."""

    def __init__(self, backend: Backend, host: str, port: int, *, config: ServerConfig | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 starttls_context: ssl.SSLContext | None = None,
                 peer_resolver: PeerResolver | None = None, on_limit: LimitEvent | None = None,
                 bodies: Callable[[str | None], BodyHold] | None = None) -> None:
        self.backend = backend
        self.host = host
        self.port = port
        self.config = config or ServerConfig()
        self.ssl_context = ssl_context
        self.starttls_context = starttls_context
        self.peer_resolver = peer_resolver
        self.on_limit = on_limit
        self.bodies = bodies  # a session's hold on the host's memory budget for literals, by client address
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def connections(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, ssl=self.ssl_context, limit=self.config.read_size,
            ssl_handshake_timeout=self.config.tls_handshake_timeout if self.ssl_context else None,
        )  # fmt: skip
        if self.port == 0:
            self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.handle(reader, writer)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                     admit: Admit | None = None) -> None:
        """Serve one connection to its end (the writer is closed); :meth:`close` cancels it."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer, admit)
        except asyncio.CancelledError:
            pass  # server closing: end quietly (streams would log a cancelled callback task)
        except (ConnectionError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError, CompressionError,
                zlib.error):
            pass
        except Exception:
            log.exception("IMAP connection failed")
        finally:
            self._tasks.discard(task)
            writer.close()  # the transport finishes closing on its own; no wait on a dead peer

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, admit: Admit | None) -> None:
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) else None
        tls = writer.get_extra_info("ssl_object") is not None
        certificate = _peer_certificate(writer)
        if self.peer_resolver is not None:
            # e.g. a PROXY protocol header from a load balancer (the resolver raises to refuse)
            try:
                peer = await self.peer_resolver(reader, peer or "")
            except Exception:
                log.info("IMAP connection refused by the peer resolver")
                return

        deflate: Deflate | None = None  # RFC 4978, once the session answered COMPRESS DEFLATE

        async def send(data: bytes) -> None:
            writer.write(data if deflate is None else deflate.compress(data))
            await writer.drain()

        async def feed(data: bytes) -> None:
            if deflate is None:
                await session.data_received(data)
                return
            for piece in deflate.decompress(data, self.config.read_size):  # bounded pieces
                await session.data_received(piece)
                if session.closed:
                    return

        refused = admit(peer or "") if admit is not None else None
        if refused is None and len(self._tasks) > self.config.max_connections:
            refused = "listener_full"
        if refused is not None:
            await send(refusal(refused))
            return
        cfg = replace(self.config.session, starttls_available=self.starttls_context is not None and not tls)
        hold = self.bodies(peer) if self.bodies is not None else None
        session = Session(self.backend, send, config=cfg, peer=peer, tls=tls, bodies=hold, hangup=writer.close,
                          peer_certificate=certificate)
        log.debug("IMAP connection from %s (tls=%s)", peer, tls)
        loop = asyncio.get_running_loop()
        login_deadline = loop.time() + self.config.login_timeout
        try:
            await session.greet()
            while not session.closed:
                logged_in = session.mailboxes is not None
                wait = self.config.idle_timeout if logged_in else login_deadline - loop.time()
                try:
                    data = await asyncio.wait_for(reader.read(self.config.read_size), max(wait, 0.0))
                except TimeoutError:
                    if logged_in:
                        await send(replies.AUTOLOGOUT.line())
                        return
                    if self.on_limit is not None:
                        self.on_limit("login_timeout")
                    await send(replies.LOGIN_TIMEOUT.line())
                    return
                if not data:
                    return
                await feed(data)
                if session.starttls_requested:
                    await self._starttls(reader, writer, session)
                if session.compress_requested:
                    deflate = Deflate()
                    await feed(session.compression_started())
        finally:
            await session.close()

    async def _starttls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: Session) -> None:
        assert self.starttls_context is not None
        # STARTTLS command injection: plaintext pipelined after STARTTLS must never be
        # read as if it came over TLS (RFC 3501 §6.2.1, CVE-2011-0411 class).
        if getattr(reader, "_buffer", b""):
            await session.close()
            return
        await writer.start_tls(self.starttls_context, ssl_handshake_timeout=self.config.tls_handshake_timeout)
        session.tls_started(_peer_certificate(writer))
