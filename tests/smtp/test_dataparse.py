"""The DATA reader: end-of-data only at CRLF.CRLF, smuggling vectors refused, bounded memory.

Golden cases are fed whole, one byte at a time, and split at every position (DESIGN
"parser golden cases"); the fuzz states the invariant "NeedMore/Done/Reply, never a
crash, never unbounded".
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp import replies
from smtp.dataparse import END, NEED_MORE, BareLineEndings, DataReader, Done, NeedMore
from smtp.replies import Reply

LIMIT = 1 << 20
MAX_TAIL = 6  # bytes the reader may keep back between feeds (4) plus the virtual CRLF (2)


MODES: tuple[BareLineEndings, ...] = ("reject", "normalize")


def run(chunks: Iterable[bytes], limit: int = LIMIT, mode: BareLineEndings = "reject",
        ) -> tuple[Done | Reply | None, DataReader]:
    result, reader, _ = run_rest(chunks, limit, mode)
    return result, reader


def run_rest(chunks: Iterable[bytes], limit: int = LIMIT, mode: BareLineEndings = "reject",
             ) -> tuple[Done | Reply | None, DataReader, bytes]:
    """Feed until an answer; also return what the session reads next (trailing + unfed chunks)."""
    reader = DataReader(limit, bare_line_endings=mode)
    result: NeedMore | Done | Reply = NEED_MORE
    pending = list(chunks)
    while pending:
        result = reader.feed(pending.pop(0))
        if not isinstance(result, NeedMore):
            break
    done = None if isinstance(result, NeedMore) else result
    return done, reader, reader.trailing + b"".join(pending)


def splits(data: bytes) -> Iterable[list[bytes]]:
    """Whole, byte by byte, and every two-way split."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]


def results(data: bytes, limit: int = LIMIT, mode: BareLineEndings = "reject",
            ) -> list[tuple[Done | Reply | None, bytes]]:
    out = []
    for chunks in splits(data):
        result, _, rest = run_rest(chunks, limit, mode)
        out.append((result, rest))
    return out


def assert_always(data: bytes, expected: Done | Reply | None, trailing: bytes = b"",
                  modes: Iterable[BareLineEndings] = MODES) -> None:
    """The same answer, whatever the chunking, in each of ``modes`` (both, unless said)."""
    for mode in modes:
        assert_mode(data, expected, trailing, mode)


def assert_mode(data: bytes, expected: Done | Reply | None, trailing: bytes, mode: BareLineEndings) -> None:
    for result, rest in results(data, mode=mode):
        assert result == expected
        if expected is not None:
            assert rest == trailing


# --- plain messages -------------------------------------------------------------------------


def test_simple_message() -> None:
    assert_always(b"Subject: hi\r\n\r\nhello\r\n.\r\n", Done(b"Subject: hi\r\n\r\nhello\r\n"))


def test_empty_message() -> None:
    assert_always(b".\r\n", Done(b""))


def test_message_of_one_empty_line() -> None:
    assert_always(b"\r\n.\r\n", Done(b"\r\n"))


def test_incomplete_needs_more() -> None:
    for chunks in splits(b"hello\r\n.\r"):
        result, reader = run(chunks)
        assert result is None and not reader.finished


def test_trailing_pipelined_commands_are_kept() -> None:
    assert_always(b"hi\r\n.\r\nQUIT\r\n", Done(b"hi\r\n"), trailing=b"QUIT\r\n")


def test_feed_after_finish_is_an_error() -> None:
    reader = DataReader(LIMIT)
    assert reader.feed(b".\r\n") == Done(b"")
    with pytest.raises(RuntimeError):
        reader.feed(b"more")


# --- dot-stuffing (RFC 5321 §4.5.2) ------------------------------------------------------------


def test_dot_unstuffing() -> None:
    assert_always(b"..\r\n..hidden\r\nnot.stuffed\r\n.\r\n", Done(b".\r\n.hidden\r\nnot.stuffed\r\n"))


def test_leading_dot_on_first_line() -> None:
    assert_always(b"..first\r\n.\r\n", Done(b".first\r\n"))


def test_unstuffed_leading_dot_is_removed_as_rfc_5321_says() -> None:
    assert_always(b".x\r\n.\r\n", Done(b"x\r\n"))


def test_stuffed_terminator_lookalike_does_not_end() -> None:
    assert_always(b"a\r\n..\r\nb\r\n.\r\n", Done(b"a\r\n.\r\nb\r\n"))


# --- SMTP smuggling vectors ----------------------------------------------------------------------
# Each would end the data for a lenient server; here the data runs on to the real <CRLF>.<CRLF>
# in both modes, and nothing after the fake end is ever a second message. "reject" refuses the
# whole message; "normalize" (issue 17) refuses it for a bare CR and otherwise stores ONE
# message in which the fake end is a line break and the smuggled commands are content.

SMUGGLED = b"MAIL FROM:<evil@mail.example>\r\nRCPT TO:<victim@clinique.example>\r\nDATA\r\nspoof\r\n"


def smuggle(fake_end: bytes) -> bytes:
    return b"Subject: x\r\n\r\nbody" + fake_end + SMUGGLED + b".\r\n"


def assert_refused_whole(data: bytes) -> None:
    """Refused in both modes: a bare LF or CR in "reject", and a bare CR in "normalize"."""
    assert_mode(data, replies.BARE_LINE_ENDING, b"", "reject")
    assert_mode(data, replies.BARE_CR, b"", "normalize")


def assert_refused_or_one_message(data: bytes, normalized: bytes) -> None:
    """A bare-LF vector: refused in "reject"; in "normalize" one message, ``normalized``."""
    assert_mode(data, replies.BARE_LINE_ENDING, b"", "reject")
    assert_mode(data, Done(normalized), b"", "normalize")
    assert SMUGGLED in normalized  # the smuggled commands stayed inside the one message


def test_smuggling_lf_dot_lf_does_not_end_data() -> None:
    assert_refused_or_one_message(smuggle(b"\n.\n"), b"Subject: x\r\n\r\nbody\r\n\r\n" + SMUGGLED)


def test_smuggling_lf_dot_crlf_does_not_end_data() -> None:
    assert_refused_or_one_message(smuggle(b"\n.\r\n"), b"Subject: x\r\n\r\nbody\r\n\r\n" + SMUGGLED)


def test_smuggling_cr_dot_cr_does_not_end_data() -> None:
    assert_refused_whole(smuggle(b"\r.\r"))


def test_smuggling_cr_dot_lf_does_not_end_data() -> None:
    assert_refused_whole(smuggle(b"\r.\n"))


def test_smuggling_crlf_dot_lf_does_not_end_data() -> None:
    assert_refused_or_one_message(smuggle(b"\r\n.\n"), b"Subject: x\r\n\r\nbody\r\n\r\n" + SMUGGLED)


def test_smuggling_crlf_dot_cr_does_not_end_data() -> None:
    assert_refused_whole(smuggle(b"\r\n.\r"))


def test_smuggling_lf_dot_cr_lf_does_not_end_data() -> None:
    # <LF>.<CR><LF>: the classic Postfix/Sendmail vector
    assert_refused_or_one_message(b"body\n.\r\n" + SMUGGLED + b".\r\n", b"body\r\n\r\n" + SMUGGLED)


def test_smuggling_cr_lf_dot_cr_followed_by_text() -> None:
    assert_refused_whole(b"body\r\n.\rMAIL FROM:<x@mail.example>\r\n.\r\n")


def test_smuggled_bytes_are_not_an_end() -> None:
    # Without the real end, every vector leaves the reader waiting for more.
    for fake in (b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r.\n", b"\r\n.\n", b"\r\n.\r", b"\r\n.\rX"):
        for chunks in splits(b"body" + fake + SMUGGLED):
            for mode in MODES:
                result, _ = run(chunks, mode=mode)
                assert result is None, (fake, mode)


def test_bare_lf_in_body_refused_or_normalized() -> None:
    assert_refused_or_one_message(b"line one\nline two\r\n" + SMUGGLED + b".\r\n",
                                  b"line one\r\nline two\r\n" + SMUGGLED)


def test_bare_cr_in_body_refused() -> None:
    assert_refused_whole(b"line one\rline two\r\n.\r\n")


def test_bare_lf_at_start_refused_or_normalized() -> None:
    assert_mode(b"\n.\r\n.\r\n", replies.BARE_LINE_ENDING, b"", "reject")
    assert_mode(b"\n.\r\n.\r\n", Done(b"\r\n\r\n"), b"", "normalize")


def test_crlf_split_across_chunks_is_not_bare() -> None:
    data = b"a\r\nb\r\n.\r\n"
    for i in range(1, len(data)):
        result, _ = run([data[:i], data[i:]])
        assert result == Done(b"a\r\nb\r\n")


def test_refusal_keeps_session_in_step() -> None:
    result, reader = run([smuggle(b"\n.\n") + b"RSET\r\n"])
    assert result == replies.BARE_LINE_ENDING
    assert reader.trailing == b"RSET\r\n"
    result, reader = run([smuggle(b"\r.\r") + b"RSET\r\n"], mode="normalize")
    assert result == replies.BARE_CR
    assert reader.trailing == b"RSET\r\n"


# --- "normalize" (issue 17 item 7, Postfix's smtpd_forbid_bare_newline = normalize) -------------------


def test_normalize_turns_lf_lines_into_crlf_with_dot_unstuffing() -> None:
    """What smtplib.sendmail(msg.as_bytes()) sends for a message with LF endings: every line
    ends in LF, lines starting with "." are stuffed, then CRLF.CRLF (smtplib adds the CRLF)."""
    wire = b"From: dr@clinic.test\nSubject: x\n\n..dot\n..\nend\n\r\n.\r\n"
    assert_mode(wire, Done(b"From: dr@clinic.test\r\nSubject: x\r\n\r\n.dot\r\n.\r\nend\r\n\r\n"), b"", "normalize")
    assert_mode(wire, replies.BARE_LINE_ENDING, b"", "reject")


def test_normalize_ends_data_only_at_crlf_dot_crlf() -> None:
    # <LF>.<LF> and <LF>.<CR><LF> are lines of content; the data goes on
    for chunks in splits(b"a\n.\nb\n.\r\nc\n"):
        assert run(chunks, mode="normalize")[0] is None
    assert_mode(b"a\n.\nb\r\n.\r\nNOOP\r\n", Done(b"a\r\n\r\nb\r\n"), b"NOOP\r\n", "normalize")


@pytest.mark.parametrize("data", [b"a\rb\r\n.\r\n", b"a\r\r\n.\r\n", b"\ra\r\n.\r\n", b"a\n\rb\r\n.\r\n"])
def test_normalize_refuses_a_bare_cr(data: bytes) -> None:
    assert_mode(data, replies.BARE_CR, b"", "normalize")


def test_normalize_counts_the_normalized_size() -> None:
    assert run([b"abc\n\r\n.\r\n"], limit=7, mode="normalize")[0] == Done(b"abc\r\n\r\n")
    assert run([b"abc\n\r\n.\r\n"], limit=6, mode="normalize")[0] == replies.MESSAGE_TOO_BIG


# --- NUL (issue 15 item 8: "\r\n\x00.\r\n" reached a trusted peer unchanged) -------------------


@pytest.mark.parametrize("data", [b"\x00\r\n.\r\n", b"a\r\n\x00.\r\nb\r\n.\r\n", b"ab\x00cd\r\n.\r\n"])
def test_nul_refuses_the_whole_message(data: bytes) -> None:
    for chunks in splits(data):
        result, reader = run(chunks)
        assert result == replies.NUL_IN_MESSAGE
        assert reader.trailing == b""


def test_nul_refusal_keeps_session_in_step() -> None:
    result, reader = run([b"x\r\n\x00.\r\ny\r\n.\r\nRSET\r\n"])
    assert result == replies.NUL_IN_MESSAGE
    assert reader.trailing == b"RSET\r\n"


# --- size limit ------------------------------------------------------------------------------------


def test_exactly_at_limit_accepted() -> None:
    body = b"x" * 8 + b"\r\n"
    result, _ = run([body + b".\r\n"], limit=len(body))
    assert result == Done(body)


def test_one_over_limit_refused() -> None:
    body = b"x" * 9 + b"\r\n"
    for chunks in splits(body + b".\r\n"):
        result, _ = run(chunks, limit=len(body) - 1)
        assert result == replies.MESSAGE_TOO_BIG


def test_size_counts_unstuffed_bytes() -> None:
    body = b"..x\r\n"  # 4 bytes once unstuffed
    result, _ = run([body + b".\r\n"], limit=4)
    assert result == Done(b".x\r\n")


def test_oversize_keeps_reading_with_bounded_memory() -> None:
    limit = 64 * 1024
    reader = DataReader(limit)
    line = b"y" * 998 + b"\r\n"
    peak = 0
    for _ in range(2000):  # ~2 MB through a 64 KiB limit
        assert reader.feed(line * 4) is NEED_MORE
        peak = max(peak, reader.buffered)
    assert reader.feed(b".\r\nNOOP\r\n") == replies.MESSAGE_TOO_BIG
    assert reader.trailing == b"NOOP\r\n"
    assert peak <= limit + MAX_TAIL
    assert reader.size > limit


def test_oversize_and_bare_lf_reports_smuggling() -> None:
    result, _ = run([b"x" * 100 + b"\n" + b"\r\n.\r\n"], limit=10)
    assert result == replies.BARE_LINE_ENDING


# --- refused by the caller (issue 15 item 6: no room in the memory budget) ----------------------------


def test_refuse_drops_what_was_stored_and_reads_on_to_the_end() -> None:
    reader = DataReader(LIMIT)
    line = b"w" * 998 + b"\r\n"
    assert reader.feed(line * 64) is NEED_MORE
    assert reader.buffered > 60_000
    reader.refuse(replies.INSUFFICIENT_STORAGE)
    assert reader.buffered <= MAX_TAIL
    for _ in range(100):
        assert reader.feed(line * 4) is NEED_MORE
        assert reader.buffered <= MAX_TAIL
    assert reader.feed(b".\r\nRSET\r\n") == replies.INSUFFICIENT_STORAGE
    assert reader.trailing == b"RSET\r\n"


def test_permanent_refusals_win_over_the_callers() -> None:
    for data, expected in ((b"a\nb\r\n.\r\n", replies.BARE_LINE_ENDING), (b"a\x00\r\n.\r\n", replies.NUL_IN_MESSAGE),
                           (b"x" * 100 + b"\r\n.\r\n", replies.MESSAGE_TOO_BIG)):
        reader = DataReader(50)
        reader.refuse(replies.INSUFFICIENT_STORAGE)
        assert reader.feed(data) == expected


# --- work per chunk, not per line (speed figures: bench/, never here) ----------------------------------


class _Counting(DataReader):
    """Counts the segments the reader works on (each is one pass of find/count/replace)."""

    def __init__(self, max_size: int) -> None:
        super().__init__(max_size)
        self.segments = 0

    def _take(self, segment: bytes) -> None:
        self.segments += 1
        super()._take(segment)


@pytest.mark.parametrize("size", [1 << 21, 65536, 8192])
def test_one_mebibyte_message_is_read_in_one_step_per_chunk(size: int) -> None:
    line = b"." + b"z" * 76 + b"\r\n"
    body = line * ((1 << 20) // len(line))  # 13,617 lines, each dot-stuffed on the wire
    wire = b"." + body.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    reader = _Counting(2 << 20)
    feeds = 0
    result: NeedMore | Done | Reply = NEED_MORE
    for i in range(0, len(wire), size):
        feeds += 1
        result = reader.feed(wire[i : i + size])
        assert reader.buffered - reader.stored <= len(END) - 1  # only a possible start of the end mark is kept back
    assert result == Done(body)
    assert reader.segments <= feeds < len(body) // len(line)


# --- fuzz ---------------------------------------------------------------------------------------------

_ALPHABET = st.sampled_from([b"\r", b"\n", b".", b"a", b"\r\n", b"\r\n.", b".\r\n", b"\r\n.\r\n", b"x" * 7])


@given(
    pieces=st.lists(_ALPHABET, max_size=60),
    cuts=st.lists(st.integers(min_value=1, max_value=9), max_size=40),
    limit=st.integers(min_value=0, max_value=64),
    mode=st.sampled_from(MODES),
)
@settings(max_examples=400, deadline=None)
def test_fuzz_invariant(pieces: list[bytes], cuts: list[int], limit: int, mode: BareLineEndings) -> None:
    data = b"".join(pieces)
    reader = DataReader(limit, bare_line_endings=mode)
    pos = 0
    result: NeedMore | Done | Reply = NEED_MORE
    chunk_sizes = cuts or [len(data) or 1]
    i = 0
    while pos < len(data) and isinstance(result, NeedMore):
        size = chunk_sizes[i % len(chunk_sizes)]
        i += 1
        chunk = data[pos : pos + size]
        pos += size
        result = reader.feed(chunk)
        assert isinstance(result, NeedMore | Done | Reply)
        if isinstance(result, NeedMore):
            assert reader.buffered <= limit + MAX_TAIL
    # Same answer as when fed whole (chunking never changes the outcome).
    whole = DataReader(limit, bare_line_endings=mode).feed(data)
    assert result == whole
    if isinstance(result, Done):
        assert len(result.message) <= limit
        # a Done message never contains a bare CR or LF, in either mode
        assert result.message.count(b"\n") == result.message.count(b"\r\n") == result.message.count(b"\r")
        # and it ended at a real <CRLF>.<CRLF> (the CRLF ending DATA being the first CRLF)
        assert (b"\r\n" + data).find(b"\r\n.\r\n") >= 0
