"""COMPRESS=DEFLATE (RFC 4978): the sans-IO codec, and a real client over loopback (a socket
client of its own with :mod:`zlib`: imaplib cannot deflate) against :class:`imap.server.ImapServer`,
its compressed commands written one octet at a time."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator

import pytest

from imap.compress import CompressionError, Deflate
from imap.server import ImapServer, ServerConfig
from imap.session import SessionConfig
from imap.testing import MemoryBackend

MESSAGE = (b"From: dr.martin@clinic.test\r\nTo: alice@patients.test\r\nSubject: Compte rendu\r\n\r\n"
           + b"Bonjour, voici le compte rendu.\r\n" * 400)


def test_codec_round_trip_in_bounded_pieces() -> None:
    server, client_out, client_in = Deflate(), zlib.compressobj(6, zlib.DEFLATED, -15), zlib.decompressobj(-15)
    wire = client_out.compress(MESSAGE) + client_out.flush(zlib.Z_SYNC_FLUSH)
    assert len(wire) < len(MESSAGE) // 10
    pieces = list(server.decompress(wire, 1000))
    assert b"".join(pieces) == MESSAGE and max(map(len, pieces)) <= 1000
    # Fed octet by octet, the same text comes out.
    fed = Deflate()
    assert b"".join(p for octet in wire for p in fed.decompress(bytes([octet]), 64)) == MESSAGE
    # Each write is sync-flushed: the peer reads it whole without waiting for more.
    sent = server.compress(b"* OK first\r\n")
    assert client_in.decompress(sent) == b"* OK first\r\n"
    assert client_in.decompress(server.compress(b"a OK second\r\n")) == b"a OK second\r\n"


def test_codec_refuses_corrupt_or_ended_streams() -> None:
    with pytest.raises(CompressionError):
        list(Deflate().decompress(b"\xff\xff\xff\xff garbage", 64))
    ended = zlib.compressobj(6, zlib.DEFLATED, -15)
    final = ended.compress(b"a NOOP\r\n") + ended.flush(zlib.Z_FINISH)
    with pytest.raises(CompressionError):
        list(Deflate().decompress(final, 64))


class Client:
    """A minimal IMAP client that can switch to DEFLATE (RFC 4978)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.deflate: zlib._Compress | None = None
        self.inflate: zlib._Decompress | None = None
        self.buf = b""

    async def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            if not data:
                raise ConnectionError("closed")
            self.buf += self.inflate.decompress(data) if self.inflate is not None else data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    async def until(self, tag: bytes) -> list[bytes]:
        lines = []
        while True:
            line = await self.line()
            if line.endswith(b"}\r\n"):  # a literal follows: take it with the rest of the response
                size = int(line[line.rindex(b"{") + 1 : -3])
                while len(self.buf) < size:
                    data = await asyncio.wait_for(self.reader.read(65536), 5)
                    self.buf += self.inflate.decompress(data) if self.inflate is not None else data
                line += self.buf[:size]
                self.buf = self.buf[size:]
                line += await self.line()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    async def send(self, data: bytes, *, octet_by_octet: bool = False) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        if not octet_by_octet:
            self.writer.write(data)
            await self.writer.drain()
            return
        for octet in data:
            self.writer.write(bytes([octet]))
            await self.writer.drain()
            await asyncio.sleep(0.001)

    def start_deflate(self) -> None:
        """From here both ways are deflated; octets already read behind the OK are too."""
        self.deflate, self.inflate = zlib.compressobj(6, zlib.DEFLATED, -15), zlib.decompressobj(-15)
        self.buf = self.inflate.decompress(self.buf)


@pytest.fixture
async def server() -> AsyncIterator[ImapServer]:
    backend = MemoryBackend()
    backend.users["alice"].deliver(MESSAGE)
    config = ServerConfig(session=SessionConfig(login_requires_tls=False, starttls_available=False))
    imap = ImapServer(backend, "127.0.0.1", 0, config=config)
    await imap.start()
    yield imap
    await imap.close()


async def _logged_in(server: ImapServer) -> Client:
    client = Client(*await asyncio.open_connection("127.0.0.1", server.port))
    assert (await client.line()).startswith(b"* OK")
    await client.send(b"a LOGIN alice pw\r\n")
    assert (await client.until(b"a"))[-1].startswith(b"a OK")
    return client


async def test_deflate_both_ways_over_loopback(server: ImapServer) -> None:
    client = await _logged_in(server)
    await client.send(b"b COMPRESS DEFLATE\r\n")
    assert await client.until(b"b") == [b"b OK DEFLATE active\r\n"]  # the last plain octets
    client.start_deflate()
    await client.send(b"c SELECT INBOX\r\n", octet_by_octet=True)
    lines = await client.until(b"c")
    assert b"* 1 EXISTS\r\n" in lines and lines[-1] == b"c OK [READ-WRITE] SELECT completed\r\n"
    await client.send(b"d FETCH 1 (BODY.PEEK[] PREVIEW EMAILID)\r\n", octet_by_octet=True)
    lines = await client.until(b"d")
    assert MESSAGE in lines[0] and b'PREVIEW "Bonjour, voici le compte rendu.' in lines[0]
    assert lines[0].endswith(b" EMAILID (M1))\r\n")
    await client.send(b"e COMPRESS DEFLATE\r\n")
    assert await client.until(b"e") == [b"e NO [COMPRESSIONACTIVE] Compression is already active\r\n"]
    await client.send(b"f LOGOUT\r\n")
    assert await client.until(b"f") == [b"* BYE Logging out\r\n", b"f OK LOGOUT completed\r\n"]
    client.writer.close()


async def test_input_after_compress_is_read_as_compressed(server: ImapServer) -> None:
    """Octets the client sent right behind COMPRESS (read with it) are the start of its deflated
    stream, never plain commands."""
    client = await _logged_in(server)
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    compressed = deflate.compress(b"c NOOP\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH)
    await client.send(b"b COMPRESS DEFLATE\r\n" + compressed)
    assert await client.until(b"b") == [b"b OK DEFLATE active\r\n"]
    client.start_deflate()
    client.deflate = deflate
    assert await client.until(b"c") == [b"c OK NOOP completed\r\n"]
    client.writer.close()


async def test_corrupt_deflate_stream_closes_the_connection(server: ImapServer) -> None:
    client = await _logged_in(server)
    await client.send(b"b COMPRESS DEFLATE\r\n")
    await client.until(b"b")
    client.writer.write(b"\xff\xff\xff\xff not deflate")
    await client.writer.drain()
    assert await asyncio.wait_for(client.reader.read(), 5) == b""
    client.writer.close()
