"""TLS contexts for every listener and for outbound delivery (SPEC §6).

TLS 1.2 minimum (configurable to 1.3), modern AEAD cipher suites only, no compression,
no renegotiation. Servers ask for a client certificate (optional, verified against
``tls.ca_file``) so MX peers can be matched against their operator DN.
"""

from __future__ import annotations

import ssl

from cryptography import x509

from gateway.settings import Settings

# Mozilla "intermediate" TLS 1.2 suites (AEAD + forward secrecy); TLS 1.3 suites are fixed.
TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
])


def _harden(ctx: ssl.SSLContext, settings: Settings) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if settings.tls.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE


def server_context(settings: Settings, *, request_client_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(ctx, settings)
    ctx.load_cert_chain(settings.path(settings.tls.cert_file), settings.path(settings.tls.key_file))
    if request_client_cert:
        ctx.load_verify_locations(cafile=str(settings.path(settings.tls.ca_file)))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_auth_context(settings: Settings) -> ssl.SSLContext | None:
    """IMAP and submission with ``[tls] client_ca_file``: ask for a client certificate (optional)
    verified against that bundle, for SASL EXTERNAL (RFC 4422 appendix A). None when unset."""
    if settings.tls.client_ca_file is None:
        return None
    ctx = server_context(settings, request_client_cert=False)
    ctx.load_verify_locations(cafile=str(settings.path(settings.tls.client_ca_file)))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_context(settings: Settings) -> ssl.SSLContext:
    """Outbound: verify the peer against ``tls.ca_file`` and present our certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(ctx, settings)
    ctx.load_verify_locations(cafile=str(settings.path(settings.tls.ca_file)))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(settings.path(settings.tls.cert_file), settings.path(settings.tls.key_file))
    return ctx


def peer_dn(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The verified client certificate's subject as an RFC 4514 string, or None."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()
