"""The SMTP listeners: aiosmtpd as the protocol shell, our flow and DATA reader inside.

aiosmtpd parses the command lines, runs STARTTLS (and discards anything pipelined
before the handshake, RFC 3207 §4.2) and the AUTH exchanges. We replace the parts
that decide or store: EHLO (what is advertised), MAIL/RCPT (raw parameters for
RFC 3461 DSN; routing decisions), AUTH (argon2 off the loop, throttled) and DATA
(:class:`smtp.dataparse.DataReader`: chunked reads, bulk dot-unstuffing, smuggling-safe).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import ssl
from typing import Any

from aiosmtpd.smtp import BOGUS_LIMIT, MISSING, SMTP, TLSSetupException

from gateway import metrics
from gateway.accounts.auth import Authenticator
from gateway.delivery.smtp_policy import SessionInfo, SmtpFlow, Transaction
from gateway.net.accept import Ticket
from gateway.net.bodies import BodyBudget, Hold
from gateway.net.proxy import Network, ProxyRefused, client_address
from gateway.net.tls import peer_dn
from routing.address import parse_address
from smtp import replies
from smtp.dataparse import DataReader, Done
from smtp.policy import Limits, auth_offered, check_auth_allowed, check_starttls
from smtp.replies import Reply, ReplyLike, format_reply

log = logging.getLogger("gateway.smtp")
CHUNK = 256 * 1024
# Command lines are 512 octets with CRLF (RFC 5321 §4.5.3.1.4); SIZE adds 26 to MAIL (RFC 1870 §3),
# DSN 100 to MAIL and 500 to RCPT (RFC 3461 §4): 1001, the reader's own limit, caps RCPT.
_LINE_LIMITS = {b"MAIL": 512 + 26 + 100, b"RCPT": 1001}
#: Replies to a connection refused by its listener's budget (``gateway.net.accept.Gate`` reasons).
CONNECTION_REFUSALS = {"address_full": replies.TOO_MANY_CONNECTIONS, "listener_full": replies.SERVICE_BUSY}


class _NoHooks:
    """aiosmtpd wants a handler object; every decision is in :class:`SmtpFlow`."""

    def __dir__(self) -> list[str]:  # no handle_*/auth_* hooks: aiosmtpd's walk of them ends at once
        return []


class GatewaySMTP(SMTP):
    # aiosmtpd's __init__ builds its command and AUTH tables with dir()/inspect.getmembers()
    # on the new instance: about a tenth of the CPU of a 10 KiB message on a new connection
    # (py-spy, issue 8). Listing only the names it looks for makes that walk short; the
    # tables it builds are the same.
    _TABLE_NAMES: tuple[str, ...] = ()

    def __dir__(self) -> list[str]:
        cls = type(self)
        if not cls.__dict__.get("_TABLE_NAMES"):
            cls._TABLE_NAMES = tuple(n for n in dir(cls) if n.startswith(("smtp_", "auth_", "handle_")))
        return list(cls._TABLE_NAMES)

    def __init__(self, *, flow: SmtpFlow, listener: str, hostname: str, limits: Limits,
                 tls_context: ssl.SSLContext | None, implicit_tls: bool, authenticator: Authenticator,
                 timeout: float, min_data_rate: float = 500.0, ticket: Ticket | None = None,
                 bodies: BodyBudget | None = None, proxy_networks: tuple[Network, ...] | None = None) -> None:
        super().__init__(
            _NoHooks(), hostname=hostname, ident="ESMTP", tls_context=None if implicit_tls else tls_context,
            require_starttls=False, auth_require_tls=True, data_size_limit=limits.max_message_size,
            enable_SMTPUTF8=False, decode_data=False, timeout=timeout, command_call_limit=None,
        )
        self.flow = flow
        self.listener = listener
        self.limits = limits
        self.authenticator = authenticator
        self.ticket = ticket  # this connection's place in its listener's budget, released when it ends
        self.bodies = bodies  # the process's memory budget for bodies in flight
        self.hold: Hold | None = None
        self.implicit_tls = implicit_tls
        self.proxy_networks = proxy_networks
        self.info: SessionInfo | None = None
        self.tx = Transaction()
        self._deadline = 0.0
        self.min_data_rate = min_data_rate

    # --- connection ---------------------------------------------------------------
    def _peer_ip(self) -> str:
        assert self.session is not None
        peer = self.session.peer
        return str(peer[0]) if isinstance(peer, tuple) else str(peer)

    def _refresh_tls(self) -> None:
        assert self.info is not None and self.transport is not None
        ssl_object = self.transport.get_extra_info("ssl_object")
        self.info.tls = ssl_object is not None
        self.info.tls_peer_dn = peer_dn(ssl_object)

    async def _handle_client(self) -> None:
        ip = self._peer_ip()
        if self.proxy_networks is not None:
            try:
                ip = await client_address(self._reader, ip, self.proxy_networks)
            except ProxyRefused as exc:
                log.warning("connection refused", extra={"reason": str(exc), "listener": self.listener})
                assert self.transport is not None
                self.transport.close()
                return
            refused = self.ticket.assign(ip) if self.ticket is not None else None
            if refused is not None:  # the client behind the proxy has its share already
                await self.push(format_reply(CONNECTION_REFUSALS[refused]))
                assert self.transport is not None
                self.transport.close()
                return
        self.info = SessionInfo(peer_ip=ip, listener=self.listener)
        self.hold = self.bodies.hold(ip) if self.bodies is not None else None
        self._refresh_tls()
        metrics.connection(self.listener)
        await self._commands()

    # --- the command loop ---------------------------------------------------------
    # In place of aiosmtpd's ``SMTP._handle_client`` (issue 8: with its per-line logging
    # calls, call budgets and a timer rebuilt per command, it was a tenth of the CPU of a
    # 10 KiB message): the same reading and dispatch to the ``smtp_*`` methods, answers from
    # our catalogue, and a timeout that is checked when it falls due.
    async def _commands(self) -> None:
        await self.push(f"220 {self.hostname} {self.__ident__}")
        bogus = BOGUS_LIMIT
        while self.transport is not None:
            try:
                bogus = await self._one_command(bogus)
            except (asyncio.CancelledError, ConnectionResetError):  # the connection went away
                self._writer.close()
                raise
            except asyncio.IncompleteReadError:  # end of input in the middle of a line: nothing to answer
                self._writer.close()
                return
            except TLSSetupException as error:
                log.info("TLS handshake failed", extra={"listener": self.listener})
                self.transport.close()
                self.connection_lost(error)
            except Exception as error:
                await self.push(await self.handle_exception(error))

    async def _one_command(self, bogus: int) -> int:
        """Read and run one command; returns the budget of unrecognized commands left."""
        try:
            line = await self._reader.readuntil()
        except asyncio.LimitOverrunError as error:  # RFC 5321 §4.5.3.1.4: 512 octets at most
            await self._discard_line(error.consumed)
            await self.reply(replies.LINE_TOO_LONG)
            return bogus
        line = line.rstrip(b"\r\n")
        word, _, rest = line.partition(b" ")
        word = word.upper()
        if len(line) + 2 > _LINE_LIMITS.get(word, self.command_size_limit):
            await self.reply(replies.LINE_TOO_LONG)
            return bogus
        if not word.isascii() or not rest.isascii():
            await self.reply(replies.NON_ASCII_COMMAND)
            return bogus
        command = word.decode("ascii")
        method = self._smtp_methods.get(command)
        if method is None:
            bogus -= 1
            if bogus < 1:
                await self.reply(replies.TOO_MANY_UNRECOGNIZED)
                assert self.transport is not None
                self.transport.close()
            else:
                await self.reply(replies.COMMAND_UNRECOGNIZED)
            return bogus
        self._reset_timeout()
        await method(rest.strip().decode("ascii") if rest else None)
        return bogus

    async def _discard_line(self, consumed: int) -> None:
        """The rest of an over-long line, up to its end."""
        await self._reader.read(consumed)
        while True:
            try:
                await self._reader.readuntil()
                return
            except asyncio.LimitOverrunError as error:
                await self._reader.read(error.consumed)

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Move the idle deadline; the timer is only rescheduled when it would fire too late."""
        self._deadline = self.loop.time() + (duration or self._timeout_duration)
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or handle.when() > self._deadline:
            if handle is not None:
                handle.cancel()
            self._timeout_handle = self.loop.call_at(self._deadline, self._timeout_due)

    def _extend_deadline(self, received: int) -> None:
        """DATA's deadline (Postfix's ``smtpd_min_data_rate``): ``received`` bytes buy
        ``received / min_data_rate`` more seconds, never more than the timeout from now.
        A client trickling bytes is cut when the deadline set at DATA runs out."""
        now = self.loop.time()
        self._deadline = min(self._deadline + received / self.min_data_rate, now + self._timeout_duration)

    def _timeout_due(self) -> None:
        if self.loop.time() < self._deadline:  # activity since: wait for the new deadline
            self._timeout_handle = self.loop.call_at(self._deadline, self._timeout_due)
            return
        if isinstance(self.transport, asyncio.WriteTransport):
            metrics.limit_refused(self.listener, "timeout")
            self.transport.write(format_reply(replies.TIMEOUT).encode() + b"\r\n")  # RFC 5321 §4.5.3.2
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.info is not None and self._tls_protocol is not None:  # STARTTLS just completed
            self._refresh_tls()
            self.tx = Transaction()

    def connection_lost(self, error: Exception | None) -> None:
        if self.ticket is not None:
            self.ticket.release()
        super().connection_lost(error)

    def _set_rset_state(self) -> None:
        super()._set_rset_state()  # type: ignore[no-untyped-call]
        self.tx = Transaction()

    async def reply(self, r: ReplyLike) -> None:
        await self.push(format_reply(r))

    async def handle_exception(self, error: Exception) -> str:
        """A command that failed unexpectedly (the store unreachable, a bug): the log gets the
        error, the client a temporary failure so it retries (RFC 5321 §4.2.3 451, §4.5.4.1).
        aiosmtpd's default answer is ``500 Error: (<class>) <text>``: a permanent code that
        makes a client give up, carrying internals (DESIGN rule 5)."""
        log.error("smtp command failed", exc_info=error, extra={"listener": self.listener})
        return format_reply(replies.TEMPORARY_FAILURE)

    # --- commands -----------------------------------------------------------------
    async def smtp_EHLO(self, hostname: str) -> None:
        if not hostname:
            await self.reply(replies.SYNTAX_ERROR)
            return
        assert self.session is not None and self.info is not None
        self._set_rset_state()
        self.session.extended_smtp = True
        self.session.host_name = hostname
        self.info.helo = hostname
        lines = [self.hostname, "PIPELINING", f"SIZE {self.limits.max_message_size}", "8BITMIME",
                 "ENHANCEDSTATUSCODES", "DSN"]
        if self.tls_context and not self.info.tls:
            lines.append("STARTTLS")
        if auth_offered(self.info.facts(), self.limits):
            lines.append("AUTH PLAIN LOGIN")
        # one write for the whole reply (RFC 5321 §4.2.1 multiline form)
        await self.push("\r\n".join(f"250{'-' if i < len(lines) - 1 else ' '}{text}" for i, text in enumerate(lines)))

    async def smtp_HELO(self, hostname: str) -> None:
        assert self.info is not None
        self.info.helo = hostname or None
        await super().smtp_HELO(hostname)

    async def smtp_STARTTLS(self, arg: str) -> None:
        assert self.info is not None
        refused = check_starttls(self.info.facts(), bytes(self._reader._buffer))  # type: ignore[attr-defined]
        if refused is not None:
            self._reader._buffer.clear()  # type: ignore[attr-defined]
            await self.reply(refused)
            return
        await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg: str) -> None:
        assert self.session is not None and self.info is not None
        if not self.session.extended_smtp:
            await self.reply(replies.BAD_SEQUENCE)
            return
        refused = check_auth_allowed(self.info.facts(), self.limits)
        if refused is not None:
            await self.reply(refused)
            return
        if self.info.account is not None:
            await self.reply(replies.AUTH_ALREADY)
            return
        args = (arg or "").split()
        if not args or len(args) > 2:
            await self.reply(replies.SYNTAX_ERROR)
            return
        credentials = await self._credentials(args[0].upper(), args[1] if len(args) == 2 else None)
        if credentials is None:
            return
        username, password = credentials
        outcome = await self.authenticator.authenticate(username, password, self.info.peer_ip, "smtp")
        if outcome.ok and outcome.account:
            self.info.account = parse_address(outcome.account)
            self.session.authenticated = True
            await self.reply(replies.AUTH_SUCCESS)
        elif outcome.throttled:
            await self.reply(replies.AUTH_TOO_MANY_FAILURES)
        else:
            await self.reply(replies.AUTH_FAILED)

    async def _credentials(self, mechanism: str, initial: str | None) -> tuple[str, str] | None:
        """RFC 4616 PLAIN and the LOGIN exchange; None when already answered."""
        def b64(value: str) -> bytes | None:
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return None

        if mechanism == "PLAIN":
            blob: Any = b64(initial) if initial is not None else await self.challenge_auth("")
            if blob is MISSING:
                return None
            parts = blob.split(b"\x00") if isinstance(blob, bytes) else []
            if len(parts) != 3:
                await self.reply(replies.SYNTAX_ERROR)
                return None
            return parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace")
        if mechanism == "LOGIN":
            user: Any = b64(initial) if initial is not None else await self.challenge_auth("Username:")
            if user is MISSING:
                return None
            password: Any = await self.challenge_auth("Password:")
            if password is MISSING or not isinstance(user, bytes):
                return None
            return user.decode("utf-8", "replace"), password.decode("utf-8", "replace")
        await self.reply(replies.AUTH_MECHANISM_UNSUPPORTED)
        return None

    def _split(self, keyword: str, arg: str | None) -> tuple[str, list[str]] | None:
        if arg is None:
            return None
        rest = self._strip_command_keyword(keyword, arg)
        if rest is None or not rest.startswith("<"):
            return None
        end = rest.find(">")
        if end < 0:
            return None
        return rest[1:end].strip(), rest[end + 1:].split()

    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        assert self.info is not None
        if self.tx.sender is not None:
            await self.reply(replies.BAD_SEQUENCE.with_text("nested MAIL command"))
            return
        parsed = self._split("FROM:", arg)
        if parsed is None:
            await self.reply(replies.SYNTAX_ERROR.with_text("syntax: MAIL FROM:<address> [parameters]"))
            return
        reply: ReplyLike = await self.flow.mail(self.info, self.tx, parsed[0], parsed[1])
        size = self.tx.mail_params.size if self.tx.mail_params is not None else None
        if reply.code == 250 and size and self.hold is not None and not await self.hold.room_for(size):
            self._set_rset_state()  # RFC 1870 §6.2: no room for SIZE now, try later
            metrics.limit_refused(self.listener, "memory")
            reply = replies.INSUFFICIENT_STORAGE
        await self.reply(reply)

    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        assert self.info is not None
        if self.tx.sender is None:
            await self.reply(replies.BAD_SEQUENCE.with_text("need MAIL command first"))
            return
        parsed = self._split("TO:", arg)
        if parsed is None or not parsed[0]:
            await self.reply(replies.SYNTAX_ERROR.with_text("syntax: RCPT TO:<address> [parameters]"))
            return
        await self.reply(await self.flow.rcpt(self.info, self.tx, parsed[0], parsed[1]))

    async def smtp_VRFY(self, arg: str) -> None:
        await self.reply(Reply(252, "2.5.0", "cannot verify users"))  # RFC 5321 §3.5.3: no enumeration

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        assert self.info is not None
        if arg:
            await self.reply(replies.SYNTAX_ERROR)
            return
        if self.tx.sender is None or not self.tx.recipients:
            await self.reply(replies.BAD_SEQUENCE.with_text("need RCPT command first"))
            return
        await self.reply(replies.START_DATA)
        try:
            result = await self._read_data()
            if result is None:  # the client went away mid-DATA: nothing is stored
                return
            if isinstance(result, Reply):
                log.info("data refused", extra={"reason": result.text, "listener": self.listener})
                metrics.refused(self.listener, "data", f"smtp.{result.enhanced}")
                answer: ReplyLike = result
            else:
                answer = await self.flow.data(self.info, self.tx, result.message)
            del result  # the message bytes go with the room they held
        finally:
            if self.hold is not None:
                self.hold.release()
        await self.reply(answer)
        self._set_rset_state()

    async def _read_data(self) -> Done | Reply | None:
        """The message up to ``<CRLF>.<CRLF>`` (None: the connection ended first). Room in the
        memory budget is held before the bytes are: for the ``SIZE=`` of ``MAIL FROM`` when given,
        then before each read for what is stored plus one read: without room after the budget's
        wait, nothing more is stored and the answer is ``452 4.3.1``."""
        reader = DataReader(self.limits.max_message_size)
        buffered = bytes(self._reader._buffer)  # type: ignore[attr-defined]  # pipelined data
        self._reader._buffer.clear()  # type: ignore[attr-defined]
        hold = self.hold
        declared = self.tx.mail_params.size if self.tx.mail_params is not None else None
        if hold is not None and declared and not await hold.ensure(min(declared, self.limits.max_message_size)):
            self._no_room(reader, hold)
        result = reader.feed(buffered) if buffered else None
        while not isinstance(result, Done | Reply):
            if hold is not None and reader.storing and not hold.covers(reader.stored + CHUNK):
                if not await hold.ensure(reader.stored + CHUNK):
                    self._no_room(reader, hold)
            chunk = await self._reader.read(CHUNK)
            if not chunk:
                return None
            self._extend_deadline(len(chunk))
            result = reader.feed(chunk)
        if reader.trailing:  # commands pipelined after the end of data (RFC 2920)
            self._reader._buffer[:0] = reader.trailing  # type: ignore[attr-defined]
        return result

    def _no_room(self, reader: DataReader, hold: Hold) -> None:
        metrics.limit_refused(self.listener, "memory")
        reader.refuse(replies.INSUFFICIENT_STORAGE)
        hold.release()

