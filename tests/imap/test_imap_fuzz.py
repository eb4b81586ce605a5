"""Fuzzing with a stated invariant (h11 ``fuzz/afl-server.py``):

the receiver parses, or raises an :class:`ImapError`; it never crashes with another
exception; after it asks for data it never holds more than line limit + literal limit.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imap.proto.commands import Command
from imap.proto.errors import ImapError
from imap.proto.receiver import CommandReceiver, LiteralMode, NeedData
from tests.imap.imap_golden_cases import GOLDEN

MAX_LINE = 512
MAX_LITERAL = 256
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def run(data: bytes, chunk: int, mode: LiteralMode) -> None:
    receiver = CommandReceiver(max_line=MAX_LINE, max_literal=MAX_LITERAL, literal_mode=mode)
    for start in range(0, len(data), chunk):
        receiver.feed(data[start : start + chunk])
        while True:
            try:
                event = receiver.next_event()
            except ImapError as exc:
                assert exc.response().endswith(b"\r\n")
                if receiver.closed:
                    return
                continue
            if isinstance(event, NeedData):
                assert receiver.buffered <= MAX_LINE + MAX_LITERAL
                break
            if isinstance(event, Command):
                assert event.tag


@SETTINGS
@given(st.binary(max_size=2048), st.integers(1, 64), st.sampled_from(list(LiteralMode)))
def test_random_bytes(data: bytes, chunk: int, mode: LiteralMode) -> None:
    run(data, chunk, mode)


_TOKENS = st.sampled_from(
    [
        b" ", b"(", b")", b"[", b"]", b"<", b">", b'"', b"\\", b"{", b"}", b"+", b"*", b":", b",",
        b"{5}\r\n", b"{3+}\r\n", b"{0}\r\n", b"{999999+}\r\n", b"\r\n", b"NIL", b"1", b"0", b"&",
        b"-", b".", b"BODY", b"HEADER.FIELDS", b"UID", b"NOT", b"OR", b"\xc3\xa9", b"\x00",
    ]
)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid golden command with random token insertions, deletions and replacements."""
    wire = bytearray(draw(st.sampled_from([w for w, _ in GOLDEN])))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(wire)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        if action == "insert":
            wire[pos:pos] = draw(_TOKENS)
        elif action == "delete":
            del wire[pos : pos + draw(st.integers(1, 5))]
        else:
            wire[pos : pos + 1] = draw(_TOKENS)
    return bytes(wire) + b"\r\nz NOOP\r\n"


@SETTINGS
@given(mutated(), st.integers(1, 64), st.sampled_from(list(LiteralMode)))
def test_mutated_valid_commands(data: bytes, chunk: int, mode: LiteralMode) -> None:
    run(data, chunk, mode)


@SETTINGS
@given(st.lists(st.sampled_from([w for w, _ in GOLDEN]), min_size=1, max_size=5), st.integers(1, 64))
def test_valid_sequences_parse_completely(wires: list[bytes], chunk: int) -> None:
    receiver = CommandReceiver(max_literal=10_000)
    data = b"".join(wires)
    commands = 0
    for start in range(0, len(data), chunk):
        receiver.feed(data[start : start + chunk])
        while not isinstance(event := receiver.next_event(), NeedData):
            commands += isinstance(event, Command)
    assert commands == len(wires)
