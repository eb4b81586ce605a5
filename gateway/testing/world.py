"""A populated gateway home for end-to-end tests: domains, accounts, patients, a trusted peer.

Everything is synthetic: ``.test``/``.example`` domains, INS numbers generated with a
valid key (``routing.ins.synthetic_ins``).
"""

from __future__ import annotations

import random
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509 import (
    Certificate,
    CertificateBuilder,
    DNSName,
    ExtendedKeyUsage,
    Name,
    NameAttribute,
    SubjectAlternativeName,
    load_pem_x509_certificate,
    random_serial_number,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from crypto.dkim import generate_dkim_key, sign_message
from gateway.accounts.patients import by_ins, provision
from gateway.accounts.pros import add_hosted_domain, add_pro, add_trusted_domain
from gateway.app.context import Location, open_services
from gateway.app.devtls import make_leaf
from routing.ins import synthetic_ins

PASSWORD = "correct horse battery staple"  # noqa: S105 - synthetic test account
HOSTED = "clinic.test"
TRUSTED = "hopital.example"
PEER_DN_ORG = "Hopital Example Operator"


@dataclass
class Peer:
    """A trusted operator: its client certificate (signed by the gateway's CA) and DKIM key."""

    domain: str
    cert_file: Path
    key_file: Path
    dn: str
    dkim_selector: str
    dkim_private: bytes

    def client_context(self, ca_file: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=ca_file)
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx

    def sign(self, message: bytes) -> bytes:
        return sign_message(message, domain=self.domain, selector=self.dkim_selector,
                            private_key_pem=self.dkim_private) + message


@dataclass
class World:
    home: Path
    patient_domain: str
    pro: str  # hosted professional with a password
    pharmacy: str  # hosted, accepts patient-initiated mail
    colleague: str  # another hosted professional
    patients: dict[str, str]  # state -> INS
    peer: Peer

    def patient(self, state: str = "open") -> str:
        return f"{self.patients[state]}@{self.patient_domain}"


def issue_client_cert(home: Path, folder: Path, hostname: str, organization: str, *,
                      issued: datetime | None = None, days: int = 825) -> tuple[Path, Path, str]:
    """A certificate of the home's test CA (``issued`` in the past and few ``days``: an expired one)."""
    ca_key = load_pem_private_key((home / "tls" / "ca.key").read_bytes(), password=None)
    ca_cert = load_pem_x509_certificate((home / "tls" / "ca.pem").read_bytes())
    key, cert = make_leaf(ca_key, ca_cert, hostname, organization=organization,  # type: ignore[arg-type]
                          issued=issued, days=days)
    return _write_cert(folder, hostname, key, cert)


def self_signed_client_cert(folder: Path, hostname: str, organization: str) -> tuple[Path, Path, str]:
    """A certificate signed by its own key, with the subject a trusted operator's could have."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = Name([NameAttribute(NameOID.ORGANIZATION_NAME, organization), NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.now(UTC)
    cert = (CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=365))
            .add_extension(SubjectAlternativeName([DNSName(hostname)]), critical=False)
            .add_extension(ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return _write_cert(folder, hostname, key, cert)


def _write_cert(folder: Path, hostname: str, key: ec.EllipticCurvePrivateKey,
                cert: Certificate) -> tuple[Path, Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / f"{hostname}.pem", folder / f"{hostname}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file, cert.subject.rfc4514_string()


def populate(home: Path, *, seed: int = 1, peer_domain: str = TRUSTED) -> World:
    """Add the standard cast to a home made by ``make_home``."""
    rng = random.Random(seed)
    services = open_services(Location(home / "gateway.toml", home, True))
    patient_domain = services.settings.domains.patient_domain
    cert, key, dn = issue_client_cert(home, home / "peer", f"mx.{peer_domain}", PEER_DN_ORG)
    dkim_private, dkim_public = generate_dkim_key(2048)
    patients = {state: synthetic_ins(rng) for state in ("open", "provisioned", "opposed", "closed", "unknown")}
    now = datetime.now(UTC)
    try:
        with services.db.write() as session:
            domain = add_hosted_domain(session, HOSTED)
            add_pro(session, services.keys, f"dr.martin@{HOSTED}", domain, name="Dr Martin", password=PASSWORD)
            add_pro(session, services.keys, f"pharmacie@{HOSTED}", domain, password=PASSWORD,
                    accepts_patient_initiated=True)
            add_pro(session, services.keys, f"dr.durand@{HOSTED}", domain, password=PASSWORD)
            add_trusted_domain(session, peer_domain, description="Hopital example", operator_dn=dn,
                               dkim_policy="pinned", dkim_selector="peer1", dkim_public_key=dkim_public.decode(),
                               tls_required=True, status="active", origin="manual")
            for state, ins in patients.items():
                if state == "unknown":
                    continue
                done = provision(session, services.keys, ins, email=f"p.{state}@perso.example", now=now,
                                 opposition_window=timedelta(days=42), code_validity=timedelta(days=42),
                                 open_now=state == "open")
                if state in ("opposed", "closed"):
                    done.patient.state = state
        with services.db.read() as session:
            assert by_ins(session, services.keys, patients["open"]) is not None
    finally:
        services.close()
    return World(home, patient_domain, f"dr.martin@{HOSTED}", f"pharmacie@{HOSTED}", f"dr.durand@{HOSTED}",
                 patients, Peer(peer_domain, cert, key, dn, "peer1", dkim_private))
