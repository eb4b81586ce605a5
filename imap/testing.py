"""IMAP without sockets, for tests (pymap ``mocktransport`` and its dict backend):
:class:`MemoryBackend` keeps folders and messages in memory behind the
:mod:`imap.backend` Protocols, :class:`Transcript` drives a real :class:`~imap.session.Session`
over it, bytes in and bytes out, and checks scripted exchanges::

    await Transcript().run('''
        S: * OK [CAPABILITY ...] IMAP4rev1 service ready
        C: a LOGIN alice pw
        S: a OK [CAPABILITY ...] Logged in
    ''')

In a script, ``C:`` lines are what the client sends (each with CRLF; consecutive lines go in
one write), ``S:`` lines the server's whole answer to them, in order, nothing more; ``...``
in an ``S:`` line stands for any text within that line. Indentation, blank lines and ``#``
comments are skipped. Nothing here is used by the server itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from imap import backend as b
from imap.message import mime
from imap.message.preview import preview
from imap.proto import replies
from imap.proto.commands import StoreMode
from imap.proto.errors import CommandFailed
from imap.session import Session, SessionConfig

USER, PASSWORD = "alice", "pw"
DELIVERY_DATE = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)  # the internal date of delivered mail


@dataclass
class _Folder:
    uidvalidity: int
    uidnext: int = 1
    highestmodseq: int = 1
    messages: dict[int, tuple[b.MessageMeta, bytes]] = field(default_factory=dict)
    recent_uid: int = 0  # the recent mark (imap.backend.FolderStatus)
    selectable: bool = True
    special_use: tuple[str, ...] = ()
    expunged: dict[int, int] = field(default_factory=dict)  # UID -> modseq of its expunge (RFC 7162)
    expunged_floor: int = 0  # the highest modseq of the expunges forgotten (forget_expunged)
    objects: dict[int, b.MessageObject] = field(default_factory=dict)  # EMAILID, save date by UID
    mailbox_id: str = ""  # RFC 8474 MAILBOXID


class MemoryMailboxes:
    """One user's folders (:class:`imap.backend.Mailboxes`); every session of the user shares them."""

    def __init__(self, username: str, folders: Sequence[str] = ("INBOX",)) -> None:
        self._username = username
        self.folders: dict[str, _Folder] = {}
        self.modseq = 1
        self._changed = asyncio.Event()
        self.version = 0  # moves on every change (wait_for_any_change)
        self._uidvalidity = 0
        self._email_ids = 0
        for name in folders:
            self.folders[name] = self._new()
        self.subscriptions: set[str] = set(folders)  # names: a subscription outlives its folder
        # RFC 9208 limits of the one quota root "" (STORAGE in KiB, MESSAGE); none by default.
        self.quota_limits: dict[str, int] = {}
        self.suspended = False  # set it: every open session of the user ends (still_open)
        self.access_checks = 0  # how many times a session asked

    @property
    def username(self) -> str:
        return self._username

    async def still_open(self) -> bool:
        self.access_checks += 1
        return not self.suspended

    def _new(self, special_use: Sequence[str] = ()) -> _Folder:
        self._uidvalidity += 1
        return _Folder(self._uidvalidity, special_use=tuple(special_use), mailbox_id=f"F{self._uidvalidity}")

    def _folder(self, name: str) -> _Folder:
        folder = self.folders.get(name)
        if folder is None or not folder.selectable:
            raise b.MailboxNotFound(detail=name)
        return folder

    def _touch(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    def _bump(self, folder: _Folder) -> int:
        self.modseq += 1
        folder.highestmodseq = self.modseq
        self._touch()
        return self.modseq

    def _expunged(self, folder: _Folder, uids: Sequence[int]) -> None:
        """Remove messages; one new modseq remembers them (RFC 7162 §3.2.5 VANISHED (EARLIER))."""
        for uid in uids:
            del folder.messages[uid]
            folder.objects.pop(uid, None)
        if uids:
            modseq = self._bump(folder)
            folder.expunged.update(dict.fromkeys(uids, modseq))

    def _put(self, folder: _Folder, raw: bytes, flags: frozenset[str], when: dt.datetime | None, *,
             email_id: str | None = None, saved: dt.datetime | None = None) -> b.MessageMeta:
        """Add a message; ``email_id`` given when it is a copy of one (RFC 8474 §5.1), ``saved``
        (the save date, RFC 8514) is now unless given."""
        uid, folder.uidnext = folder.uidnext, folder.uidnext + 1
        when = when or DELIVERY_DATE
        meta = b.MessageMeta(uid, flags, when, len(raw), self._bump(folder))
        folder.messages[uid] = (meta, raw)
        if email_id is None:
            self._email_ids += 1
            email_id = f"M{self._email_ids}"
        folder.objects[uid] = b.MessageObject(email_id, None, saved or dt.datetime.now(dt.UTC).replace(microsecond=0))
        return meta

    def deliver(self, raw: bytes, folder: str = "INBOX", flags: Sequence[str] = ()) -> int:
        """Store a message as new mail (no session involved); returns its UID. It is saved at
        its internal date, :data:`DELIVERY_DATE`."""
        return self._put(self._folder(folder), raw, frozenset(flags), None, saved=DELIVERY_DATE).uid

    # --- folders ----------------------------------------------------------------------
    async def list_folders(self) -> Sequence[b.FolderInfo]:
        names = sorted(self.folders, key=lambda n: (n != "INBOX", n))
        return [b.FolderInfo(n, n in self.subscriptions, any(o.startswith(n + b.DELIMITER) for o in self.folders),
                             f.selectable, f.special_use) for n, f in ((n, self.folders[n]) for n in names)]

    async def create_folder(self, name: str, special_use: Sequence[str] = ()) -> None:
        if name in self.folders and self.folders[name].selectable:
            raise b.MailboxExists(detail=name)
        parts = name.split(b.DELIMITER)
        for depth in range(1, len(parts)):  # RFC 3501 §6.3.3: missing parents are created
            if b.DELIMITER.join(parts[:depth]) not in self.folders:
                self.folders[b.DELIMITER.join(parts[:depth])] = self._new()
        self.folders[name] = self._new(special_use)
        self._touch()

    async def delete_folder(self, name: str) -> None:
        if name == "INBOX":
            raise CommandFailed(replies.INBOX_NOT_DELETABLE)
        folder = self._folder(name)
        if any(o.startswith(name + b.DELIMITER) for o in self.folders):  # RFC 3501 §6.3.4
            self.folders[name] = replace(folder, messages={}, objects={}, selectable=False)
        else:
            del self.folders[name]
        self._touch()

    async def rename_folder(self, old: str, new: str) -> None:
        folder = self._folder(old)
        if new in self.folders:
            raise b.MailboxExists(detail=new)
        self._touch()
        if old == "INBOX":  # RFC 3501 §6.3.5: the messages move, INBOX stays
            self.folders[new], self.folders["INBOX"] = folder, self._new()
            return
        for name in [n for n in self.folders if n == old or n.startswith(old + b.DELIMITER)]:
            self.folders[new + name[len(old):]] = self.folders.pop(name)
            if name in self.subscriptions:  # the subscription follows the folder, as Dovecot's
                self.subscriptions.discard(name)
                self.subscriptions.add(new + name[len(old):])

    async def set_subscribed(self, name: str, subscribed: bool) -> None:
        if subscribed or name not in self.subscriptions:
            self._folder(name)  # MailboxNotFound
        (self.subscriptions.add if subscribed else self.subscriptions.discard)(name)
        self._touch()

    async def list_subscriptions(self) -> Sequence[str]:
        return sorted(self.subscriptions)

    async def folder_status(self, name: str) -> b.FolderStatus:
        folder = self._folder(name)
        metas = [m for m, _ in folder.messages.values()]
        unseen = [m.uid for m in metas if "\\Seen" not in m.flags]
        deleted = [m.size for m in metas if "\\Deleted" in m.flags]
        return b.FolderStatus(folder.uidvalidity, folder.uidnext, folder.highestmodseq, len(metas), len(unseen),
                              recent=sum(1 for m in metas if m.uid > folder.recent_uid),
                              recent_uid=folder.recent_uid, first_unseen_uid=min(unseen, default=None),
                              size=sum(m.size for m in metas), mailbox_id=folder.mailbox_id,
                              deleted=len(deleted), deleted_octets=sum(deleted))

    async def select_folder(self, name: str, *, read_only: bool) -> b.FolderStatus:
        return await self.folder_status(name)

    async def claim_recent(self, name: str, up_to_uid: int) -> int:
        folder = self._folder(name)
        previous = folder.recent_uid
        folder.recent_uid = max(previous, up_to_uid)
        return previous

    # --- messages ---------------------------------------------------------------------
    async def list_messages(self, name: str, *, changed_since: int | None = None) -> Sequence[b.MessageMeta]:
        metas = [m for m, _ in sorted(self._folder(name).messages.values(), key=lambda item: item[0].uid)]
        return [m for m in metas if changed_since is None or m.modseq > changed_since]

    async def fetch_raw(self, name: str, uid: int) -> bytes | None:
        item = self._folder(name).messages.get(uid)
        return None if item is None else item[1]

    async def fetch_raws(self, name: str, uids: Sequence[int]) -> Mapping[int, bytes]:
        messages = self._folder(name).messages
        return {uid: messages[uid][1] for uid in uids if uid in messages}

    async def fetch_summary(self, name: str, uid: int) -> b.MessageSummary | None:
        raw = await self.fetch_raw(name, uid)  # parsed on each call, as the store does before caching
        root = None if raw is None else mime.parse(raw)
        return None if root is None else b.MessageSummary(mime.envelope(root), mime.bodystructure(root), preview(root))

    async def fetch_summaries(self, name: str, uids: Sequence[int]) -> Mapping[int, b.MessageSummary]:
        found = {uid: await self.fetch_summary(name, uid) for uid in uids}
        return {uid: summary for uid, summary in found.items() if summary is not None}

    async def fetch_objects(self, name: str, uids: Sequence[int]) -> Mapping[int, b.MessageObject]:
        objects = self._folder(name).objects
        return {uid: objects[uid] for uid in uids if uid in objects}

    # --- quota (RFC 9208) ---------------------------------------------------------------
    def _usage(self) -> tuple[int, int]:
        sizes = [m.size for f in self.folders.values() for m, _ in f.messages.values()]
        return sum(sizes), len(sizes)

    def _reserve(self, octets: int, count: int) -> None:
        used, messages = self._usage()
        storage, most = self.quota_limits.get("STORAGE"), self.quota_limits.get("MESSAGE")
        if (storage is not None and used + octets > storage * 1024) or (most is not None and messages + count > most):
            raise b.OverQuota()

    async def quota(self, root: str) -> b.QuotaRoot | None:
        if root != "" or not self.quota_limits:
            return None
        used, messages = self._usage()
        usage = {"STORAGE": -(-used // 1024), "MESSAGE": messages}
        return b.QuotaRoot("", tuple(b.QuotaResource(name, usage[name], limit)
                                     for name, limit in sorted(self.quota_limits.items(), reverse=True)))

    async def quota_roots(self, name: str) -> Sequence[b.QuotaRoot]:
        self._folder(name)
        root = await self.quota("")
        return () if root is None else (root,)

    async def append(self, name: str, message: bytes, flags: Sequence[str],
                     internal_date: dt.datetime | None) -> b.AppendResult:
        folder = self._folder(name)
        self._reserve(len(message), 1)
        return b.AppendResult(folder.uidvalidity, self._put(folder, message, frozenset(flags), internal_date).uid)

    async def append_many(self, name: str, messages: Sequence[b.NewMessage]) -> b.AppendManyResult:
        folder = self._folder(name)  # MailboxNotFound before any message is added: all or none
        self._reserve(sum(len(m.message) for m in messages), len(messages))
        uids = tuple(self._put(folder, m.message, frozenset(m.flags), m.internal_date).uid for m in messages)
        return b.AppendManyResult(folder.uidvalidity, uids)

    async def copy(self, source: str, uids: Sequence[int], destination: str, *, moving: bool = False
                   ) -> b.CopyResult:
        src, dst = self._folder(source), self._folder(destination)
        if not moving:  # a MOVE stays within the quota root: no more usage
            taken = [src.messages[u][0].size for u in uids if u in src.messages]
            self._reserve(sum(taken), len(taken))
        mapping = []
        for uid in sorted(u for u in uids if u in src.messages):
            meta, raw = src.messages[uid]
            copied = self._put(dst, raw, meta.flags, meta.internal_date, email_id=src.objects[uid].email_id)
            mapping.append((uid, copied.uid))
        return b.CopyResult(dst.uidvalidity, tuple(mapping))

    async def move(self, source: str, uids: Sequence[int], destination: str) -> b.CopyResult:
        result = await self.copy(source, uids, destination, moving=True)
        self._expunged(self._folder(source), [uid for uid, _ in result.mapping])
        return result

    async def store_flags(self, name: str, uids: Sequence[int], mode: StoreMode, flags: Sequence[str], *,
                          unchanged_since: int | None = None) -> b.StoreResult:
        folder = self._folder(name)
        updated, conflicts = [], []
        for uid in uids:
            if uid not in folder.messages:
                continue
            meta, raw = folder.messages[uid]
            if unchanged_since is not None and meta.modseq > unchanged_since:  # RFC 7162 §3.1.3
                conflicts.append(uid)
                continue
            new = {StoreMode.REPLACE: frozenset(flags), StoreMode.ADD: meta.flags | set(flags),
                   StoreMode.REMOVE: meta.flags - set(flags)}[mode]
            if new != meta.flags:
                meta = replace(meta, flags=new, modseq=self._bump(folder))
                folder.messages[uid] = (meta, raw)
                updated.append(meta)
        return b.StoreResult(tuple(updated), tuple(conflicts))

    async def expunge(self, name: str, uids: Sequence[int] | None = None) -> Sequence[int]:
        folder = self._folder(name)
        gone = [u for u, (m, _) in sorted(folder.messages.items())
                if "\\Deleted" in m.flags and (uids is None or u in uids)]
        self._expunged(folder, gone)
        return gone

    async def expunged_since(self, name: str, modseq: int) -> b.Vanished:
        folder = self._folder(name)
        if modseq < folder.expunged_floor:  # some expunge above modseq is forgotten
            return b.Vanished.all_missing(sorted(folder.messages), folder.uidnext)
        return b.Vanished.of(uid for uid, when in folder.expunged.items() if when > modseq)

    def forget_expunged(self, name: str, up_to_modseq: int) -> None:
        """Drop the expunges at or below ``up_to_modseq``, as the store's pruning does
        (``gateway/mailstore/expunged.py``)."""
        folder = self._folder(name)
        folder.expunged = {uid: when for uid, when in folder.expunged.items() if when > up_to_modseq}
        folder.expunged_floor = max(folder.expunged_floor, up_to_modseq)

    async def wait_for_any_change(self, seen: int, timeout: float) -> int:
        if self.version == seen and timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        return self.version

    async def wait_for_change(self, name: str, since_modseq: int, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._folder(name).highestmodseq <= since_modseq:
            if deadline <= loop.time():
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
        return True


UNAVAILABLE_TOKEN = "unavailable"  # noqa: S105 (stands for an identity provider down)


class MemoryBackend:
    """:class:`imap.backend.Backend` over :class:`MemoryMailboxes`, one per user name."""

    def __init__(self, users: Mapping[str, str] | None = None, folders: Sequence[str] = ("INBOX",)) -> None:
        self.passwords = dict(users or {USER: PASSWORD})
        self.users = {name: MemoryMailboxes(name, folders) for name in self.passwords}
        #: access token -> (the mailboxes it may open, its own first; its expiry). Tests fill it.
        self.tokens: dict[str, tuple[tuple[str, ...], dt.datetime | None]] = {}
        #: client certificate (DER) -> the application mailboxes it opens (EXTERNAL). Tests fill it.
        self.certificates: dict[bytes, tuple[str, ...]] = {}

    async def authenticate(self, credentials: b.Credentials) -> MemoryMailboxes:
        if self.passwords.get(credentials.username) != credentials.password:
            raise b.AuthenticationFailed(detail=f"bad password for {credentials.username}")
        return self.users[credentials.username]

    TOKEN_CHALLENGE = b'{"status":"invalid_token"}'

    async def authenticate_token(self, credentials: b.TokenCredentials) -> b.OpenedByToken:
        if credentials.token == UNAVAILABLE_TOKEN:  # an identity provider that cannot be asked
            raise CommandFailed(replies.TOKEN_CHECK_UNAVAILABLE, detail="provider unavailable")
        allowed, expires = self.tokens.get(credentials.token, ((), None))
        wanted = credentials.authzid or (allowed[0] if allowed else "")
        if wanted not in allowed or wanted not in self.users:
            raise b.TokenRefused(self.TOKEN_CHALLENGE, detail="token refused")
        return b.OpenedByToken(self.users[wanted], expires)


    async def authenticate_certificate(self, credentials: b.CertificateCredentials) -> MemoryMailboxes:
        bound = self.certificates.get(credentials.certificate, ())
        wanted = credentials.authzid or (bound[0] if len(bound) == 1 else "")
        if wanted not in bound or wanted not in self.users:
            raise b.AuthenticationFailed(detail="certificate not bound")
        return self.users[wanted]


def _pattern(expected: list[str]) -> re.Pattern[bytes]:
    lines = [b"[^\r\n]*".join(re.escape(p.encode()) for p in line.split("...")) for line in expected]
    return re.compile(b"".join(line + b"\r\n" for line in lines), re.DOTALL)


class Transcript:
    """A session over a backend with no socket: :meth:`feed` bytes, get the bytes written."""

    def __init__(self, backend: b.Backend | None = None, *, tls: bool = True,
                 config: SessionConfig | None = None, peer: str = "192.0.2.1",
                 peer_certificate: bytes | None = None) -> None:
        self.backend = backend if backend is not None else MemoryBackend()
        self.out = bytearray()
        self.session = Session(self.backend, self._send, config=config or SessionConfig(idle_poll=0.05),
                               peer=peer, tls=tls, peer_certificate=peer_certificate)
        self._greeted = False

    async def _send(self, data: bytes) -> None:
        self.out += data

    def take(self) -> bytes:
        """Everything written since the last take."""
        data, self.out = bytes(self.out), bytearray()
        return data

    async def greet(self) -> bytes:
        self._greeted = True
        await self.session.greet()
        return self.take()

    async def feed(self, data: bytes) -> bytes:
        """The answer to ``data`` (a greeting not asked for with :meth:`greet` is dropped)."""
        if not self._greeted:
            await self.greet()
        await self.session.data_received(data)
        return self.take()

    async def run(self, script: str, *, wait: float = 2.0) -> None:
        """Play a ``C:`` / ``S:`` script (see the module docstring); AssertionError on a difference."""
        blocks: list[tuple[str, list[str]]] = []
        for raw in script.splitlines():
            line = raw.lstrip()  # indentation is free; what follows "C: " / "S: " is kept as is
            if not line or line.startswith("#"):
                continue
            side, text = line[:2], line[3:]
            if side not in ("C:", "S:"):
                raise ValueError(f"script line must start with 'C: ' or 'S: ': {raw!r}")
            if blocks and blocks[-1][0] == side:
                blocks[-1][1].append(text)
            else:
                blocks.append((side, [text]))
        loop = asyncio.get_running_loop()
        if not self._greeted:  # a new session: the script starts with the greeting
            self._greeted = True
            await self.session.greet()
        for side, lines in blocks:
            if side == "C:":
                await self.session.data_received("".join(line + "\r\n" for line in lines).encode())
                continue
            pattern, deadline = _pattern(lines), loop.time() + wait
            while pattern.fullmatch(self.out) is None and loop.time() < deadline:
                await asyncio.sleep(0.01)  # IDLE pushes come from a task of the session
            got = self.take()
            assert pattern.fullmatch(got), f"expected:\n{chr(10).join(lines)}\ngot:\n{got.decode('latin-1')}"

    async def close(self) -> None:
        await self.session.close()
