"""The IMAP backend over the encrypted store, for professional accounts (issue 4 §3, §5).

Implements :class:`imap.backend.Backend` / :class:`imap.backend.Mailboxes`. Database and
crypto work runs in worker threads (reads and writes in pools of their own); every write that changes a
mailbox notifies the :class:`~gateway.store.changes.ChangeHub` after commit, which wakes
IDLE sessions in this process; other processes' writes are seen by polling the folder's
HIGHESTMODSEQ (at most ``poll_interval`` late). Logins go through
:class:`gateway.accounts.auth.Authenticator` (argon2, throttled, audited with the peer address);
each SELECT / EXAMINE writes one audit entry (actor ``pro:<address>``, no content;
group-committed with concurrent ones, :mod:`gateway.imap_adapter.audit`); folder listings
are cached in memory per process (:mod:`gateway.imap_adapter.listing`).

An account an administrator suspends or removes loses its open sessions
(:meth:`StoreMailboxes.still_open`, asked by the session before every command and while IDLE):
the account's status is read again (one primary-key read) when the last read is
``access_check`` seconds old (``ACCESS_CHECK_S``, 5 s), or sooner when a change of the
account's mailbox was announced since (the suspension announces one: through PostgreSQL
LISTEN/NOTIFY every node hears it at once). So a FETCH costs no database round trip for
this, a session of a suspended account ends within 5 s on any node (at once on PostgreSQL,
IDLE in a selected mailbox included: :meth:`StoreMailboxes.wait_for_change` looks when woken),
and the end is audited (``imap.session_end``, the reason code, no content) and logged
(the account's id only).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.orm import Session

from gateway.accounts.auth import Authenticator
from gateway.accounts.cert_login import CertLogin
from gateway.accounts.pros import session_end_reason, status_by_id
from gateway.accounts.throttle import LoginThrottle
from gateway.accounts.token_login import TokenLogin
from gateway.imap_adapter.audit import AuditWriter
from gateway.imap_adapter.listing import FolderRow, Listings, Summaries, folder_row, read_metas
from gateway.mailstore import folder_ops as folders
from gateway.mailstore import message_ops as messages
from gateway.mailstore import quota, subscriptions
from gateway.mailstore.folders import claim_recent
from gateway.mailstore.object_ids import read_objects
from gateway.store.changes import ChangeHub, announce
from gateway.store.db import Database
from gateway.store.keys import KeyService
from gateway.store.raw import Direct
from imap.backend import (
    AppendManyResult,
    AppendResult,
    AuthenticationFailed,
    CertificateCredentials,
    CopyResult,
    Credentials,
    FolderInfo,
    FolderStatus,
    MessageMeta,
    MessageObject,
    MessageSummary,
    NewMessage,
    OpenedByToken,
    QuotaResource,
    QuotaRoot,
    StoreResult,
    TokenCredentials,
    TokenRefused,
    Vanished,
)
from imap.proto import replies
from imap.proto.commands import StoreMode
from imap.proto.errors import CommandFailed

T = TypeVar("T")
log = logging.getLogger("gateway.imap")
READ_THREADS = 4
# Writes serialise on the store's write lock anyway; two threads keep one committing while the
# next prepares.
WRITE_THREADS = 2
# How long a look at a folder's HIGHESTMODSEQ stays good while the change hub announces
# nothing for the mailbox (the check after each command; IDLE has its own poll interval).
FRESH_S = 1.0
# A single message up to this size is fetched on the event loop on SQLite (Database.loop_reader);
# a larger one (decrypting 25 MB takes tens of milliseconds) goes to a reader thread.
INLINE_MAX = 256 * 1024
# How stale the answer to "may this account still use its open sessions?" may be (an
# administrator suspended or removed it). Dovecot and Postfix re-check on each use; one
# primary-key read per command would double the cost of a FETCH served from memory, and 5 s
# is below what a person notices between clicking "disable" and looking at the client.
ACCESS_CHECK_S = 5.0


class StoreBackend:
    """:class:`imap.backend.Backend` for the gateway's store (one per process)."""

    def __init__(self, db: Database, keys: KeyService, hub: ChangeHub, *,
                 authenticator: Authenticator | None = None, poll_interval: float = 0.5,
                 quota_defaults: quota.QuotaDefaults = messages.NO_DEFAULTS,
                 tokens: TokenLogin | None = None, access_check: float = ACCESS_CHECK_S) -> None:
        self.db = db
        self.access_check = access_check  # seconds an account's status read stays good
        self.tokens = tokens  # OAUTHBEARER / XOAUTH2 ([auth.oidc]); None: not offered
        self.quota_defaults = quota_defaults  # [quota] of the config (RFC 9208 limits)
        self.keys = keys
        self.hub = hub
        self.authenticator = authenticator or Authenticator(db, LoginThrottle(db, keys))
        self.certificates = CertLogin(db, self.authenticator.throttle)  # EXTERNAL ([tls] client_ca_file)
        self.poll_interval = poll_interval
        self.listings = Listings()  # folder listings shared by all sessions (memory only)
        self.summaries = Summaries()  # decrypted summaries, bounded, memory only
        self.access_audit = AuditWriter(db)  # SELECT / EXAMINE entries, group-committed
        # Reads (SELECT listings, FETCH, SEARCH) get their own threads: in the default pool
        # they queued behind logins (argon2 + write transaction each), so 50 clients logging
        # in at once held every other session's SELECT for seconds.
        self.readers = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="imap-read")
        weakref.finalize(self, self.readers.shutdown, wait=False)
        # Writes (STORE, EXPUNGE, APPEND, COPY/MOVE) too: in the default pool they waited behind
        # argon2id logins, so under imaptest's stress a FETCH pipelined before an EXPUNGE took
        # 2.2-4.0 s on average; 0.4-0.7 s with a pool of their own (8 interleaved runs,
        # bench/README.md "Where the gateway's time goes under stress").
        self.writers = ThreadPoolExecutor(max_workers=WRITE_THREADS, thread_name_prefix="imap-write")
        weakref.finalize(self, self.writers.shutdown, wait=False)

    async def authenticate(self, credentials: Credentials) -> StoreMailboxes:
        outcome = await self.authenticator.authenticate(
            credentials.username, credentials.password, credentials.remote_address or "unknown", "imap"
        )
        if outcome.throttled:
            raise CommandFailed(replies.LOGIN_THROTTLED, detail=outcome.reason)
        if not outcome.ok or outcome.account is None or outcome.mailbox_id is None or outcome.account_id is None:
            raise AuthenticationFailed(detail=outcome.reason)
        return StoreMailboxes(self, outcome.account, outcome.account_id, outcome.mailbox_id,
                              credentials.remote_address)

    async def authenticate_token(self, credentials: TokenCredentials) -> OpenedByToken:
        if self.tokens is None:  # not offered: the session does not call this
            raise AuthenticationFailed(detail="no token sign-in configured")
        outcome = await self.tokens.authenticate(credentials.mechanism, credentials.authzid, credentials.token,
                                                 credentials.remote_address or "unknown", "imap")
        if outcome.throttled:
            raise CommandFailed(replies.LOGIN_THROTTLED, detail=outcome.reason)
        if outcome.temporary:
            raise CommandFailed(replies.TOKEN_CHECK_UNAVAILABLE, detail=outcome.reason)
        if not outcome.ok or outcome.account is None or outcome.account_id is None or outcome.mailbox_id is None:
            raise TokenRefused(outcome.challenge or b"{}", detail=outcome.reason)
        mailboxes = StoreMailboxes(self, outcome.account, outcome.account_id, outcome.mailbox_id,
                                   credentials.remote_address)
        return OpenedByToken(mailboxes, outcome.expires_at)

    async def authenticate_certificate(self, credentials: CertificateCredentials) -> StoreMailboxes:
        outcome = await self.certificates.authenticate(credentials.certificate, credentials.authzid,
                                                       credentials.remote_address or "unknown", "imap")
        if outcome.throttled:
            raise CommandFailed(replies.LOGIN_THROTTLED, detail=outcome.reason)
        if not outcome.ok or outcome.account is None or outcome.account_id is None or outcome.mailbox_id is None:
            raise AuthenticationFailed(detail=outcome.reason)
        return StoreMailboxes(self, outcome.account, outcome.account_id, outcome.mailbox_id,
                              credentials.remote_address)


class StoreMailboxes:
    """One professional's folders (:class:`imap.backend.Mailboxes`)."""

    def __init__(self, backend: StoreBackend, address: str, account_id: int, mailbox_id: int,
                 peer: str | None) -> None:
        self._b = backend
        self._address = address
        self._account_id = account_id
        self.mailbox_id = mailbox_id
        self._peer = peer
        self._last_look: tuple[str, int, int, float] | None = None  # folder, hub version, modseq, time
        # the account's status as read last (at login): the hub's version then, and when
        self._access = (backend.hub.version(mailbox_id), time.monotonic())
        self._ended: str | None = None  # why the account lost this session (a reason code)

    @property
    def username(self) -> str:
        return self._address

    async def still_open(self) -> bool:
        """False once the account is suspended or removed; see the module's docstring for the bound."""
        if self._ended is not None:
            return False
        version, now = self._b.hub.version(self.mailbox_id), time.monotonic()
        seen_version, seen_at = self._access
        if version == seen_version and now - seen_at < self._b.access_check:
            return True
        status = await self._read_direct(lambda c: status_by_id(c, self._account_id))
        self._access = (version, now)
        reason = session_end_reason(status)
        if reason is None:
            return True
        if self._ended is not None:  # another caller (a command, the IDLE/NOTIFY watcher) ended it meanwhile
            return False
        self._ended = reason
        log.info("imap session ended", extra={"reason": reason, "account_id": self._account_id})
        await self._b.access_audit.record(actor=f"pro:{self._address}", action="imap.session_end",
                                          subject_ref=f"pro:{self._account_id}", peer=self._peer,
                                          details={"reason": reason})
        return False

    # --- plumbing -------------------------------------------------------------------
    async def _read(self, work: Callable[[Session], T]) -> T:
        def run() -> T:
            with self._b.db.read() as session:
                return work(session)

        return await asyncio.get_running_loop().run_in_executor(self._b.readers, run)

    async def _read_direct(self, work: Callable[[Direct], T]) -> T:
        def run() -> T:
            with self._b.db.direct_read() as conn:
                return work(conn)

        return await asyncio.get_running_loop().run_in_executor(self._b.readers, run)

    async def _write(self, work: Callable[[Session], T], *, notify: bool = True) -> T:
        def run() -> T:
            with self._b.db.write() as session:
                result = work(session)
                if notify:
                    announce(session, self.mailbox_id)  # other nodes learn it at commit (PostgreSQL)
                return result

        result = await asyncio.get_running_loop().run_in_executor(self._b.writers, run)
        if notify:
            self._b.hub.notify(self.mailbox_id)  # after commit (RFC 3501 §5.2 for the others)
        return result

    # --- folders --------------------------------------------------------------------
    async def list_folders(self) -> Sequence[FolderInfo]:
        return await self._read(lambda s: folders.list_folders(s, self.mailbox_id))

    async def create_folder(self, name: str, special_use: Sequence[str] = ()) -> None:
        await self._write(lambda s: folders.create(s, self.mailbox_id, name, special_use))

    async def delete_folder(self, name: str) -> None:
        await self._write(lambda s: folders.delete_folder(s, self.mailbox_id, name))

    async def rename_folder(self, old: str, new: str) -> None:
        await self._write(lambda s: folders.rename(s, self.mailbox_id, old, new))

    async def set_subscribed(self, name: str, subscribed: bool) -> None:
        # Announced, for NOTIFY's SubscriptionChange (RFC 5465 §5.5) here and on other nodes.
        await self._write(lambda s: subscriptions.set_subscribed(s, self.mailbox_id, name, subscribed))

    async def list_subscriptions(self) -> Sequence[str]:
        return await self._read(lambda s: subscriptions.list_subscriptions(s, self.mailbox_id))

    async def claim_recent(self, name: str, up_to_uid: int) -> int:
        # Nothing the other sessions must hear of (no HIGHESTMODSEQ change): no notification.
        return await self._write(lambda s: claim_recent(s, self.mailbox_id, name, up_to_uid), notify=False)

    async def folder_status(self, name: str) -> FolderStatus:
        return await self._read_direct(lambda c: self._b.listings.get(c, self.mailbox_id, name).status())

    async def select_folder(self, name: str, *, read_only: bool) -> FolderStatus:
        # The listing (cached, or read outside the write transaction) gives the status; the
        # access is recorded (committed, in a group with concurrent SELECTs) before answering.
        listing = await self._read_direct(lambda c: self._b.listings.get(c, self.mailbox_id, name))
        await self._b.access_audit.record(
            actor=f"pro:{self._address}", action="imap.examine" if read_only else "imap.select",
            subject_ref=f"pro:{self._account_id}", peer=self._peer, details={"folder_id": listing.folder.id},
        )  # fmt: skip
        return listing.status()

    # --- messages -------------------------------------------------------------------
    async def list_messages(self, name: str, *, changed_since: int | None = None) -> Sequence[MessageMeta]:
        def work(conn: Direct) -> Sequence[MessageMeta]:
            if changed_since is None:
                return self._b.listings.get(conn, self.mailbox_id, name).messages
            return read_metas(conn, self.mailbox_id, folder_row(conn, self.mailbox_id, name).id, changed_since)

        return await self._read_direct(work)

    async def fetch_raw(self, name: str, uid: int) -> bytes | None:
        def work(session: Session) -> bytes | None:
            folder_id = folder_row(session, self.mailbox_id, name).id
            return messages.fetch_raw(session, self._b.keys, self.mailbox_id, folder_id, uid)

        return await self._read(work)

    async def fetch_raws(self, name: str, uids: Sequence[int]) -> Mapping[int, bytes]:
        if len(uids) == 1:  # the common single-message fetch, without an ORM session when it can
            inline = self._b.db.loop_reader()
            if inline is not None:  # SQLite: a small message is read and opened on the loop
                found = messages.fetch_one_direct(inline, self._b.keys, self.mailbox_id, name, uids[0],
                                                  max_size=INLINE_MAX)
                if found is not None:
                    return found

            def direct() -> dict[int, bytes] | None:
                with self._b.db.direct_read() as conn:
                    return messages.fetch_one_direct(conn, self._b.keys, self.mailbox_id, name, uids[0])

            found = await asyncio.get_running_loop().run_in_executor(self._b.readers, direct)
            if found is not None:
                return found

        def work(session: Session) -> dict[int, bytes]:
            folder_id = folder_row(session, self.mailbox_id, name).id
            return messages.fetch_raws(session, self._b.keys, self.mailbox_id, folder_id, uids)

        return await self._read(work)

    async def fetch_summaries(self, name: str, uids: Sequence[int]) -> Mapping[int, MessageSummary]:
        def cached(conn: Direct) -> tuple[FolderRow, dict[int, MessageSummary], list[int]]:
            listing = self._b.listings.get(conn, self.mailbox_id, name)
            live = [u for u in uids if u in listing.uids]  # expunged ones are left out
            found = self._b.summaries.get_many(listing.folder, live)
            return listing.folder, found, [u for u in live if u not in found]

        folder, found, missing = await self._read_direct(cached)  # from memory: no ORM session
        if not missing:
            return found

        def work(session: Session) -> tuple[dict[int, MessageSummary], dict[int, bytes]]:
            fetched, to_store = messages.fetch_summaries(session, self._b.keys, self.mailbox_id, folder.id, missing)
            self._b.summaries.put_many(folder, fetched)
            return fetched, to_store

        fetched, to_store = await self._read(work)
        found |= fetched
        if to_store:  # cache the computed summaries, sealed (no client-visible change)
            await self._write(lambda s: messages.store_summaries(s, self.mailbox_id, to_store), notify=False)
        return found

    async def fetch_summary(self, name: str, uid: int) -> MessageSummary | None:
        return (await self.fetch_summaries(name, [uid])).get(uid)

    async def fetch_objects(self, name: str, uids: Sequence[int]) -> Mapping[int, MessageObject]:
        def work(session: Session) -> dict[int, MessageObject]:
            return read_objects(session, self.mailbox_id, folder_row(session, self.mailbox_id, name).id, uids)

        return await self._read(work)

    async def append(self, name: str, message: bytes, flags: Sequence[str],
                     internal_date: dt.datetime | None) -> AppendResult:
        when = internal_date.astimezone(dt.UTC) if internal_date is not None else None
        uidvalidity, uid = await self._write(
            lambda s: messages.append(s, self._b.keys, self.mailbox_id, name, message, flags, when,
                                      defaults=self._b.quota_defaults)
        )
        return AppendResult(uidvalidity, uid)

    async def append_many(self, name: str, items: Sequence[NewMessage]) -> AppendManyResult:
        batch = [(m.message, m.flags, None if m.internal_date is None else m.internal_date.astimezone(dt.UTC))
                 for m in items]
        uidvalidity, uids = await self._write(
            lambda s: messages.append_many(s, self._b.keys, self.mailbox_id, name, batch,
                                           defaults=self._b.quota_defaults)
        )
        return AppendManyResult(uidvalidity, tuple(uids))

    async def _copy(self, source: str, uids: Sequence[int], destination: str, remove: bool) -> CopyResult:
        uidvalidity, mapping = await self._write(
            lambda s: messages.copy(s, self._b.keys, self.mailbox_id, source, uids, destination, remove=remove,
                                    defaults=self._b.quota_defaults)
        )
        return CopyResult(uidvalidity, tuple(mapping))

    async def copy(self, source: str, uids: Sequence[int], destination: str) -> CopyResult:
        return await self._copy(source, uids, destination, False)

    async def move(self, source: str, uids: Sequence[int], destination: str) -> CopyResult:
        return await self._copy(source, uids, destination, True)

    async def store_flags(self, name: str, uids: Sequence[int], mode: StoreMode, flags: Sequence[str], *,
                          unchanged_since: int | None = None) -> StoreResult:
        if not uids:
            return StoreResult(())
        return await self._write(
            lambda s: messages.store_flags(s, self.mailbox_id, name, uids, mode, flags, unchanged_since)
        )

    async def expunge(self, name: str, uids: Sequence[int] | None = None) -> Sequence[int]:
        return await self._write(lambda s: messages.expunge(s, self.mailbox_id, name, uids))

    async def expunged_since(self, name: str, modseq: int) -> Vanished:
        def work(conn: Direct) -> Vanished:
            uids = messages.expunged_since(conn, self.mailbox_id, name, modseq)
            if uids is not None:
                return Vanished.of(uids)
            # Forgotten (gateway/mailstore/expunged.py): every UID below UIDNEXT not there now.
            listing = self._b.listings.get(conn, self.mailbox_id, name)
            return Vanished.all_missing([m.uid for m in listing.messages], listing.folder.uidnext)

        return await self._read_direct(work)

    async def wait_for_any_change(self, seen: int, timeout: float) -> int:
        # The hub's counter for the account's mailbox moves on every announced write, local or
        # (PostgreSQL LISTEN/NOTIFY) from another node; no await between the look and the wait.
        hub = self._b.hub
        version = hub.version(self.mailbox_id)
        if version == seen and timeout > 0:
            await hub.wait(self.mailbox_id, timeout)
        return hub.version(self.mailbox_id)

    # --- quota (RFC 9208) ------------------------------------------------------------------
    async def quota(self, root: str) -> QuotaRoot | None:
        """The mailbox's one quota root, ``""``, over all its folders; none without a limit."""
        if root != "":
            return None
        found = await self._read_direct(lambda c: quota.current(c, self.mailbox_id, self._b.quota_defaults))
        return quota_root(found)

    async def quota_roots(self, name: str) -> Sequence[QuotaRoot]:
        await self._read_direct(lambda c: folder_row(c, self.mailbox_id, name))  # MailboxNotFound
        root = await self.quota("")
        return () if root is None else (root,)

    async def wait_for_change(self, name: str, since_modseq: int, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        hub = self._b.hub
        if timeout <= 0 and self._last_look is not None:
            # The look after every command: skipped while no change of this mailbox was
            # announced since the last look at this folder, for at most FRESH_S (writers
            # that announce nothing, e.g. another process on SQLite, are seen that late).
            seen_name, seen_version, seen_modseq, seen_at = self._last_look
            if (seen_name == name and seen_version == hub.version(self.mailbox_id)
                    and since_modseq >= seen_modseq and loop.time() - seen_at < FRESH_S):
                return False
        while True:
            version, looked_at = hub.version(self.mailbox_id), loop.time()
            current = await self._read_direct(lambda c: messages.highest_modseq(c, self.mailbox_id, name))
            self._last_look = None if current is None else (name, version, current, looked_at)
            if current is None or current > since_modseq:
                return True
            if timeout > 0 and version != self._access[0] and not await self.still_open():
                return True  # woken by the account's suspension (IDLE): the caller's check ends it
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await self._b.hub.wait(self.mailbox_id, min(remaining, self._b.poll_interval))


def quota_root(found: quota.Quota) -> QuotaRoot | None:
    """RFC 9208 §5: STORAGE (KiB) and MESSAGE, each only when it has a limit."""
    lim, use = found.limits, found.usage
    resources = []
    if lim.storage_kib is not None:
        resources.append(QuotaResource("STORAGE", use.kib, lim.storage_kib))
    if lim.messages is not None:
        resources.append(QuotaResource("MESSAGE", use.messages, lim.messages))
    return QuotaRoot("", tuple(resources)) if resources else None
