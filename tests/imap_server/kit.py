"""Test kit for the IMAP server tests: sample messages, a handle on the live gateway."""

from __future__ import annotations

import imaplib
import secrets
import shutil
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.accounts.pros import add_pro, hosted_domain, pro_by_address
from gateway.mailstore import summaries
from gateway.mailstore.messages import insert_sealed
from gateway.mailstore.sealed import seal_copy
from gateway.store.changes import announce
from gateway.testing.live import LiveGateway
from gateway.testing.world import HOSTED, World
from tests.conftest import require

PASSWORD = "imap test password 42"

# muttrc lines for mutt run without a person (under ``script``, driven by ``push``): Maildir
# targets, no question asked, no cache; the caller adds who, where and what.
MUTT_UNATTENDED = """set mbox_type = Maildir
set confirmcreate = no
set confirmappend = no
set move = no
set mark_old = no
set quit = yes
set wait_key = no
set imap_passive = no
set header_cache = ""
set message_cachedir = ""
"""


def program(name: str) -> str:
    """The path of a Debian program the tests need (missing: skipped, or failed in CI)."""
    path = shutil.which(name)
    require(None if path else f"{name} not installed (scripts/system-deps)", name)
    assert path is not None
    return path

PLAIN = (
    b"From: Dr Martin <dr.martin@clinic.test>\r\nTo: patient@patients.gateway.test\r\n"
    b"Subject: Compte rendu\r\nDate: Mon, 02 Mar 2026 10:00:00 +0100\r\n"
    b"Message-ID: <plain-1@clinic.test>\r\n\r\nBonjour,\r\nvoici le compte rendu.\r\n"
)
MULTIPART = (
    b"From: Laboratoire <labo@hopital.example>\r\nTo: dr.martin@clinic.test\r\nSubject: Resultats\r\n"
    b"Date: Tue, 03 Mar 2026 09:30:00 +0000\r\nMessage-ID: <multi-1@hopital.example>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XYZ"\r\n\r\nPreamble\r\n--XYZ\r\n'
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"R\xc3\xa9sultats en pi\xc3\xa8ce jointe.\r\n--XYZ\r\n"
    b'Content-Type: application/pdf; name="resultats.pdf"\r\n'
    b'Content-Disposition: attachment; filename="resultats.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    b"JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKdHJhaWxlcgo8PC9Sb290IDEgMCBSPj4K\r\n"
    b"JSVFT0YK\r\n--XYZ--\r\n"
)
NON_ASCII = (
    b"From: =?utf-8?q?Fran=C3=A7oise_H=C3=A9bert?= <f.hebert@hopital.example>\r\n"
    b"To: dr.martin@clinic.test\r\nSubject: =?utf-8?b?UsOpc3VsdGF0cyBkJ2FuYWx5c2Ugw6AgdsOpcmlmaWVy?=\r\n"
    b"Date: Wed, 04 Mar 2026 08:15:00 +0100\r\nMessage-ID: <accents-1@hopital.example>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Ch=C3=A8re coll=C3=A8gue,\r\nles r=C3=A9sultats sont normaux.\r\n"
)
MESSAGES = (PLAIN, MULTIPART, NON_ASCII)


@dataclass
class ImapEnv:
    world: World
    live: LiveGateway

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def imap_port(self) -> int:
        return self.live.port("imap")

    @property
    def imaps_port(self) -> int:
        return self.live.port("imaps")

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.live.ca_file)

    def new_account(self) -> str:
        address = f"pro{secrets.token_hex(4)}@{HOSTED}"
        svc = self.live.services
        with svc.db.write() as session:
            domain = hosted_domain(session, HOSTED)
            assert domain is not None
            add_pro(session, svc.keys, address, domain, password=PASSWORD)
        return address

    def deliver(self, address: str, raw: bytes, folder: str = "INBOX") -> int:
        """Store ``raw`` as given (no trace headers) through the delivery pipeline's own steps:
        the summary from the message's one parse, :func:`seal_copy`, :func:`insert_sealed` and the
        change announced in the transaction; then wake IDLE sessions."""
        svc = self.live.services
        encoded = summaries.encode(summaries.compute(raw))
        with svc.db.read() as session:
            account = pro_by_address(session, address)
            assert account is not None
            mailbox_id = account.mailbox_id
            copy = seal_copy(svc.keys.for_mailbox(session, mailbox_id), raw, encoded)
        with svc.db.write() as session:
            stored = insert_sealed(session, mailbox_id, folder, copy, internal_date=datetime.now(UTC))
            announce(session, mailbox_id)
        svc.hub.notify(mailbox_id)
        return stored.uid

    def imaps(self, address: str | None = None) -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL(self.host, self.imaps_port, ssl_context=self.client_context(), timeout=15)
        if address:
            client.login(address, PASSWORD)
        return client

    def starttls(self, address: str | None = None) -> imaplib.IMAP4:
        client = imaplib.IMAP4(self.host, self.imap_port, timeout=15)
        client.starttls(ssl_context=self.client_context())
        if address:
            client.login(address, PASSWORD)
        return client

    def raw_socket(self) -> socket.socket:
        return socket.create_connection((self.host, self.imap_port), timeout=10)


class Wire:
    """A scripted IMAP client on a raw socket: send lines, read whole responses (literals
    included) up to the tagged one. Every read has a timeout."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket) -> None:
        self.sock = sock
        self.buf = b""
        self._n = 0
        self.greeting = self.response()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def response(self) -> bytes:
        """One response: a line, plus any literal it announces and the rest of the line."""
        out = self._line()
        while out.endswith(b"}\r\n") and b"{" in out:
            size = int(out[out.rindex(b"{") + 1 : -3].rstrip(b"+"))
            while len(self.buf) < size:
                self._fill()
            out += self.buf[:size]
            self.buf = self.buf[size:]
            out += self._line()
        return out

    def until(self, tag: str) -> list[bytes]:
        lines: list[bytes] = []
        while True:
            line = self.response()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def next_tag(self) -> str:
        self._n += 1
        return f"t{self._n}"

    def cmd(self, text: str | bytes) -> list[bytes]:
        """Send ``tag text`` and return every response up to the tagged one (included)."""
        tag = self.next_tag()
        data = text.encode() if isinstance(text, str) else text
        self.send(tag.encode() + b" " + data + b"\r\n")
        return self.until(tag)

    def ok(self, text: str | bytes) -> list[bytes]:
        lines = self.cmd(text)
        assert lines[-1].split(b" ", 2)[1] == b"OK", lines
        return lines

    def close(self) -> None:
        self.sock.close()


def tagged(lines: list[bytes]) -> bytes:
    return lines[-1].split(b" ", 1)[1]


def wire_tls(env: ImapEnv, address: str | None = None) -> Wire:
    raw = socket.create_connection((env.host, env.imaps_port), timeout=10)
    wire = Wire(env.client_context().wrap_socket(raw, server_hostname="localhost"))
    if address:
        wire.ok(f'LOGIN "{address}" "{PASSWORD}"')
    return wire


def wire_plain(env: ImapEnv) -> Wire:
    return Wire(env.raw_socket())
