"""State × command matrix (mox ``TestState``), capabilities, and the backend contract."""

from __future__ import annotations

import pytest

from imap import backend as b
from imap.proto.commands import ALL_COMMANDS, COMMAND_NAMES
from imap.proto.errors import BadCommand, CommandFailed
from imap.proto.receiver import LiteralMode
from imap.state import TABLE, State, Tls, capabilities, capability_line, check, next_state
from imap.testing import MemoryBackend

EXPECTED_STATES = {
    State.NOT_AUTHENTICATED: {"CAPABILITY", "NOOP", "LOGOUT", "ID", "STARTTLS", "AUTHENTICATE", "LOGIN"},
    State.AUTHENTICATED: {
        "CAPABILITY", "NOOP", "LOGOUT", "ID", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME",
        "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "STATUS", "APPEND", "NAMESPACE", "IDLE", "ENABLE", "NOTIFY",
        "COMPRESS",
        "GETQUOTA", "GETQUOTAROOT", "SETQUOTA",  # RFC 9208 §4.1
    },
    State.LOGOUT: set(),
}  # fmt: skip
EXPECTED_STATES[State.SELECTED] = (EXPECTED_STATES[State.AUTHENTICATED] - {"ENABLE"}) | {
    "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "SORT",
    "THREAD", "UID EXPUNGE", "UID SEARCH", "UID FETCH", "UID STORE", "UID COPY", "UID MOVE", "UID SORT",
    "UID THREAD", "CANCELUPDATE",
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
    for cap in ("ID", "UNSELECT", "CHILDREN", "CONDSTORE", "APPENDLIMIT=1000", "ESEARCH", "SORT", "SORT=DISPLAY",
                "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "LIST-EXTENDED"):
        assert cap in after
    assert capability_line(("IMAP4rev1", "IDLE")) == b"* CAPABILITY IMAP4rev1 IDLE\r\n"


def test_capabilities_without_passwords() -> None:
    """[auth] password_login = false (issue 19): LOGINDISABLED, password mechanisms left out,
    others kept."""
    caps = capabilities(State.NOT_AUTHENTICATED, tls=True, password_login=False,
                        auth_mechanisms=("PLAIN", "OAUTHBEARER", "login"))
    assert "LOGINDISABLED" in caps and "AUTH=OAUTHBEARER" in caps
    assert not {"AUTH=PLAIN", "AUTH=LOGIN"} & set(caps)
    assert caps.count("LOGINDISABLED") == 1
    plain = capabilities(State.NOT_AUTHENTICATED, tls=False, password_login=False)
    assert plain.count("LOGINDISABLED") == 1 and not [c for c in plain if c.startswith("AUTH=")]


def test_imap4rev2_is_offered_with_what_it_folds_in() -> None:
    # RFC 9051 Appendix A: IMAP4rev2 beside IMAP4rev1; Appendix E item 2: what rev2 folds in
    # is offered by its rev1 name too (LITERAL+ includes LITERAL-, RFC 7888 §5).
    before = capabilities(State.NOT_AUTHENTICATED, tls=True)
    assert before[:2] == ("IMAP4rev1", "IMAP4rev2") and "SASL-IR" in before
    after = capabilities(State.AUTHENTICATED, tls=True)
    for cap in ("IMAP4rev2", "NAMESPACE", "UNSELECT", "UIDPLUS", "ESEARCH", "ENABLE", "IDLE", "SASL-IR",
                "LIST-EXTENDED", "MOVE", "LITERAL+", "BINARY", "SPECIAL-USE", "UTF8=ACCEPT"):
        assert cap in after, cap
    # RFC 9051 needs LITERAL-: a listener with no non-synchronizing literals offers rev1 only.
    assert "IMAP4rev2" not in capabilities(State.AUTHENTICATED, tls=True, literal_mode=LiteralMode.NONE)


# --- the backend contract: the in-memory backend of imap.testing satisfies the Protocols ---
async def test_memory_backend_satisfies_the_protocol() -> None:
    backend: b.Backend = MemoryBackend()  # mypy checks the Protocols here
    with pytest.raises(b.AuthenticationFailed) as info:
        await backend.authenticate(b.Credentials("alice", "wrong"))
    assert info.value.response("a") == b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    boxes = await backend.authenticate(b.Credentials("alice", "pw", tls=True))
    result = await boxes.append("INBOX", b"Subject: x\r\n\r\nhi", ["\\Seen"], None)
    assert result == b.AppendResult(1, 1)
    status = await boxes.folder_status("INBOX")
    assert (status.messages, status.unseen, status.uidnext) == (1, 0, 2)
    assert await boxes.wait_for_change("INBOX", 1, 0.0)
    assert not await boxes.wait_for_change("INBOX", status.highestmodseq, 0.01)
    with pytest.raises(b.MailboxNotFound) as missing:
        await boxes.folder_status("Nope")
    assert missing.value.response("t") == b"t NO [NONEXISTENT] No such mailbox\r\n"
