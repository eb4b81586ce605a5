"""Application mailboxes sign in with a client certificate on a live gateway (issue 19): SASL
EXTERNAL (RFC 4422 appendix A) over Python's imaplib (implicit TLS) and smtplib (submissions).

A test CA made here is the gateway's ``[tls] client_ca_file``; a certificate it issued, bound to an
application mailbox (``gateway pro cert add``), opens that mailbox with an empty authzid or its
address; one bound to another mailbox, an unbound one are refused ``NO [AUTHENTICATIONFAILED]``
/ ``535 5.7.8`` (audited with the fingerprint's prefix only, counted by the login throttle); a
self-signed one does not verify, so EXTERNAL is never offered to it.
"""

from __future__ import annotations

import imaplib
import json
import smtplib
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select

from gateway.accounts.identities import APPLICATION, fingerprint
from gateway.accounts.pros import add_pro, hosted_domain
from gateway.operations import identities
from gateway.operations.common import Actor
from gateway.store.models import AuditEntry, LoginCounter
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.world import HOSTED, World, populate

ACTOR = Actor("tester", "cli", None)
APP, OTHER_APP = f"lab-results@{HOSTED}", f"pharmacy-robot@{HOSTED}"
Key = ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test LPS"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(subject: str, key: Key, issuer: tuple[str, Key] | None = None, *,
                 ca: bool = False) -> x509.Certificate:
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer_name))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    else:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


class Client:
    """A client certificate and its key on disk, ready for an SSLContext."""

    def __init__(self, folder: Path, name: str, cert: x509.Certificate, key: Key) -> None:
        self.pem = cert.public_bytes(serialization.Encoding.PEM)
        self.der = cert.public_bytes(serialization.Encoding.DER)
        self.cert_file, self.key_file = folder / f"{name}.pem", folder / f"{name}.key"
        self.cert_file.write_bytes(self.pem)
        self.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway, dict[str, Client]]]:
    folder = tmp_path_factory.mktemp("cert-login")
    home = make_home(folder / "home")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Test Application CA", ca_key, ca=True)
    (home / "tls" / "app-ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    config = home / "gateway.toml"
    config.write_text(config.read_text().replace('ca_file = "tls/ca.pem"\n',
                                                 'ca_file = "tls/ca.pem"\nclient_ca_file = "tls/app-ca.pem"\n', 1))
    clients: dict[str, Client] = {}
    for name in ("app", "other", "unbound"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(f"{name}.lps.test", key, ("Test Application CA", ca_key))
        clients[name] = Client(folder, name, cert, key)
    key = ec.generate_private_key(ec.SECP256R1())
    clients["self-signed"] = Client(folder, "self-signed", _certificate("app.lps.test", key), key)
    world = populate(home)
    with live_gateway(world.home) as live:
        svc = live.services
        now = datetime.now(UTC)
        with svc.db.write() as session:
            domain = hosted_domain(session, HOSTED)
            assert domain is not None
            for address in (APP, OTHER_APP):
                add_pro(session, svc.keys, address, domain, mailbox_type=APPLICATION)
            identities.add_certificate(session, ACTOR, APP, clients["app"].pem, now=now)
            identities.add_certificate(session, ACTOR, OTHER_APP, clients["other"].pem, now=now)
            # the self-signed certificate is bound too: only the TLS verification keeps it out
            identities.add_certificate(session, ACTOR, APP, clients["self-signed"].pem, now=now)
        yield world, live, clients


def _context(live: LiveGateway, client: Client | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=live.ca_file)
    if client is not None:
        ctx.load_cert_chain(client.cert_file, client.key_file)
    return ctx


def imap(live: LiveGateway, client: Client | None) -> imaplib.IMAP4_SSL:
    return imaplib.IMAP4_SSL("127.0.0.1", live.port("imaps"), ssl_context=_context(live, client), timeout=30)


def imap_external(live: LiveGateway, client: Client, authzid: str = "") -> str:
    conn = imap(live, client)
    try:
        typ, _ = conn.authenticate("EXTERNAL", lambda _: authzid.encode())
    except imaplib.IMAP4.error as exc:
        assert "[AUTHENTICATIONFAILED]" in str(exc)
        return "NO"
    finally:
        conn.shutdown()
    return str(typ)


def smtp_external(live: LiveGateway, client: Client, authzid: str = "") -> int:
    with smtplib.SMTP_SSL("127.0.0.1", live.port("submissions"), context=_context(live, client), timeout=30) as smtp:
        smtp.ehlo("lps.test")
        try:  # no initial response: the authzid answers the empty 334
            code, _ = smtp.auth("EXTERNAL", lambda challenge=None: authzid, initial_response_ok=False)
        except smtplib.SMTPAuthenticationError as exc:
            return exc.smtp_code
        return code


def test_offered_only_with_a_verified_certificate(site: tuple[World, LiveGateway, dict[str, Client]]) -> None:
    _, live, clients = site
    with_cert = imap(live, clients["app"])
    assert "AUTH=EXTERNAL" in with_cert.capabilities
    with_cert.shutdown()
    without = imap(live, None)
    assert "AUTH=EXTERNAL" not in without.capabilities
    without.shutdown()
    with smtplib.SMTP_SSL("127.0.0.1", live.port("submissions"), context=_context(live, clients["app"]),
                          timeout=30) as smtp:
        smtp.ehlo("lps.test")
        assert "EXTERNAL" in smtp.esmtp_features["auth"].split()
    with smtplib.SMTP_SSL("127.0.0.1", live.port("submissions"), context=_context(live, None), timeout=30) as smtp:
        smtp.ehlo("lps.test")
        assert "EXTERNAL" not in smtp.esmtp_features.get("auth", "").split()


def test_bound_certificate_opens_its_mailbox(site: tuple[World, LiveGateway, dict[str, Client]]) -> None:
    _, live, clients = site
    conn = imap(live, clients["app"])
    typ, _ = conn.authenticate("EXTERNAL", lambda _: b"")
    assert typ == "OK"
    assert conn.select("INBOX")[0] == "OK"
    conn.logout()
    assert imap_external(live, clients["app"], APP) == "OK"
    assert smtp_external(live, clients["app"]) == 235
    with smtplib.SMTP_SSL("127.0.0.1", live.port("submissions"), context=_context(live, clients["app"]),
                          timeout=30) as smtp:
        smtp.ehlo("lps.test")
        code, _ = smtp.auth("EXTERNAL", lambda challenge=None: APP)  # SASL-IR form
        assert code == 235


def test_other_mailbox_and_unbound_certificate_refused(site: tuple[World, LiveGateway, dict[str, Client]]) -> None:
    _, live, clients = site
    assert imap_external(live, clients["other"], APP) == "NO"
    assert imap_external(live, clients["app"], OTHER_APP) == "NO"
    assert imap_external(live, clients["unbound"]) == "NO"
    assert smtp_external(live, clients["other"], APP) == 535
    assert smtp_external(live, clients["unbound"]) == 535
    with live.services.db.read() as session:
        entries = [json.loads(e.details) for e in session.execute(
            select(AuditEntry).where(AuditEntry.action.in_(("imap.login", "smtp.login")))).scalars()]
        counters = session.execute(select(LoginCounter)).scalars().all()
    refused = [d for d in entries if d.get("mechanism") == "external" and d["result"] != "auth.ok"]
    assert {d["result"] for d in refused} >= {"certificate.not_allowed", "certificate.unknown"}
    unbound = fingerprint(clients["unbound"].der)
    assert all(len(d["certificate"]) == 16 for d in refused)
    assert [d for d in refused if d["certificate"] == unbound[:16]]
    assert not any(unbound in json.dumps(d) for d in entries)  # never the whole fingerprint
    assert counters  # the refusals counted in the login throttle


def test_self_signed_certificate_never_verified(site: tuple[World, LiveGateway, dict[str, Client]]) -> None:
    _, live, clients = site
    for attempt in (lambda: imap_external(live, clients["self-signed"]),
                    lambda: smtp_external(live, clients["self-signed"])):
        with pytest.raises((ssl.SSLError, OSError, imaplib.IMAP4.abort, smtplib.SMTPException)):
            attempt()  # the handshake ends on the certificate that does not verify


def test_starttls_listeners_ask_for_the_certificate_too(site: tuple[World, LiveGateway, dict[str, Client]]) -> None:
    _, live, clients = site
    conn = imaplib.IMAP4("127.0.0.1", live.port("imap"), timeout=30)
    assert "AUTH=EXTERNAL" not in conn.capabilities
    conn.starttls(ssl_context=_context(live, clients["app"]))
    assert "AUTH=EXTERNAL" in conn.capabilities
    assert conn.authenticate("EXTERNAL", lambda _: b"")[0] == "OK"
    conn.logout()
    with smtplib.SMTP("127.0.0.1", live.port("submission"), timeout=30) as smtp:
        smtp.ehlo("lps.test")
        smtp.starttls(context=_context(live, clients["app"]))
        smtp.ehlo("lps.test")
        assert "EXTERNAL" in smtp.esmtp_features["auth"].split()
        assert smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=False)[0] == 235
