"""The contract of :mod:`gateway.net.peer_certs`, the one module reaching past :mod:`ssl`'s public API.

A stdlib server context that asks for client certificates ends the handshake when one does not
verify; a tolerant one completes it, and OpenSSL's own verdict is read afterwards as a reason
code. Real handshakes over loopback, with certificates made here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.app.devtls import make_ca, make_leaf
from gateway.net import peer_certs
from gateway.net.peer_certs import (
    EXPIRED,
    INVALID,
    NOT_YET_VALID,
    UNTRUSTED_ISSUER,
    WRONG_NAME,
    client_problem,
    reason_for,
    tolerate_unverified_clients,
)
from gateway.testing.world import self_signed_client_cert

Key = ec.EllipticCurvePrivateKey


def _write(folder: Path, name: str, key: Key, cert: x509.Certificate) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (folder / f"{name}.key").write_bytes(pem)
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return folder / f"{name}.pem", folder / f"{name}.key"


def _server_only(ca_key: Key, ca_cert: x509.Certificate) -> tuple[Key, x509.Certificate]:
    """A certificate of the trusted CA for TLS servers only (no clientAuth purpose)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name.from_rfc4514_string("CN=server-only.example"))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = make_ca("Test CA")
    other_key, other_cert = make_ca("Another CA")
    now = dt.datetime.now(dt.UTC)
    made = {
        "ca": (ca_key, ca_cert),
        "server": make_leaf(ca_key, ca_cert, "mx.gateway.test"),
        "good": make_leaf(ca_key, ca_cert, "mx.hopital.example"),
        "other_ca": make_leaf(other_key, other_cert, "mx.hopital.example"),
        "expired": make_leaf(ca_key, ca_cert, "mx.hopital.example", issued=now - dt.timedelta(days=400), days=30),
        "future": make_leaf(ca_key, ca_cert, "mx.hopital.example", issued=now + dt.timedelta(days=30)),
        "expired_other_ca": make_leaf(other_key, other_cert, "mx.hopital.example",
                                      issued=now - dt.timedelta(days=400), days=30),
        "server_only": _server_only(ca_key, ca_cert),
    }
    files = {name: _write(folder, name, key, cert) for name, (key, cert) in made.items()}
    cert, key, _ = self_signed_client_cert(folder / "self", "mx.hopital.example", "Hopital Example Operator")
    files["self_signed"] = (cert, key)
    return files


def server_context(pki: dict[str, tuple[Path, Path]]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*pki["server"])
    ctx.load_verify_locations(cafile=str(pki["ca"][0]))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def handshake(pki: dict[str, tuple[Path, Path]], server: ssl.SSLContext, client_cert: str | None,
              look: Callable[[ssl.SSLObject], object] = client_problem) -> tuple[bool, object]:
    """One TLS connection over loopback: (did the server complete it, what ``look`` saw there)."""
    client = ssl.create_default_context(cafile=str(pki["ca"][0]))
    client.check_hostname = False
    if client_cert is not None:
        client.load_cert_chain(*pki[client_cert])
    seen: list[object] = []

    async def main() -> bytes:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(look(writer.get_extra_info("ssl_object")))
            writer.write(b"hello")
            await writer.drain()
            writer.close()

        srv = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server)
        port = srv.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
            got = await reader.read(5)
            writer.close()
            return got
        finally:
            srv.close()
            await srv.wait_closed()

    try:
        got = asyncio.run(main())
    except (ssl.SSLError, ConnectionError):
        got = b""
    return got == b"hello", seen[0] if seen else None


def test_a_stdlib_context_ends_the_handshake_on_a_certificate_that_does_not_verify(
        pki: dict[str, tuple[Path, Path]]) -> None:
    """Why the module exists: CERT_OPTIONAL lets a client present no certificate, not a bad one."""
    ctx = server_context(pki)
    assert handshake(pki, ctx, "good", lambda o: None)[0]
    assert not handshake(pki, ctx, "self_signed", lambda o: None)[0]


@pytest.mark.parametrize(("client", "problem"), [
    (None, None), ("good", None), ("self_signed", UNTRUSTED_ISSUER), ("other_ca", UNTRUSTED_ISSUER),
    ("expired", EXPIRED), ("future", NOT_YET_VALID), ("expired_other_ca", UNTRUSTED_ISSUER),
    ("server_only", INVALID),
])
def test_a_tolerant_context_completes_the_handshake_and_names_the_problem(
        pki: dict[str, tuple[Path, Path]], client: str | None, problem: str | None) -> None:
    ctx = server_context(pki)
    assert tolerate_unverified_clients(ctx)
    assert handshake(pki, ctx, client) == (True, problem)


def test_the_tolerance_survives_setting_verify_mode_again(pki: dict[str, tuple[Path, Path]]) -> None:
    ctx = server_context(pki)
    assert tolerate_unverified_clients(ctx)
    ctx.verify_mode = ssl.CERT_OPTIONAL  # CPython reads the callback back and keeps it
    assert handshake(pki, ctx, "self_signed") == (True, UNTRUSTED_ISSUER)


def test_a_verified_certificate_is_the_one_the_client_presented(pki: dict[str, tuple[Path, Path]]) -> None:
    ctx = server_context(pki)
    assert tolerate_unverified_clients(ctx)
    good = x509.load_pem_x509_certificate(pki["good"][0].read_bytes()).public_bytes(serialization.Encoding.DER)
    assert handshake(pki, ctx, "good", lambda o: o.getpeercert(binary_form=True)) == (True, good)


def test_nothing_is_tolerated_without_asking_for_certificates(pki: dict[str, tuple[Path, Path]]) -> None:
    ctx = server_context(pki)
    ctx.verify_mode = ssl.CERT_NONE
    assert not tolerate_unverified_clients(ctx)


def test_the_errors_noted_during_handshakes_are_not_kept(pki: dict[str, tuple[Path, Path]]) -> None:
    ctx = server_context(pki)
    assert tolerate_unverified_clients(ctx)
    for client in ("self_signed", "expired", "other_ca"):
        assert handshake(pki, ctx, client)[0]
    assert peer_certs._openssl is not None and not peer_certs._openssl.noted


@pytest.mark.parametrize(("codes", "reason"), [
    ((18,), UNTRUSTED_ISSUER), ((20, 10), UNTRUSTED_ISSUER), ((10,), EXPIRED), ((9,), NOT_YET_VALID),
    ((62,), WRONG_NAME), ((26,), INVALID), ((7, 10), EXPIRED), ((), INVALID),
])
def test_reasons_for_openssl_codes(codes: tuple[int, ...], reason: str) -> None:
    assert reason_for(codes) == reason
