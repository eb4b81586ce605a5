"""Test kit for the IMAP server tests: sample messages, a handle on the live gateway."""

from __future__ import annotations

import imaplib
import secrets
import socket
import ssl
from dataclasses import dataclass

from gateway.store.accounts import add_pro, hosted_domain, pro_by_address
from gateway.store.messages import append_message
from gateway.testing.live import LiveGateway
from gateway.testing.world import HOSTED, World

PASSWORD = "imap test password 42"

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
        """Store a message as the SMTP pipeline does, then wake IDLE sessions."""
        svc = self.live.services
        with svc.db.write() as session:
            account = pro_by_address(session, address)
            assert account is not None
            stored = append_message(session, svc.keys, account.mailbox_id, folder, raw)
            mailbox_id = account.mailbox_id
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
