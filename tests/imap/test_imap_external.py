"""AUTHENTICATE EXTERNAL (RFC 4422 appendix A) in the IMAP core (issue 19), over
:mod:`imap.testing`: offered only when configured, inside TLS, with a verified client
certificate; the message is the authzid (``=``: empty, the mailbox the certificate is bound
to); a certificate bound to another mailbox or to none ``NO [AUTHENTICATIONFAILED]``; one client
fed byte by byte. The live gateway with a test CA: tests/gateway/test_cert_login.py."""

from __future__ import annotations

import base64

from imap.session import SessionConfig
from imap.testing import MemoryBackend, Transcript

EXTERNAL = SessionConfig(idle_poll=0.05, external=True)
APP = b"\x30\x82app-der"  # stands for a verified client certificate's DER form
TWO = b"\x30\x82two-der"
CAPS = "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID AUTH=PLAIN"


def backend() -> MemoryBackend:
    memory = MemoryBackend({"lab-app@pro.test": "pw", "a@pro.test": "pw2", "b@pro.test": "pw3"})
    memory.certificates[APP] = ("lab-app@pro.test",)
    memory.certificates[TWO] = ("a@pro.test", "b@pro.test")
    return memory


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_offered_only_with_a_certificate_inside_tls_when_configured() -> None:
    await Transcript(backend(), config=EXTERNAL, peer_certificate=APP).run(f"""
        S: * OK [CAPABILITY {CAPS} AUTH=EXTERNAL] ...
    """)
    for transcript in (Transcript(backend(), config=EXTERNAL),  # no certificate
                       Transcript(backend(), peer_certificate=APP)):  # not configured
        await transcript.run(f"""
            S: * OK [CAPABILITY {CAPS}] ...
            C: a AUTHENTICATE EXTERNAL =
            S: a NO Unsupported authentication mechanism
        """)
    plain = SessionConfig(idle_poll=0.05, login_requires_tls=False, external=True)
    await Transcript(backend(), config=plain, tls=False, peer_certificate=APP).run("""
        S: * OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID STARTTLS AUTH=PLAIN] ...
        C: a AUTHENTICATE EXTERNAL =
        S: a NO Unsupported authentication mechanism
    """)


async def test_empty_authzid_opens_the_bound_mailbox() -> None:
    t = Transcript(backend(), config=EXTERNAL, peer_certificate=APP)
    await t.run("""
        S: * OK ...
        C: a AUTHENTICATE EXTERNAL =
        S: a OK [CAPABILITY ...] Logged in
    """)
    assert t.session.mailboxes is not None and t.session.mailboxes.username == "lab-app@pro.test"


async def test_named_authzid_after_the_empty_challenge_and_refusals() -> None:
    t = Transcript(backend(), config=EXTERNAL, peer_certificate=TWO)
    await t.run(f"""
        S: * OK ...
        C: a AUTHENTICATE EXTERNAL =
        S: a NO [AUTHENTICATIONFAILED] ...
        C: b AUTHENTICATE EXTERNAL {b64("lab-app@pro.test")}
        S: b NO [AUTHENTICATIONFAILED] ...
        C: c AUTHENTICATE EXTERNAL
        S: +...
        C: *
        S: c BAD ...
        C: d AUTHENTICATE EXTERNAL
        S: +...
        C: {b64("b@pro.test")}
        S: d OK [CAPABILITY ...] Logged in
    """)
    assert t.session.mailboxes is not None and t.session.mailboxes.username == "b@pro.test"


async def test_malformed_authzid_is_bad() -> None:
    bad = base64.b64encode(b"\xff\xfe").decode()
    await Transcript(backend(), config=EXTERNAL, peer_certificate=APP).run(f"""
        S: * OK ...
        C: a AUTHENTICATE EXTERNAL {bad}
        S: a BAD Invalid EXTERNAL response
    """)


async def test_unbound_certificate_refused() -> None:
    await Transcript(backend(), config=EXTERNAL, peer_certificate=b"\x30\x82unbound").run("""
        S: * OK ...
        C: a AUTHENTICATE EXTERNAL =
        S: a NO [AUTHENTICATIONFAILED] ...
    """)


async def test_fed_byte_by_byte() -> None:
    t = Transcript(backend(), config=EXTERNAL, peer_certificate=APP)
    await t.greet()
    got = b""
    for octet in f"a AUTHENTICATE EXTERNAL {b64('a@pro.test')}\r\nb AUTHENTICATE EXTERNAL\r\n\r\n".encode():
        got += await t.feed(bytes([octet]))
    assert got.startswith(b"a NO [AUTHENTICATIONFAILED] ")
    assert b"\r\n+ \r\nb OK [CAPABILITY " in got and got.endswith(b"Logged in\r\n")
    assert t.session.mailboxes is not None and t.session.mailboxes.username == "lab-app@pro.test"
