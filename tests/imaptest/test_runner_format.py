"""The runner's reading of imaptest's format, without a server: parser, matcher, mbox, literals.

Each case is a rule of imaptest's ``release-2.3`` sources (``test-parser.c``,
``test-exec.c``, Dovecot's ``imap-parser.c``) the reference run does not pin down by itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require
from tests.imaptest.connection import parse_datetime, split_literals
from tests.imaptest.imapargs import Arg, Kind, NeedMore, ParseError, parse_response, parse_script_args
from tests.imaptest.matcher import FULL, Matcher
from tests.imaptest.mbox import read_mbox
from tests.imaptest.runner import TESTS_DIR, _append_has_body
from tests.imaptest.script import ALL, Existence, State, expected_reply, list_tests, parse_script
from tests.imaptest.startup import mailbox_url


def _tests_dir() -> Path:
    require(None if TESTS_DIR.is_dir() else f"{TESTS_DIR} is missing", "imaptest's scripted tests")
    return TESTS_DIR


def _args(text: bytes) -> list[Arg]:
    return parse_script_args(text)


# --- the data --------------------------------------------------------------------------------


def test_every_test_file_parses() -> None:
    folder = _tests_dir()
    names = list_tests(folder)
    assert len(names) == 71 and "default.mbox" not in names and "broken" not in names
    for name in names:
        script = parse_script(folder / name)
        assert script.groups, name
        assert script.mbox.exists(), name
        read_mbox(script.mbox)


def test_header_defaults_are_release_2_3s() -> None:
    folder = _tests_dir()
    fetch = parse_script(folder / "fetch")
    assert (fetch.state, fetch.messages, fetch.connections, fetch.ignore_extra_untagged) == (State.SELECTED, 3, 1, True)
    assert parse_script(folder / "select").messages == 0  # no "messages:" means none (release-2.3 default)
    assert parse_script(folder / "esearch").messages == ALL
    assert parse_script(folder / "fetch").mbox.name == "default.mbox"
    assert parse_script(folder / "select").mbox.name == "select.mbox"
    assert parse_script(folder / "urlauth2").require_user2
    assert parse_script(folder / "notify").capabilities == ["notify", "qresync"]


def test_both_command_forms_pipelining_and_the_final_logout(tmp_path: Path) -> None:
    (tmp_path / "t").write_text(
        "connections: 2\nstate: auth\n\n"
        "1 ok noop\n* ok [foo]\n"
        "2 select x\n* 0 exists\nok [read-write]\n"
        "1 tag1 status a (messages)\n1 tag2 status b (messages)\n* status a (messages 0)\ntag2 no [x]\ntag1 ok\n"
        "2 \"\" delete y\n"
    )
    script = parse_script(tmp_path / "t")
    g = script.groups
    assert [len(x.commands) for x in g] == [1, 1, 2, 1, 1]
    assert g[0].commands[0].reply is not None and g[0].commands[0].reply[0].data == b"ok"
    assert g[1].connection == 1 and g[1].commands[0].text == b"select x"
    assert [a.data for a in g[1].commands[0].reply or []] == [b"ok", b"[read-write]"]
    assert [c.tag for c in g[2].commands] == [1, 2]
    assert [a.data for a in g[2].commands[1].reply or []] == [b"no", b"[x]"]
    assert g[3].commands[0].reply == [Arg(Kind.ATOM, b"")]
    assert g[4].commands[0].line == 0 and g[4].commands[0].text == b"logout" and g[4].connection == 0


def test_multiline_literals_plain_and_binary(tmp_path: Path) -> None:
    (tmp_path / "t").write_bytes(b"\nok append x {{{\nab\r\ncd\n\n}}} ~{{{\nx\r\ny\n}}}\n")
    cmd = parse_script(tmp_path / "t").groups[0].commands[0]
    # plain: every line gets CRLF (a CR already there stays), the last line end is dropped;
    # literal8: the file's bytes exactly
    assert cmd.text == b"append x {9}\r\nab\r\r\ncd\r\n ~{4}\r\nx\r\ny"


def test_default_directives_are_added_where_imaptest_adds_them() -> None:
    folder = _tests_dir()
    script = parse_script(folder / "store")
    untagged = script.groups[0].untagged[0]  # * 1 fetch (flags (\seen))
    fetch_list = untagged.args[2].items
    assert fetch_list[0].data == b"$!unordered=2"
    flags = fetch_list[2].items
    assert {a.data for a in flags[:5]} == {b"$!unordered", b"$!noextra", b"$!ignore=\\recent",
                                          b"$!ignore=$HasAttachment", b"$!ignore=$HasNoAttachment"}
    assert untagged.existence is Existence.MUST


# --- Dovecot's parser ----------------------------------------------------------------------


def test_atoms_split_like_dovecots_parser() -> None:
    args = _args(b'1 fetch (body[header.fields (from)] "a\\"b" NIL nil ~foo)')
    items = args[2].items
    assert [a.kind for a in items] == [Kind.ATOM, Kind.LIST, Kind.ATOM, Kind.STRING, Kind.NIL, Kind.NIL, Kind.ATOM]
    assert items[0].data == b"body[header.fields" and items[2].data == b"]" and items[3].data == b'a"b'


def test_responses_read_literals_and_ask_for_more() -> None:
    data = b"* 1 FETCH (BODY[] {5}\r\nab\r\nc BINARY[1] ~{2}\r\n\0x)\r\n* OK"
    args, end = parse_response(data)
    assert data[end:] == b"* OK"
    items = args[3].items
    assert items[1].data == b"ab\r\nc" and items[3].data == b"\0x"
    with pytest.raises(NeedMore):
        parse_response(data[:20])
    with pytest.raises(NeedMore):
        parse_response(b"* OK")
    with pytest.raises(ParseError):
        parse_response(b"* OK (unbalanced\r\n")
    with pytest.raises(ParseError):
        parse_response(b"* OK ) stray\r\n")


# --- matching --------------------------------------------------------------------------------


def _match(pattern: bytes, reply: bytes, variables: dict[str, bytes] | None = None, prefix: bool = False) -> bool:
    matcher = Matcher(variables if variables is not None else {})
    return matcher.match_args(expected_reply(pattern), parse_response(reply + b"\r\n")[0], prefix=prefix) == FULL


def test_variables_bind_once_then_must_repeat_exactly() -> None:
    variables: dict[str, bytes] = {}
    assert _match(b"1 fetch (uid $uid1)", b"1 FETCH (UID 17)", variables)
    assert variables["uid1"] == b"17"
    assert _match(b"search $uid1 5", b"SEARCH 17 5", variables)
    assert not _match(b"search $uid1", b"SEARCH 18", variables)
    assert _match(b"ok [uidvalidity $v]", b"OK [UIDVALIDITY 99] UIDs valid", variables, prefix=True)
    assert variables["v"] == b"99"
    variables["name"] = b"Inbox"
    assert not _match(b"list () $sep $name", b'LIST () "/" INBOX', variables)  # bound: case counts
    assert _match(b"list () $sep inbox", b'LIST () "/" INBOX', variables)  # written: case does not


def test_dollar_matches_anything_even_a_list_and_double_dollar_is_literal() -> None:
    assert _match(b"1 fetch (uid $ flags $)", b"1 FETCH (UID 3 FLAGS (\\Seen))")
    assert _match(b"search $$x", b"SEARCH $x")
    assert not _match(b"search $$x", b"SEARCH x")


def test_sequence_numbers_follow_expunges() -> None:
    matcher = Matcher({})
    matcher.start_group(5)
    matcher.expunged(3)  # message 3 gone: 4 -> 3, 5 -> 4
    matcher.expunged(3)  # the old 4 gone too
    assert [matcher.relative_seq(n) for n in range(1, 7)] == [b"1", b"2", b"<expunged>", b"<expunged>", b"3",
                                                              b"<out of range>"]
    assert matcher.expand_all(b"fetch $5 ${2} $$1") == b"fetch 3 2 $1"


def test_unordered_lists_noextra_ignore_and_ban() -> None:
    fetch = b"1 fetch (flags (\\seen))"
    assert _match(fetch, b"1 FETCH (UID 4 FLAGS (\\Recent \\Seen))")  # extra pair and \Recent allowed
    assert not _match(fetch, b"1 FETCH (FLAGS (\\Seen \\Flagged))")  # FLAGS: no extra flag
    assert _match(b"status a (messages 1)", b"STATUS a (UIDNEXT 5 MESSAGES 1)")
    assert not _match(b"list ($!unordered $!ban=\\noselect \\foo) / a", b"LIST (\\Foo \\NoSelect) / a")
    assert _match(b"list ($!unordered $!ban=\\noselect \\foo) / a", b"LIST (\\Foo \\Marked) / a")
    assert not _match(b"esearch (tag x) all 1:3", b"ESEARCH (TAG x) ALL 1:3 COUNT 3")  # ordered, exact


def test_untagged_ok_matches_by_prefix_and_tagged_replies_too() -> None:
    assert _match(b"ok [read-write]", b"OK [READ-WRITE] Select completed", prefix=True)
    assert not _match(b"ok [read-write]", b"OK [READ-ONLY] Select completed", prefix=True)
    assert _match(b'""', b"NO [TRYCREATE] no such mailbox", prefix=True)


# --- messages and commands -------------------------------------------------------------------


def test_mbox_messages_carry_crlf_and_the_from_line_date() -> None:
    messages = read_mbox(_tests_dir() / "default.mbox")
    assert len(messages) == 6
    assert messages[0].data.startswith(b"From: user1@domain.org\r\n") and messages[0].data.endswith(b"body1\r\n\r\n")
    assert b"\n" not in messages[0].data.replace(b"\r\n", b"")
    dated = read_mbox(_tests_dir() / "sort-date.mbox")[0]
    assert dated.internaldate == "22-Feb-2008 23:00:00 +0200"
    assert parse_datetime(dated.internaldate.encode()) == (1203714000, 120)


def test_literals_go_as_literal_plus_or_wait_for_continuation() -> None:
    parts, tail = split_literals(b"append x (\\seen) ~{3}\r\na\0b catenate (text {2}\r\nhi)")
    assert parts == [(b"append x (\\seen) ~{3", b"a\0b"), (b" catenate (text {2", b"hi")]
    assert tail == b")"
    assert _append_has_body(b'x (\\seen) "24-Mar-2007 23:00:00 +0200" {3}\r\nabc')
    assert _append_has_body(b"x catenate (url \"/x\")")
    assert not _append_has_body(b"x2")
    assert mailbox_url("imaptest") == "imaptest" and mailbox_url("p&AOQA5A-") == "p%C3%A4%C3%A4"
