"""Transcripts: AUTH EXTERNAL (RFC 4422 appendix A) on submission (issue 19): offered in EHLO
only inside TLS with a verified client certificate, the message is the authzid (``=``: empty,
the mailbox the certificate is bound to), a certificate bound elsewhere or to nothing ``535
5.7.8``; fed byte by byte too. The live gateway with a test CA: tests/gateway/test_cert_login.py."""

from __future__ import annotations

import base64
from dataclasses import replace

from smtp.session import SessionConfig
from smtp.testing import HOST, TLS, Client, Memory, transcript

CONFIG = SessionConfig(hostname=HOST, listener="submission", mechanisms=("PLAIN", "LOGIN", "EXTERNAL"))
APP = b"\x30\x82app-der"  # stands for a verified client certificate's DER form
OTHER = b"\x30\x82other-der"
WITH_CERT = replace(TLS, peer_certificate=APP)
EHLO = """
    S: 220 mx.test ESMTP service ready
    C: EHLO client.test
    S: 250-mx.test hello
    S: 250-PIPELINING
    S: 250-SIZE 26214400
    S: 250-8BITMIME
    S: 250-ENHANCEDSTATUSCODES
    S: 250-DSN
    S: 250-SMTPUTF8
"""


def memory() -> Memory:
    return Memory(certificates={APP: ("lab-app@pro.test",), OTHER: ("a@pro.test", "b@pro.test")})


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_offered_with_a_verified_certificate_and_empty_authzid_opens_the_bound_mailbox() -> None:
    client = transcript(EHLO + """
        S: 250 AUTH PLAIN LOGIN EXTERNAL
        C: AUTH EXTERNAL =
        S: 235 2.7.0 authentication successful
    """, memory(), CONFIG, tls=WITH_CERT)
    assert client.session.facts.account == "lab-app@pro.test"
    client.close()


def test_named_authzid_after_an_empty_challenge() -> None:
    client = transcript(EHLO + f"""
        S: 250 AUTH PLAIN LOGIN EXTERNAL
        C: AUTH EXTERNAL
        S: 334
        C: {b64("lab-app@pro.test")}
        S: 235 2.7.0 authentication successful
    """, memory(), CONFIG, tls=WITH_CERT)
    assert client.session.facts.account == "lab-app@pro.test"
    client.close()


def test_other_mailbox_and_unbound_certificate_refused() -> None:
    client = transcript(EHLO + f"""
        S: 250 AUTH PLAIN LOGIN EXTERNAL
        C: AUTH EXTERNAL {b64("someone@pro.test")}
        S: 535 5.7.8 authentication credentials invalid
    """, memory(), CONFIG, tls=WITH_CERT)
    assert client.session.facts.account is None
    client.close()
    unbound = transcript(EHLO + """
        S: 250 AUTH PLAIN LOGIN EXTERNAL
        C: AUTH EXTERNAL =
        S: 535 5.7.8 authentication credentials invalid
    """, memory(), CONFIG, tls=replace(TLS, peer_certificate=b"\x30\x82unbound"))
    unbound.close()


def test_ambiguous_certificate_needs_the_authzid() -> None:
    client = transcript(EHLO + f"""
        S: 250 AUTH PLAIN LOGIN EXTERNAL
        C: AUTH EXTERNAL =
        S: 535 5.7.8 authentication credentials invalid
        C: AUTH EXTERNAL {b64("b@pro.test")}
        S: 235 2.7.0 authentication successful
    """, memory(), CONFIG, tls=replace(TLS, peer_certificate=OTHER))
    assert client.session.facts.account == "b@pro.test"
    client.close()


def test_not_offered_without_a_certificate_or_without_tls() -> None:
    client = transcript(EHLO + """
        S: 250 AUTH PLAIN LOGIN
        C: AUTH EXTERNAL =
        S: 504 5.5.4 unrecognized authentication type
    """, memory(), CONFIG, tls=TLS)
    client.close()


def test_fed_byte_by_byte() -> None:
    client = Client(memory(), CONFIG, tls=WITH_CERT)
    client.greeting()
    data = b""
    script = f"EHLO client.test\r\nAUTH EXTERNAL {b64('x@pro.test')}\r\nAUTH EXTERNAL\r\n\r\n".encode()
    for octet in script:
        data += client._runner.run(client.session.receive_data(bytes([octet]))).data
    assert data.endswith(b"250 AUTH PLAIN LOGIN EXTERNAL\r\n535 5.7.8 authentication credentials invalid\r\n"
                         b"334 \r\n235 2.7.0 authentication successful\r\n")
    assert client.session.facts.account == "lab-app@pro.test"
    client.close()
