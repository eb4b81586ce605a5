"""Literal flow, limits and line mode of :class:`CommandReceiver` (known attack vectors named)."""

from __future__ import annotations

import pytest

from imap.proto import commands as c
from imap.proto import replies
from imap.proto.errors import BadCommand, CommandFailed, ImapError, ProtocolLimit
from imap.proto.receiver import (
    DEFAULT_APPENDLIMIT,
    NEED_DATA,
    CommandReceiver,
    ContinuationLine,
    LiteralMode,
    NeedLiteral,
)


def test_literal_size_dos_before_login_non_synchronizing() -> None:
    receiver = CommandReceiver()
    receiver.feed(b"a LOGIN {200000000+}\r\n")
    with pytest.raises(ProtocolLimit) as info:
        receiver.next_event()
    assert info.value.response() == b"a BAD [TOOBIG] Literal too large\r\n"
    assert info.value.close_connection
    assert receiver.closed and receiver.buffered == 0
    # The client sends the octets anyway: they are dropped, never buffered or parsed.
    receiver.feed(b"x" * 100_000 + b"\r\nb LOGOUT\r\n")
    assert receiver.next_event() is NEED_DATA
    assert receiver.buffered == 0


def test_literal_size_dos_before_login_synchronizing_is_refused_without_closing() -> None:
    receiver = CommandReceiver()
    receiver.feed(b"a LOGIN {200000000}\r\n")
    with pytest.raises(ProtocolLimit) as info:
        receiver.next_event()
    assert info.value.tag == "a" and not info.value.close_connection
    assert receiver.buffered == 0
    # The client never got "+", so the next line is a new command.
    receiver.feed(b"b NOOP\r\n")
    assert receiver.next_event() == c.Noop("b")


def test_literal_limit_is_checked_on_the_header_before_the_data() -> None:
    receiver = CommandReceiver(max_literal=10)
    receiver.feed(b"a LOGIN {11+}\r\n")  # not one octet of data yet
    with pytest.raises(ProtocolLimit):
        receiver.next_event()


def test_synchronizing_literal_flow() -> None:
    receiver = CommandReceiver()
    receiver.feed(b"a LOGIN {5}\r\n")
    assert receiver.next_event() == NeedLiteral(5, True, "a")
    assert receiver.next_event() is NEED_DATA
    receiver.feed(b"alice")
    assert receiver.next_event() is NEED_DATA
    receiver.feed(b" pw\r\n")
    assert receiver.next_event() == c.Login("a", "alice", "pw")


def test_shell_rejects_a_synchronizing_literal() -> None:
    receiver = CommandReceiver()
    receiver.feed(b"a APPEND INBOX {5}\r\n")
    assert isinstance(receiver.next_event(), NeedLiteral)
    receiver.reject_literal()
    receiver.feed(b"b NOOP\r\n")
    assert receiver.next_event() == c.Noop("b")


def _refused() -> ImapError:
    return CommandFailed(replies.SERVER_BUSY)


def _split_feed(receiver: CommandReceiver, data: bytes, step: int) -> list[object]:
    events: list[object] = []
    for i in range(0, len(data), step):
        receiver.feed(data[i : i + step])
        while True:
            try:
                event = receiver.next_event()
            except ImapError as exc:
                events.append(exc)
                continue
            if event is NEED_DATA:
                break
            events.append(event)
    return events


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_shell_discards_a_non_synchronizing_literal_it_has_no_room_for(step: int) -> None:
    """Issue 15 item 6: the literal is on its way; its octets are dropped, never buffered,
    then the command is answered NO [LIMIT] with its tag and the next command runs."""
    receiver = CommandReceiver()
    receiver.authenticated()
    receiver.feed(b"a APPEND INBOX (\\Seen) {70000+}\r\n")
    assert receiver.next_event() == NeedLiteral(70000, False, "a")
    receiver.discard_literal(_refused())
    peak = 0
    rest = b"x" * 70000 + b" {3+}\r\nabc\r\nb NOOP\r\n"
    events: list[object] = []
    for i in range(0, len(rest), step):
        events += _split_feed(receiver, rest[i : i + step], step)
        peak = max(peak, receiver.buffered)
    assert peak <= max(step, 64) + 16
    assert len(events) == 2 and isinstance(events[0], ImapError) and events[1] == c.Noop("b")
    assert events[0].response() == b"a NO [LIMIT] Server busy, try again later\r\n"


def test_discarded_command_ends_at_a_synchronizing_literal() -> None:
    receiver = CommandReceiver()
    receiver.authenticated()
    receiver.feed(b"a APPEND INBOX {5+}\r\n")
    assert isinstance(receiver.next_event(), NeedLiteral)
    receiver.discard_literal(_refused())
    receiver.feed(b"hello {5}\r\n")  # the client will wait for "+": answer now
    with pytest.raises(ImapError) as info:
        receiver.next_event()
    assert info.value.tag == "a" and info.value.status == "NO"
    receiver.feed(b"b NOOP\r\n")
    assert receiver.next_event() == c.Noop("b")


def test_append_over_appendlimit_after_login_is_no_toobig() -> None:
    receiver = CommandReceiver()
    receiver.authenticated()
    assert receiver.max_literal == DEFAULT_APPENDLIMIT
    receiver.feed(b"a APPEND INBOX {%d}\r\n" % (DEFAULT_APPENDLIMIT + 1))
    with pytest.raises(CommandFailed) as info:
        receiver.next_event()
    assert info.value.response() == b"a NO [TOOBIG] Message too large\r\n"
    receiver.feed(b"a APPEND INBOX {%d}\r\n" % DEFAULT_APPENDLIMIT)
    assert receiver.next_event() == NeedLiteral(DEFAULT_APPENDLIMIT, True, "a")


@pytest.mark.parametrize(("size", "ok"), [(4096, True), (4097, False)])
def test_literal_minus_limit(size: int, ok: bool) -> None:
    receiver = CommandReceiver(literal_mode=LiteralMode.MINUS)
    receiver.authenticated()
    receiver.feed(b"a APPEND INBOX {%d+}\r\n" % size)
    if ok:
        assert receiver.next_event() == NeedLiteral(size, False, "a")
        receiver.feed(b"x" * size + b"\r\n")
        assert receiver.next_event() == c.Append("a", "INBOX", (), None, b"x" * size)
    else:
        with pytest.raises(ProtocolLimit) as info:
            receiver.next_event()
        assert info.value.close_connection and info.value.response().startswith(b"a BAD [TOOBIG]")
    # Synchronizing literals above 4096 are fine with LITERAL-.
    receiver = CommandReceiver(literal_mode=LiteralMode.MINUS)
    receiver.authenticated()
    receiver.feed(b"a APPEND INBOX {5000}\r\n")
    assert receiver.next_event() == NeedLiteral(5000, True, "a")


def test_non_synchronizing_literal_without_literal_plus_closes() -> None:
    receiver = CommandReceiver(literal_mode=LiteralMode.NONE)
    receiver.feed(b"a LOGIN {3+}\r\nabc x\r\n")
    with pytest.raises(BadCommand) as info:
        receiver.next_event()
    assert info.value.close_connection and receiver.closed


def test_line_too_long_is_refused_before_its_end() -> None:
    receiver = CommandReceiver(max_line=100)
    receiver.feed(b"a LOGIN " + b"x" * 200)
    with pytest.raises(ProtocolLimit) as info:
        receiver.next_event()
    assert info.value.tag == "a" and info.value.close_connection
    assert receiver.buffered == 0


def test_total_command_bound() -> None:
    receiver = CommandReceiver(max_line=100, max_literal=50, max_command=120)
    receiver.feed(b"a LOGIN {50+}\r\n" + b"x" * 50 + b" {50+}\r\n")
    assert isinstance(receiver.next_event(), NeedLiteral)
    with pytest.raises(ProtocolLimit):
        receiver.next_event()


def test_huge_literal_size_number_is_a_syntax_error_not_a_crash() -> None:
    receiver = CommandReceiver()
    receiver.feed(b"a LOGIN {" + b"9" * 5000 + b"}\r\n")
    with pytest.raises(BadCommand) as info:
        receiver.next_event()
    assert info.value.response() == b"a BAD Invalid number\r\n" and not info.value.close_connection


def test_line_mode_for_idle_done_and_authenticate() -> None:
    receiver = CommandReceiver()
    receiver.feed(b"a IDLE\r\nDONE\r\nb AUTHENTICATE PLAIN\r\nAGFsaWNlAHB3\r\nc NOOP\r\n")
    assert receiver.next_event() == c.Idle("a")
    receiver.expect_line()
    assert receiver.next_event() == ContinuationLine(b"DONE")
    assert receiver.next_event() == c.Authenticate("b", "PLAIN")
    receiver.expect_line()
    assert receiver.next_event() == ContinuationLine(b"AGFsaWNlAHB3")
    assert receiver.next_event() == c.Noop("c")


def test_line_mode_line_limit() -> None:
    receiver = CommandReceiver(max_line=10)
    receiver.expect_line()
    receiver.feed(b"x" * 11)
    with pytest.raises(ProtocolLimit):
        receiver.next_event()


def test_empty_lines_are_ignored_and_bare_lf_accepted() -> None:
    receiver = CommandReceiver()
    receiver.feed(b"\r\n\na NOOP\n")
    assert receiver.next_event() == c.Noop("a")


def test_literal_data_is_never_parsed_as_a_command() -> None:
    """Smuggling: a literal containing CRLF and a command stays data."""
    receiver = CommandReceiver()
    receiver.authenticated()
    receiver.feed(b"a APPEND INBOX {21+}\r\nx\r\nb DELETE INBOX\r\n12\r\n")
    assert isinstance(receiver.next_event(), NeedLiteral)
    event = receiver.next_event()
    assert isinstance(event, c.Append) and event.message == b"x\r\nb DELETE INBOX\r\n12"
    assert receiver.next_event() is NEED_DATA
