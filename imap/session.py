"""One IMAP connection's protocol session, without sockets (DESIGN rule 2).

The shell (:mod:`imap.server`) feeds received bytes to :meth:`Session.data_received` and
gives the session an async ``send`` callback. The session drives the
:class:`~imap.proto.receiver.CommandReceiver`, checks every command against the state table
(:mod:`imap.state`), runs the handler of its command group (``imap/handlers/``) over the
:class:`~imap.backend.Backend` Protocol, writes the tagged response and moves the state.

Three things need the shell: STARTTLS (the session sets :attr:`starttls_requested` and stops
reading; the shell upgrades and calls :meth:`tls_started`), COMPRESS (RFC 4978: likewise
:attr:`compress_requested`, then :meth:`compression_started` gives back the input already
read, which is compressed) and closing (:attr:`closed`).
IDLE (RFC 2177) runs a watcher task here that writes untagged updates as they happen. A session
opened with an access token (OAUTHBEARER / XOAUTH2) runs a timer that ends it with ``* BYE``
``token_grace`` seconds after the token's expiry (clock injected through the config), then
asks the shell to hang up. An account an administrator suspended or removed loses its open
sessions too (as Dovecot kicks the user): before every command of the authenticated states
the session asks the backend (:meth:`~imap.backend.Mailboxes.still_open`, an answer the host
keeps cheap), and an IDLE watcher asks at least every ``access_check`` seconds; a refusal is
an untagged ``* BYE`` and the connection closes (RFC 9051 §7.1.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from imap.backend import Backend, Mailboxes
from imap.enabled import Enabled
from imap.proto import replies
from imap.proto.commands import Command, Fetch, Search, Sort, Store, Thread
from imap.proto.errors import BadCommand, Bye, CommandFailed, ImapError
from imap.proto.receiver import (
    DEFAULT_APPENDLIMIT,
    DEFAULT_MAX_LITERAL_UNAUTH,
    CommandReceiver,
    ContinuationLine,
    LiteralMode,
    NeedData,
    NeedLiteral,
)
from imap.proto.replies import Reply
from imap.selected_view import SelectedView
from imap.state import State, capabilities, check, next_state

log = logging.getLogger("imap.session")
FLUSH_AT = 64 * 1024

Send = Callable[[bytes], Awaitable[None]]


class Notifier(Protocol):
    """A session's NOTIFY watcher (:mod:`imap.notify`)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class BodyHold(Protocol):
    """Room for literals in the host's memory budget (issue 15): ``ensure(total)`` holds at
    least ``total`` bytes for this session (False: no room, after the host's own wait);
    ``release`` gives it all back."""

    async def ensure(self, size: int) -> bool: ...

    def release(self) -> None: ...


# A handler returns its tagged OK, or None when the command goes on (IDLE, AUTHENTICATE).
Handler = Callable[["Session", Any], Awaitable[Reply | None]]
LineHandler = Callable[["Session", bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SessionConfig:
    login_requires_tls: bool = True  # LOGINDISABLED before TLS (RFC 3501 §6.2.3)
    password_login: bool = True  # False: no LOGIN, no AUTH=PLAIN ([auth] password_login)
    starttls_available: bool = True
    literal_mode: LiteralMode = LiteralMode.PLUS
    appendlimit: int = DEFAULT_APPENDLIMIT
    max_literal_unauth: int = DEFAULT_MAX_LITERAL_UNAUTH
    idle_poll: float = 30.0  # seconds per wait_for_change call while IDLE
    server_id: tuple[tuple[str, str], ...] = (("name", "health-mail-gateway"),)
    # SASL bearer-token mechanisms offered after TLS (RFC 7628 OAUTHBEARER, XOAUTH2): [auth.oidc]
    token_mechanisms: tuple[str, ...] = ()
    token_grace: float = 3600.0  # a token's session ends this many seconds after its expiry
    # seconds between two asks, while IDLE, whether the account may still use the session
    access_check: float = 5.0
    # SASL EXTERNAL (RFC 4422 appendix A) for a TLS connection with a verified client certificate
    external: bool = False
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC), compare=False)


class Session:
    def __init__(self, backend: Backend, send: Send, *, config: SessionConfig | None = None,
                 peer: str | None = None, tls: bool = False, bodies: BodyHold | None = None,
                 hangup: Callable[[], None] | None = None, peer_certificate: bytes | None = None) -> None:
        self.backend = backend
        self.config = config or SessionConfig()
        self.peer = peer
        self.tls = tls
        self.peer_certificate = peer_certificate  # DER of the client certificate TLS verified
        self.state = State.NOT_AUTHENTICATED
        self.mailboxes: Mailboxes | None = None
        self.view: SelectedView | None = None
        self.enabled = Enabled.NONE  # what ENABLE (or use, RFC 7162 §3.1) switched on: imap/enabled.py
        self.notifier: Notifier | None = None  # RFC 5465 NOTIFY SET: pushes while the client is idle
        self.busy = asyncio.Lock()  # held while a command runs; a NOTIFY push waits for it
        self.closed = False
        self.starttls_requested = False
        self.compress_requested = False  # COMPRESS DEFLATE answered OK; the shell must switch
        self.compressed = False  # RFC 4978: DEFLATE active both ways
        self.receiver = self._new_receiver()
        self.bodies = bodies
        self._literals = 0  # octets of literals of the command being read, held in ``bodies``
        self._send = send
        self._out = bytearray()
        self._line_handler: LineHandler | None = None  # AUTHENTICATE / IDLE continuation
        self._idle_task: asyncio.Task[None] | None = None
        self._idle_waiting = False
        self._idle_stop = False
        self._hangup = hangup  # the shell's: end the connection (the session closed on its own)
        self._expiry: asyncio.Task[None] | None = None  # a token session's end (issue 19)
        self._ending: asyncio.Task[None] | None = None  # the end a watcher asked for (end_with)

    def _new_receiver(self) -> CommandReceiver:
        return CommandReceiver(max_literal=self.config.max_literal_unauth, literal_mode=self.config.literal_mode)

    # --- for handlers ---------------------------------------------------------------
    async def send(self, data: bytes) -> None:
        """Queue output; it goes out at :meth:`flush` (end of input processing) or when
        ``FLUSH_AT`` octets are waiting, so a large FETCH is written in big TLS records."""
        if not self.closed:
            self._out += data
            if len(self._out) >= FLUSH_AT:
                await self.flush()

    async def flush(self) -> None:
        if self._out and not self.closed:
            data = bytes(self._out)
            self._out.clear()
            await self._send(data)

    @property
    def boxes(self) -> Mailboxes:
        if self.mailboxes is None:
            raise BadCommand(replies.NOT_AUTHENTICATED)
        return self.mailboxes

    @property
    def selected(self) -> SelectedView:
        if self.view is None:
            raise BadCommand(replies.NO_MAILBOX_SELECTED)
        return self.view

    @property
    def condstore(self) -> bool:
        return self.enabled.condstore

    @property
    def qresync(self) -> bool:
        return self.enabled.qresync

    def enable(self, mode: Enabled) -> Enabled:
        """Switch ``mode`` on; returns what was not on before. UTF-8 mailbox names reach the
        command parser from the next command on (RFC 6855 §3, RFC 9051 §5.1)."""
        new = mode & ~self.enabled
        self.enabled |= mode
        self.receiver.utf8 = self.enabled.utf8
        return new

    async def enable_condstore(self) -> None:
        """A CONDSTORE-enabling command (RFC 7162 §3.1): the first one run with a mailbox
        selected is answered with ``* OK [HIGHESTMODSEQ n]`` first, as Dovecot does."""
        if not self.enable(Enabled.CONDSTORE):
            return
        if self.view is not None:
            await self.send(replies.HIGHEST_MODSEQ.with_arg(self.view.highestmodseq).line())

    def capabilities(self, state: State | None = None) -> tuple[str, ...]:
        return capabilities(
            state or self.state, tls=self.tls, login_requires_tls=self.config.login_requires_tls,
            starttls_available=self.config.starttls_available, literal_mode=self.config.literal_mode,
            appendlimit=self.config.appendlimit, password_login=self.config.password_login,
            token_mechanisms=self.config.token_mechanisms,
            external=self.config.external and self.peer_certificate is not None,
        )  # fmt: skip

    def capabilities_after_login(self) -> tuple[str, ...]:
        return self.capabilities(State.AUTHENTICATED)

    def logged_in(self, mailboxes: Mailboxes, *, expires_at: dt.datetime | None = None) -> None:
        """``expires_at``: the access token's expiry; the session ends ``token_grace`` seconds
        after it (``* BYE``), so that a professional whose rights were revoked is cut off."""
        self.mailboxes = mailboxes
        self.receiver.authenticated(max_literal=self.config.appendlimit)  # RFC 7889 APPENDLIMIT
        if expires_at is not None:
            delay = (expires_at - self.config.clock()).total_seconds() + self.config.token_grace
            self._expiry = asyncio.create_task(self._expire(max(delay, 0.0)))

    async def _expire(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._expiry = None  # close() must not cancel this very task
        await self._end(replies.TOKEN_EXPIRED)

    async def _end(self, reply: Reply) -> None:
        """Untagged ``reply`` (a BYE), then close and ask the shell to hang up."""
        async with self.busy:  # never in the middle of a command's output
            if self.closed:
                return
            await self.stop_idle_watch()
            await self.send(reply.line())
            await self.close()
        if self._hangup is not None:
            self._hangup()

    def end_with(self, reply: Reply) -> None:
        """End the session with ``reply`` (a BYE) from a watcher task (IDLE, NOTIFY), which
        must return right after: the end waits for it and for any running command."""
        if self._ending is None:
            self._ending = asyncio.create_task(self._end(reply))

    async def still_open(self) -> bool:
        """Whether the account may still use this session (True before login). A backend
        that cannot answer now (e.g. its database unreachable for a moment) keeps it open:
        the command itself then fails on its own, and the next one asks again."""
        if self.mailboxes is None:
            return True
        try:
            return await self.mailboxes.still_open()
        except Exception:
            log.warning("IMAP account check failed; asked again at the next command", exc_info=True)
            return True

    def expect_line(self, handler: LineHandler) -> None:
        """The next client line is a continuation (SASL response or IDLE ``DONE``)."""
        self._line_handler = handler
        self.receiver.expect_line()

    def start_idle_watch(self, watch: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._idle_stop = False
        self._idle_task = asyncio.create_task(watch())

    async def stop_idle_watch(self) -> None:
        """Stop the IDLE watcher without cutting a refresh in half."""
        self._idle_stop = True
        task, self._idle_task = self._idle_task, None
        if task is None:
            return
        if self._idle_waiting:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    @property
    def idle_should_stop(self) -> bool:
        return self._idle_stop or self.closed

    def idle_waiting(self, waiting: bool) -> None:
        self._idle_waiting = waiting

    # --- driving --------------------------------------------------------------------
    async def greet(self) -> None:
        await self.send(replies.GREETING.with_arg(" ".join(self.capabilities())).line())
        await self.flush()

    def tls_started(self, peer_certificate: bytes | None = None) -> None:
        """``peer_certificate``: the client certificate the handshake verified (DER), if any."""
        self.tls = True
        self.peer_certificate = peer_certificate
        self.starttls_requested = False

    def compression_started(self) -> bytes:
        """The shell deflates from now on; returns the octets received after the COMPRESS
        command (the client's first compressed ones), for the shell to inflate and feed."""
        self.compress_requested = False
        self.compressed = True
        return self.receiver.take_buffered()

    async def close(self) -> None:
        expiry, self._expiry = self._expiry, None
        if expiry is not None:
            expiry.cancel()
        await self.stop_idle_watch()
        await self.set_notifier(None)
        await self.flush()
        self.closed = True
        self._release_literals()

    async def data_received(self, data: bytes) -> None:
        async with self.busy:
            self.receiver.feed(data)
            try:
                await self._process()
            finally:
                await self.flush()

    async def set_notifier(self, notifier: Notifier | None) -> None:
        """Replace the NOTIFY watcher (RFC 5465; None: NOTIFY NONE, or closing)."""
        old, self.notifier = self.notifier, notifier
        if old is not None:
            await old.stop()
        if notifier is not None:
            notifier.start()

    @property
    def idling(self) -> bool:
        """An IDLE command is running (its own watcher reports the selected mailbox)."""
        return self._idle_task is not None

    async def _process(self) -> None:
        while not (self.closed or self.starttls_requested or self.compress_requested):
            try:
                event = self.receiver.next_event()
            except ImapError as exc:
                self._release_literals()
                await self._error(exc, exc.tag)
                continue
            if isinstance(event, NeedData):
                return
            if isinstance(event, NeedLiteral):
                await self._literal(event)
                continue
            if isinstance(event, ContinuationLine):
                handler, self._line_handler = self._line_handler, None
                if handler is not None:
                    await self._guard(None, handler(self, event.line))
                continue
            try:
                await self._run(event)
            finally:
                self._release_literals()

    async def _literal(self, event: NeedLiteral) -> None:
        """Hold room for the literal before any of it is buffered; without room (after the
        host's wait) the command is answered ``NO [LIMIT]`` and the session goes on: a
        synchronizing literal is never invited, a non-synchronizing one is read and dropped."""
        if self.bodies is not None and event.size and not await self.bodies.ensure(self._literals + event.size):
            self._release_literals()
            refused = CommandFailed(replies.SERVER_BUSY)  # RFC 5530 §3
            if event.synchronizing:
                self.receiver.reject_literal()
                await self.send(refused.response(event.tag))
            else:
                self.receiver.discard_literal(refused)
            return
        self._literals += event.size
        if event.synchronizing:  # RFC 3501 §7.5 command continuation request
            await self.send(replies.READY_FOR_LITERAL.line())

    def _release_literals(self) -> None:
        if self._literals and self.bodies is not None:
            self.bodies.release()
        self._literals = 0

    async def _guard(self, tag: str | None, work: Awaitable[None]) -> None:
        try:
            await work
        except ImapError as exc:
            await self._error(exc, tag)
        except Exception:
            log.exception("IMAP continuation failed")
            await self.send(replies.CONTINUATION_FAILED.line(tag))

    async def _error(self, exc: ImapError, tag: str | None) -> None:
        if exc.detail:
            log.info("imap %s: %s", exc.status, exc.detail)
        if exc.clears_search_result and self.view is not None:
            self.view.search.saved = frozenset()  # RFC 5182 §2.1
        await self.send(exc.response(tag))
        if exc.close_connection:
            if not isinstance(exc, Bye):
                await self.send(replies.TOO_MANY_ERRORS.line())
            await self.close()

    async def _run(self, command: Command) -> None:
        from imap.handlers import HANDLERS

        name = command.command_name
        try:
            check(self.state, name, tls=self.tls, login_requires_tls=self.config.login_requires_tls)
        except ImapError as exc:
            await self._error(exc, command.tag)
            return
        if not await self.still_open():  # suspended or removed meanwhile: RFC 9051 §7.1.5
            await self.send(replies.ACCOUNT_DISABLED.line())
            await self.close()
            return
        handler = HANDLERS[type(command)]
        try:
            ok = await handler(self, command)
        except ImapError as exc:
            if exc.status == "NO":
                self._move(next_state(self.state, name, ok=False))
            await self._error(exc, command.tag)
            return
        except Exception:
            log.exception("IMAP %s failed", name)
            await self.send(replies.SERVER_BUG.line(command.tag))
            return
        if ok is None:  # the handler continues later (IDLE, AUTHENTICATE continuation)
            return
        self._move(next_state(self.state, name, ok=True))
        await self._updates(command)
        await self.send(ok.line(command.tag))
        if self.state is State.LOGOUT:
            await self.close()

    def _move(self, state: State) -> None:
        if state is not State.SELECTED:
            self.view = None
        self.state = state

    async def _updates(self, command: Command) -> None:
        """Untagged changes before the tagged OK (RFC 3501 §5.2, §7.4.1: no EXPUNGE during
        FETCH, STORE or SEARCH, nor SORT or THREAD, which answer with sequence numbers as SEARCH
        does (RFC 5256 §3); their UID forms may carry it)."""
        if self.view is None or command.name in ("SELECT", "EXAMINE"):
            return
        quiet = isinstance(command, Fetch | Store | Search | Sort | Thread) and not command.uid
        await self.push_updates(allow_expunge=not quiet)

    async def push_updates(self, *, allow_expunge: bool) -> None:
        if self.view is None or self.mailboxes is None:
            return
        try:
            lines = await self.view.refresh(self.mailboxes, allow_expunge=allow_expunge, condstore=self.condstore)
            lines += await self.view.search.changes(self.view)  # RFC 5267 §4.2 ADDTO / REMOVEFROM
        except ImapError as exc:  # e.g. the folder was deleted by another session meanwhile
            log.info("imap update skipped: %s", exc.detail or exc.text)
            return
        for line in lines:
            await self.send(line)

    async def finish_continued(self, tag: str, state: State | None, ok: Reply) -> None:
        """Tagged OK of a command that went through a continuation (AUTHENTICATE, IDLE)."""
        if state is not None:
            self._move(state)
        await self.send(ok.line(tag))

    async def fail_continued(self, tag: str, exc: ImapError) -> None:
        await self._error(exc, tag)


def require_writable(session: Session) -> SelectedView:
    view = session.selected
    if view.read_only:
        raise CommandFailed(replies.MAILBOX_READ_ONLY)
    return view
