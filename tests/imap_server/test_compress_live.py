"""COMPRESS=DEFLATE (RFC 4978) on the live gateway, inside TLS (implicit TLS, and STARTTLS on
the plain port): the deflated stream runs within the TLS records, both directions."""

from __future__ import annotations

import socket
import ssl
import zlib

from tests.imap_server.kit import MULTIPART, PASSWORD, ImapEnv


class DeflatingWire:
    """A raw client over an already logged-in (TLS) socket that switches to DEFLATE."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.buf = b""
        self.inflate: zlib._Decompress | None = None
        self.deflate: zlib._Compress | None = None

    def send(self, line: bytes) -> None:
        if self.deflate is not None:
            line = self.deflate.compress(line) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(line)

    def until(self, tag: bytes) -> bytes:
        while not any(line.startswith(tag + b" ") for line in self.buf.split(b"\r\n")):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += self.inflate.decompress(chunk) if self.inflate is not None else chunk
        out, self.buf = self.buf, b""
        return out

    def start(self) -> None:
        self.inflate, self.deflate = zlib.decompressobj(-15), zlib.compressobj(6, zlib.DEFLATED, -15)


def _session(wire: DeflatingWire, address: str) -> None:
    wire.send(f'a LOGIN "{address}" "{PASSWORD}"\r\n'.encode())
    assert b"a OK" in wire.until(b"a")
    wire.send(b"b COMPRESS DEFLATE\r\n")
    assert wire.until(b"b").endswith(b"b OK DEFLATE active\r\n")
    wire.start()
    wire.send(b"c SELECT INBOX\r\n")
    assert b"c OK [READ-WRITE]" in wire.until(b"c")
    wire.send(b"d FETCH 1 (BODY.PEEK[] PREVIEW)\r\n")
    out = wire.until(b"d")
    assert MULTIPART in out and b"PREVIEW {28}\r\nR\xc3\xa9sultats en pi\xc3\xa8ce jointe.)" in out
    wire.send(b"e COMPRESS DEFLATE\r\n")
    assert b"e NO [COMPRESSIONACTIVE]" in wire.until(b"e")
    wire.send(b"f LOGOUT\r\n")
    assert b"f OK" in wire.until(b"f")


def test_compress_inside_implicit_tls(env: ImapEnv, account: str) -> None:
    env.deliver(account, MULTIPART)
    raw = socket.create_connection((env.host, env.imaps_port), timeout=10)
    with env.client_context().wrap_socket(raw, server_hostname="localhost") as sock:
        wire = DeflatingWire(sock)
        wire.until(b"*")
        _session(wire, account)


def test_compress_after_starttls(env: ImapEnv, account: str) -> None:
    env.deliver(account, MULTIPART)
    raw = socket.create_connection((env.host, env.imap_port), timeout=10)
    raw.recv(4096)  # the greeting
    raw.sendall(b"s STARTTLS\r\n")
    assert raw.recv(4096).startswith(b"s OK")
    with env.client_context().wrap_socket(raw, server_hostname="localhost") as sock:
        _session(DeflatingWire(sock), account)
