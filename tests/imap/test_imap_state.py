"""State × command matrix (mox ``TestState``), capabilities, and the backend contract."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import pytest

from imap import backend as b
from imap.capabilities import capabilities, capability_line
from imap.proto.commands import ALL_COMMANDS, COMMAND_NAMES, StoreMode
from imap.proto.errors import BadCommand, CommandFailed
from imap.proto.receiver import LiteralMode
from imap.state import TABLE, State, Tls, check, next_state

EXPECTED_STATES = {
    State.NOT_AUTHENTICATED: {"CAPABILITY", "NOOP", "LOGOUT", "ID", "STARTTLS", "AUTHENTICATE", "LOGIN"},
    State.AUTHENTICATED: {
        "CAPABILITY", "NOOP", "LOGOUT", "ID", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME",
        "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "STATUS", "APPEND", "NAMESPACE", "IDLE", "ENABLE",
    },
    State.LOGOUT: set(),
}  # fmt: skip
EXPECTED_STATES[State.SELECTED] = (EXPECTED_STATES[State.AUTHENTICATED] - {"ENABLE"}) | {
    "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE",
    "UID EXPUNGE", "UID SEARCH", "UID FETCH", "UID STORE", "UID COPY", "UID MOVE",
}  # fmt: skip


def test_table_covers_every_parsed_command_and_nothing_else() -> None:
    assert set(TABLE) == set(COMMAND_NAMES)
    assert {cls.name for cls in ALL_COMMANDS} <= set(TABLE)


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("name", sorted(TABLE))
def test_matrix(state: State, name: str) -> None:
    allowed = name in EXPECTED_STATES[state]
    assert (state in TABLE[name].states) == allowed
    if allowed:
        check(state, name, tls=name != "STARTTLS", login_requires_tls=True)
    else:
        with pytest.raises(BadCommand) as info:
            check(state, name, tls=True, login_requires_tls=True)
        assert info.value.response("a") == b"a BAD Command not valid in this state\r\n"


def test_unknown_command() -> None:
    with pytest.raises(BadCommand):
        check(State.AUTHENTICATED, "XYZZY", tls=True, login_requires_tls=False)


@pytest.mark.parametrize("name", ["LOGIN", "AUTHENTICATE"])
def test_login_disabled_before_tls(name: str) -> None:
    assert TABLE[name].tls is Tls.REQUIRED_FOR_LOGIN
    with pytest.raises(CommandFailed) as info:
        check(State.NOT_AUTHENTICATED, name, tls=False, login_requires_tls=True)
    assert info.value.response("a") == b"a NO [PRIVACYREQUIRED] Use STARTTLS before logging in\r\n"
    check(State.NOT_AUTHENTICATED, name, tls=False, login_requires_tls=False)
    check(State.NOT_AUTHENTICATED, name, tls=True, login_requires_tls=True)


def test_starttls_refused_once_tls_is_active() -> None:
    check(State.NOT_AUTHENTICATED, "STARTTLS", tls=False, login_requires_tls=True)
    with pytest.raises(BadCommand):
        check(State.NOT_AUTHENTICATED, "STARTTLS", tls=True, login_requires_tls=True)


def test_transitions() -> None:
    n, a, s = State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED
    assert next_state(n, "LOGIN", ok=True) is a
    assert next_state(n, "LOGIN", ok=False) is n
    assert next_state(a, "SELECT", ok=True) is s
    assert next_state(s, "EXAMINE", ok=False) is a  # RFC 3501 §6.3.1
    assert next_state(s, "CLOSE", ok=True) is a
    assert next_state(s, "UNSELECT", ok=True) is a
    assert next_state(s, "FETCH", ok=True) is s
    assert next_state(s, "LOGOUT", ok=True) is State.LOGOUT


def test_capabilities_by_state_and_tls() -> None:
    plain = capabilities(State.NOT_AUTHENTICATED, tls=False)
    assert "STARTTLS" in plain and "LOGINDISABLED" in plain and "AUTH=PLAIN" not in plain
    secure = capabilities(State.NOT_AUTHENTICATED, tls=True)
    assert "STARTTLS" not in secure and "LOGINDISABLED" not in secure and "AUTH=PLAIN" in secure
    assert "IDLE" not in secure
    after = capabilities(State.AUTHENTICATED, tls=True, literal_mode=LiteralMode.MINUS, appendlimit=1000)
    for cap in ("IMAP4rev1", "LITERAL-", "IDLE", "UIDPLUS", "MOVE", "SPECIAL-USE", "ENABLE", "NAMESPACE"):
        assert cap in after
    for cap in ("ID", "UNSELECT", "CHILDREN", "CONDSTORE", "APPENDLIMIT=1000"):
        assert cap in after
    assert capability_line(("IMAP4rev1", "IDLE")) == b"* CAPABILITY IMAP4rev1 IDLE\r\n"


# --- the backend contract: an in-memory fake must satisfy the Protocols (checked by mypy) ---
class FakeMailboxes:
    def __init__(self) -> None:
        self.folders: dict[str, list[b.MessageMeta]] = {"INBOX": []}
        self.raw: dict[int, bytes] = {}
        self.modseq = 1

    @property
    def username(self) -> str:
        return "alice"

    async def list_folders(self) -> Sequence[b.FolderInfo]:
        return [b.FolderInfo(name, subscribed=True) for name in self.folders]

    async def create_folder(self, name: str, special_use: Sequence[str] = ()) -> None:
        if name in self.folders:
            raise b.MailboxExists()
        self.folders[name] = []

    async def delete_folder(self, name: str) -> None:
        self.folders.pop(name)

    async def rename_folder(self, old: str, new: str) -> None:
        self.folders[new] = self.folders.pop(old)

    async def set_subscribed(self, name: str, subscribed: bool) -> None:
        return None

    async def folder_status(self, name: str) -> b.FolderStatus:
        if name not in self.folders:
            raise b.MailboxNotFound(detail=name)
        msgs = self.folders[name]
        unseen = sum("\\Seen" not in m.flags for m in msgs)
        uidnext = max((m.uid for m in msgs), default=0) + 1
        return b.FolderStatus(1, uidnext, self.modseq, len(msgs), unseen)

    async def select_folder(self, name: str, *, read_only: bool) -> b.FolderStatus:
        return await self.folder_status(name)

    async def list_messages(self, name: str, *, changed_since: int | None = None) -> Sequence[b.MessageMeta]:
        return [m for m in self.folders[name] if changed_since is None or m.modseq > changed_since]

    async def fetch_raw(self, name: str, uid: int) -> bytes | None:
        return self.raw.get(uid)

    async def fetch_raws(self, name: str, uids: Sequence[int]) -> Mapping[int, bytes]:
        return {uid: self.raw[uid] for uid in uids if uid in self.raw}

    async def fetch_summary(self, name: str, uid: int) -> b.MessageSummary | None:
        return None

    async def fetch_summaries(self, name: str, uids: Sequence[int]) -> Mapping[int, b.MessageSummary]:
        return {}

    async def append(
        self, name: str, message: bytes, flags: Sequence[str], internal_date: dt.datetime | None
    ) -> b.AppendResult:
        status = await self.folder_status(name)
        self.modseq += 1
        when = internal_date or dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        meta = b.MessageMeta(status.uidnext, frozenset(flags), when, len(message), self.modseq)
        self.folders[name].append(meta)
        self.raw[meta.uid] = message
        return b.AppendResult(1, meta.uid)

    async def copy(self, source: str, uids: Sequence[int], destination: str) -> b.CopyResult:
        return b.CopyResult(1, ())

    async def move(self, source: str, uids: Sequence[int], destination: str) -> b.CopyResult:
        return b.CopyResult(1, ())

    async def store_flags(
        self,
        name: str,
        uids: Sequence[int],
        mode: StoreMode,
        flags: Sequence[str],
        *,
        unchanged_since: int | None = None,
    ) -> b.StoreResult:
        return b.StoreResult(())

    async def expunge(self, name: str, uids: Sequence[int] | None = None) -> Sequence[int]:
        return []

    async def wait_for_change(self, name: str, since_modseq: int, timeout: float) -> bool:
        return self.modseq > since_modseq


class FakeBackend:
    async def authenticate(self, credentials: b.Credentials) -> b.Mailboxes:
        if credentials.password != "pw":
            raise b.AuthenticationFailed(detail=f"bad password for {credentials.username}")
        return FakeMailboxes()


async def test_fake_backend_satisfies_the_protocol() -> None:
    backend: b.Backend = FakeBackend()
    with pytest.raises(b.AuthenticationFailed) as info:
        await backend.authenticate(b.Credentials("alice", "wrong"))
    assert info.value.response("a") == b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    boxes = await backend.authenticate(b.Credentials("alice", "pw", tls=True))
    result = await boxes.append("INBOX", b"Subject: x\r\n\r\nhi", ["\\Seen"], None)
    assert result == b.AppendResult(1, 1)
    status = await boxes.folder_status("INBOX")
    assert (status.messages, status.unseen, status.uidnext) == (1, 0, 2)
    assert await boxes.wait_for_change("INBOX", 1, 0.0)
    with pytest.raises(b.MailboxNotFound) as missing:
        await boxes.folder_status("Nope")
    assert missing.value.response("t") == b"t NO [NONEXISTENT] No such mailbox\r\n"
