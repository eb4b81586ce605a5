"""BINARY (RFC 3516): transfer decoding (RFC 2045 §6.7, §6.8), a literal8 APPEND stored with
its binary part in base64, and FETCH BINARY / BINARY.PEEK / BINARY.SIZE transcripts on
:mod:`imap.testing` (the live one, fed byte by byte, is in tests/imap_server)."""

from __future__ import annotations

import binascii

import pytest

from imap.message import mime, transfer
from imap.state import AUTHENTICATED_EXTENSIONS
from imap.testing import MemoryBackend, Transcript

LOGIN = """
    S: * OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID AUTH=PLAIN] IMAP4rev1 service ready
    C: a LOGIN alice pw
    S: a OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID IDLE ...APPENDLIMIT=26214400] Logged in
"""
MULTI = (
    b'From: a@b.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
    b"--B\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\n bG8g\t\r\nd29ybGQ=\r\n"
    b"--B\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9  \r\nsoft=\r\nbreak =\r\n=00end\r\n"
    b"--B\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n"
    b"--B\r\nContent-Type: text/plain\r\n\r\nplain\r\n--B--\r\n"
)


def test_binary_is_advertised() -> None:
    assert "BINARY" in AUTHENTICATED_EXTENSIONS


@pytest.mark.parametrize(("encoded", "decoded"), [
    (b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar", b"hello\r\nbar\r\nfoo\tbar"),  # rules 3 and 5
    (b"foo\t \t= \r\n=62\r\n", b"foo\t \tb\r\n"),  # white space after a soft break's "="
    (b"foo = \t\r\nbar\r\n", b"foo bar\r\n"),  # "=" left last once the white space is gone
    (b"a=3D=3db=ZZ=\r\n", b"a==b=ZZ"),  # an "=" that starts no escape is kept
    (b"lf only\nnext", b"lf only\r\nnext"),
])
def test_quoted_printable(encoded: bytes, decoded: bytes) -> None:
    assert transfer.quoted_printable(encoded) == decoded


def test_decoded_parts_and_unknown_encoding() -> None:
    root = mime.parse(MULTI)
    parts = root.children
    assert transfer.decoded(parts[0]) == b"hello world"  # white space inside base64 ignored
    assert transfer.decoded(parts[1]) == b"caf\xc3\xa9\r\nsoftbreak \x00end"
    assert transfer.decoded(parts[3]) == b"plain"
    assert transfer.decoded(root) == root.body  # a multipart is never encoded (RFC 2045 §6.4)
    with pytest.raises(transfer.UnknownEncoding):
        transfer.decoded(parts[2])


def test_binary_parts_are_stored_in_base64() -> None:
    payload = bytes(range(256)) * 2
    raw = (b'From: a@b.test\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
           b"Content-Type: application/octet-stream\r\ncontent-transfer-encoding:  Binary\r\n\r\n" + payload +
           b"\r\n--B\r\nContent-Type: text/plain\r\n\r\nkept\r\n--B--\r\n")
    stored = transfer.base64_binary_parts(raw)
    assert b"\x00" not in stored and b"content-transfer-encoding: base64\r\n" in stored
    assert max(len(line) for line in stored.split(b"\r\n")) <= 76  # RFC 2045 §6.8
    parts = mime.parse(stored).children
    assert transfer.decoded(parts[0]) == payload
    assert parts[1].body == b"kept"
    single = b"Content-Transfer-Encoding: binary\r\n\r\n\x00-\xe4\n\r\n\n"
    assert transfer.base64_binary_parts(single) == (
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + binascii.b2a_base64(b"\x00-\xe4\n\r\n\n", newline=False) + b"\r\n"
    )
    assert transfer.base64_binary_parts(MULTI) == MULTI  # nothing binary: unchanged


async def test_append_literal8_then_fetch_binary() -> None:
    backend = MemoryBackend(folders=("INBOX",))
    content = b"\x00-\xe4\n\r\n\n"
    message = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + content
    t = Transcript(backend)
    await t.run(LOGIN)
    # RFC 3516 §4.2: literal8 ("~{n}"), NUL included; a synchronizing one is invited as any other.
    assert await t.feed(b"b APPEND INBOX ~{%d}\r\n" % len(message)) == b"+ Ready for literal data\r\n"
    assert await t.feed(message + b"\r\n") == b"b OK [APPENDUID 1 1] APPEND completed\r\n"
    stored = backend.users["alice"].folders["INBOX"].messages[1][1]
    assert b"\x00" not in stored and b"Content-Transfer-Encoding: base64" in stored
    assert (await t.feed(b"c SELECT INBOX\r\n")).endswith(b"c OK [READ-WRITE] SELECT completed\r\n")
    out = await t.feed(b"d FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1] BINARY.PEEK[1]<1.2>)\r\n")
    # a NUL in the content: literal8 (RFC 3516 §4.3); without one, a plain literal
    assert out == (b"* 1 FETCH (BINARY.SIZE[1] 7 BINARY[1] ~{7}\r\n" + content + b" BINARY[1]<1> {2}\r\n-\xe4)\r\n"
                   b"d OK FETCH completed\r\n")
    # a NUL in a plain literal is still refused (RFC 3501 §4.3)
    assert await t.feed(b"e APPEND INBOX {3+}\r\na\x00b\r\n") == b"e NO NUL character in message\r\n"


async def test_fetch_binary_sets_seen_and_refuses_an_unknown_encoding() -> None:
    backend = MemoryBackend(folders=("INBOX",))
    backend.users["alice"].deliver(MULTI)
    t = Transcript(backend)
    await t.run(LOGIN)
    await t.feed(b"b SELECT INBOX\r\n")
    out = await t.feed(b"c FETCH 1 (BINARY[1] BINARY.SIZE[2])\r\n")
    assert out == (b"* 1 FETCH (BINARY[1] {11}\r\nhello world BINARY.SIZE[2] 21 FLAGS (\\Recent \\Seen))\r\n"
                   b"c OK FETCH completed\r\n")
    assert await t.feed(b"d FETCH 1 BINARY.PEEK[3]\r\n") == b"d NO [UNKNOWN-CTE] Unknown content-transfer-encoding\r\n"
    assert await t.feed(b"e FETCH 1 BINARY.SIZE[9]\r\n") == b"* 1 FETCH (BINARY.SIZE[9] 0)\r\ne OK FETCH completed\r\n"
