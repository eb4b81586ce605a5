"""Golden cases for every command: fed whole, one byte at a time, and split at every offset
(h11 ``test_io.py`` style)."""

from __future__ import annotations

import pytest

from imap.proto import command_types as t
from imap.proto import commands as c
from imap.proto.receiver import CommandReceiver, Event, LiteralMode, NeedData, NeedLiteral
from tests.imap.imap_golden_cases import GOLDEN, S


def drain(receiver: CommandReceiver) -> list[Event]:
    events: list[Event] = []
    while not isinstance(event := receiver.next_event(), NeedData):
        events.append(event)
    return events


def feed_chunks(chunks: list[bytes]) -> list[Event]:
    receiver = CommandReceiver(literal_mode=LiteralMode.PLUS)
    events: list[Event] = []
    for chunk in chunks:
        receiver.feed(chunk)
        events.extend(drain(receiver))
    assert receiver.buffered == 0
    return events


def expected_events(wire: bytes, command: c.Command) -> list[Event]:
    events: list[Event] = [e for e in feed_chunks([wire]) if isinstance(e, NeedLiteral)]
    return [*events, command]


IDS = [w.split(b"\r\n")[0][:40].decode("latin-1") for w, _ in GOLDEN]


@pytest.mark.parametrize(("wire", "command"), GOLDEN, ids=IDS)
def test_whole(wire: bytes, command: c.Command) -> None:
    events = feed_chunks([wire])
    assert events[-1] == command
    assert all(isinstance(e, NeedLiteral) for e in events[:-1])


@pytest.mark.parametrize(("wire", "command"), GOLDEN, ids=IDS)
def test_byte_at_a_time(wire: bytes, command: c.Command) -> None:
    events = feed_chunks([wire[i : i + 1] for i in range(len(wire))])
    assert events == expected_events(wire, command)


@pytest.mark.parametrize(("wire", "command"), GOLDEN, ids=IDS)
def test_split_everywhere(wire: bytes, command: c.Command) -> None:
    expected = expected_events(wire, command)
    for i in range(1, len(wire)):
        assert feed_chunks([wire[:i], wire[i:]]) == expected, i


def test_pipelined_all_golden_in_one_chunk() -> None:
    events = [e for e in feed_chunks([b"".join(w for w, _ in GOLDEN)]) if not isinstance(e, NeedLiteral)]
    assert events == [cmd for _, cmd in GOLDEN]


def test_command_names_and_uid_variants() -> None:
    assert c.Fetch("a", True).command_name == "UID FETCH"
    assert c.Fetch("a").command_name == "FETCH"
    assert c.Expunge("a", True, S("1")).command_name == "UID EXPUNGE"
    assert c.Examine("a", "x").readonly and not c.Select("a", "x").readonly
    assert str(t.Section((1, 2), t.SectionText.HEADER_FIELDS, ("FROM", "TO"))) == "1.2.HEADER.FIELDS (FROM TO)"
    body = t.FetchBody(t.Section((), t.SectionText.TEXT), (10, 20), peek=True)
    assert body.response_name() == "BODY[TEXT]<10>" and not body.sets_seen
