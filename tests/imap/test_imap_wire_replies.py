"""Every command in every state, on the wire (mox ``TestState``), without sockets: the
session answers as the state table says, and every status response it writes is an entry of
the catalogue, with its status, response code and text (DESIGN rule 6)."""

from __future__ import annotations

import re

import pytest

from imap.proto import commands as c
from imap.proto import replies
from imap.state import TABLE, State
from imap.testing import MemoryBackend, Transcript
from tests.imap.imap_golden_cases import GOLDEN
from tests.imap.test_imap_parser_errors import BAD

_STATUS_LINE = re.compile(rb"^(\S+) (OK|NO|BAD|BYE|PREAUTH) (?:\[([A-Z-]+)(?: ([^\]]*))?\] )?(.*)$")
_CATALOGUE = {(r.status.value, r.code and r.code.value, r.text) for r in replies.CATALOGUE.values()}
_MESSAGE = b"From: a@b.test\r\nSubject: hello\r\n\r\nbody\r\n"

# (name, TLS, setup lines, state reached)
SETUPS = [
    ("not-authenticated-plain", False, b"", State.NOT_AUTHENTICATED),
    ("not-authenticated-tls", True, b"", State.NOT_AUTHENTICATED),
    ("authenticated", True, b"s1 LOGIN alice pw\r\n", State.AUTHENTICATED),
    ("selected", True, b"s1 LOGIN alice pw\r\ns2 SELECT INBOX\r\n", State.SELECTED),
]
IDS = [w.split(b"\r\n")[0][:40].decode("latin-1") for w, _ in GOLDEN]


def status_lines(out: bytes) -> list[tuple[str, str, str | None, str]]:
    """(tag, status, code, text) of each status response; ``+`` continuation requests too."""
    found: list[tuple[str, str, str | None, str]] = []
    for line in out.split(b"\r\n"):
        if line.startswith(b"+ ") and line != b"+ ":  # "+ " alone: an empty SASL challenge (data)
            found.append(("+", "+", None, line[2:].decode()))
        elif match := _STATUS_LINE.match(line):
            tag, status, code, _, text = (g.decode() if g is not None else None for g in match.groups())
            assert tag is not None and status is not None and text is not None
            found.append((tag, status, code, text))
    return found


async def _session(tls: bool, setup: bytes) -> Transcript:
    backend = MemoryBackend(folders=("INBOX", "Archive", "old", "Sent Items"))
    backend.users["alice"].deliver(_MESSAGE)
    backend.users["alice"].deliver(_MESSAGE, flags=["\\Seen"])
    t = Transcript(backend, tls=tls)
    out = await t.greet() + await t.feed(setup)
    assert [(s, c, text) for _, s, c, text in status_lines(out)] == [
        ("OK", "CAPABILITY", replies.GREETING.text), *([("OK", "CAPABILITY", replies.LOGGED_IN.text)] if setup else []),
        *([("OK", "UNSEEN", "First unseen"), ("OK", "PERMANENTFLAGS", "Limited"), ("OK", "UIDVALIDITY", "UIDs valid"),
           ("OK", "UIDNEXT", "Predicted next UID"), ("OK", "HIGHESTMODSEQ", "Highest"),
           ("OK", "MAILBOXID", "Mailbox ID"), ("OK", "READ-WRITE", "SELECT completed")] if b"SELECT" in setup else []),
    ], out
    return t


async def _answer(t: Transcript, wire: bytes, command: c.Command) -> bytes:
    out = await t.feed(wire)
    if isinstance(command, c.Idle) and out.endswith(b"+ idling\r\n"):
        out += await t.feed(b"DONE\r\n")
    elif isinstance(command, c.Authenticate) and command.initial_response is None and out.endswith(b"+ \r\n"):
        out += await t.feed(b"*\r\n")  # the client cancels (RFC 3501 §6.2.2)
    await t.close()
    return out


@pytest.mark.parametrize(("name", "tls", "setup", "state"), SETUPS, ids=[s[0] for s in SETUPS])
@pytest.mark.parametrize(("wire", "command"), GOLDEN, ids=IDS)
async def test_every_command_in_every_state(name: str, tls: bool, setup: bytes, state: State,
                                            wire: bytes, command: c.Command) -> None:
    t = await _session(tls, setup)
    out = await _answer(t, wire, command)
    lines = status_lines(out)
    for tag, status, code, text in lines:
        assert (status, code, text) in _CATALOGUE, f"not in the catalogue: {tag} {status} [{code}] {text}"
    tagged = [(status, code, text) for tag, status, code, text in lines if tag == command.tag]
    assert len(tagged) == 1, out
    allowed = state in TABLE[command.command_name].states
    if not allowed:
        assert tagged[0] == ("BAD", None, replies.NOT_VALID_IN_STATE.text)
    elif command.name in ("LOGIN", "AUTHENTICATE") and not tls:
        assert tagged[0] == ("NO", "PRIVACYREQUIRED", replies.LOGIN_DISABLED.text)  # RFC 3501 §6.2.3
    else:
        assert tagged[0][2] != replies.NOT_VALID_IN_STATE.text


@pytest.mark.parametrize(("wire", "response"), BAD, ids=[w[:30].decode("latin-1") for w, _ in BAD])
async def test_malformed_commands_get_catalogue_replies(wire: bytes, response: bytes) -> None:
    t = await _session(True, b"s1 LOGIN alice pw\r\n")
    out = await t.feed(wire)
    await t.close()
    lines = status_lines(out)
    assert lines and all((status, code, text) in _CATALOGUE for _, status, code, text in lines), out


def test_status_lines_reads_codes_and_continuations() -> None:
    out = (b"* OK [UIDNEXT 4] Predicted next UID\r\n+ Ready for literal data\r\n+ \r\n+ idling\r\n"
           b"* 3 EXISTS\r\na1 NO [TRYCREATE] Destination mailbox does not exist\r\nb BAD Syntax error\r\n")
    assert status_lines(out) == [
        ("*", "OK", "UIDNEXT", "Predicted next UID"), ("+", "+", None, "Ready for literal data"),
        ("+", "+", None, "idling"),
        ("a1", "NO", "TRYCREATE", "Destination mailbox does not exist"), ("b", "BAD", None, "Syntax error"),
    ]
