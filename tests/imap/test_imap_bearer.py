"""AUTHENTICATE OAUTHBEARER (RFC 7628) and XOAUTH2 in the IMAP core (issue 19), over
:mod:`imap.testing`: offered after TLS only and only when configured, with and without SASL-IR,
the RFC 7628 §3.2.2 error challenge then ``NO [AUTHENTICATIONFAILED]``, malformed responses
``BAD``, the session's ``* BYE`` a grace time after the token's expiry (injected clock); one
client fed byte by byte. The parser's own cases: tests/saslwire/test_saslwire_bearer.py; the live
gateway against a real provider: tests/gateway/test_token_login.py."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

from imap.session import SessionConfig
from imap.testing import UNAVAILABLE_TOKEN, MemoryBackend, Transcript

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
TOKENS = SessionConfig(idle_poll=0.05, token_mechanisms=("OAUTHBEARER", "XOAUTH2"), clock=lambda: NOW)
CHALLENGE = base64.b64encode(MemoryBackend.TOKEN_CHALLENGE).decode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def oauthbearer(authzid: str, token: str) -> str:
    return _b64(f"n,a={authzid},\x01host=imap.test\x01port=993\x01auth=Bearer {token}\x01\x01".encode())


def xoauth2(user: str, token: str) -> str:
    return _b64(f"user={user}\x01auth=Bearer {token}\x01\x01".encode())


def backend(expires: datetime | None = NOW + timedelta(minutes=5)) -> MemoryBackend:
    memory = MemoryBackend({"alice@pro.test": "pw", "secretariat@pro.test": "pw2", "bob@pro.test": "pw3"})
    memory.tokens["tok-alice"] = (("alice@pro.test", "secretariat@pro.test"), expires)
    return memory


async def test_offered_only_when_configured_and_after_tls() -> None:
    await Transcript(backend(), config=TOKENS).run("""
        S: * OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID AUTH=PLAIN AUTH=OAUTHBEARER AUTH=XOAUTH2] ...
    """)
    await Transcript(backend()).run("""
        S: * OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID AUTH=PLAIN] ...
        C: a AUTHENTICATE XOAUTH2
        S: a NO Unsupported authentication mechanism
    """)
    plain = SessionConfig(idle_poll=0.05, login_requires_tls=False, token_mechanisms=("OAUTHBEARER", "XOAUTH2"))
    await Transcript(backend(), config=plain, tls=False).run(f"""
        S: * OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID STARTTLS AUTH=PLAIN] ...
        C: a AUTHENTICATE XOAUTH2 {xoauth2("alice@pro.test", "tok-alice")}
        S: a NO Unsupported authentication mechanism
    """)


async def test_oauthbearer_opens_own_and_granted_mailboxes() -> None:
    await Transcript(backend(), config=TOKENS).run(f"""
        S: * OK ...
        C: a AUTHENTICATE OAUTHBEARER {oauthbearer("alice@pro.test", "tok-alice")}
        S: a OK [CAPABILITY ...] Logged in
        C: b STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 0)
        S: b OK ...
    """)
    t = Transcript(backend(), config=TOKENS)
    await t.run(f"""
        S: * OK ...
        C: a AUTHENTICATE XOAUTH2 {xoauth2("secretariat@pro.test", "tok-alice")}
        S: a OK [CAPABILITY ...] Logged in
    """)
    assert t.session.boxes.username == "secretariat@pro.test"
    await t.close()


async def test_refused_with_the_json_challenge_then_no() -> None:
    await Transcript(backend(), config=TOKENS).run(f"""
        S: * OK ...
        C: a AUTHENTICATE OAUTHBEARER {oauthbearer("bob@pro.test", "tok-alice")}
        S: + {CHALLENGE}
        C: AQ==
        S: a NO [AUTHENTICATIONFAILED] Authentication failed
        C: b AUTHENTICATE XOAUTH2 {xoauth2("alice@pro.test", "tok-unknown")}
        S: + {CHALLENGE}
        C: *
        S: b NO [AUTHENTICATIONFAILED] Authentication failed
        C: c SELECT INBOX
        S: c BAD Command not valid in this state
    """)


async def test_provider_unavailable_is_no_unavailable_without_challenge() -> None:
    await Transcript(backend(), config=TOKENS).run(f"""
        S: * OK ...
        C: a AUTHENTICATE XOAUTH2 {xoauth2("alice@pro.test", UNAVAILABLE_TOKEN)}
        S: a NO [UNAVAILABLE] Sign-in temporarily unavailable; try again later
    """)


async def test_without_initial_response_and_malformed() -> None:
    await Transcript(backend(), config=TOKENS).run(f"""
        S: * OK ...
        C: a AUTHENTICATE XOAUTH2
        S: +...
        C: {xoauth2("alice@pro.test", "tok-alice")}
        S: a OK [CAPABILITY ...] Logged in
    """)
    bad = [
        _b64(b"n,a=alice@pro.test,auth=Bearer x\x01\x01"),  # no kvsep after the header
        _b64(b"p=tls-unique,a=alice@pro.test,\x01auth=Bearer x\x01\x01"),  # channel binding
        _b64(b"n,a=alice@pro.test,\x01auth=Basic eDp5\x01\x01"),  # not a bearer token
        _b64(b"n,a=alice@pro.test,\x01auth=Bearer x\x01"),  # one kvsep at the end
    ]
    await Transcript(backend(), config=TOKENS).run(f"""
        S: * OK ...
        C: a AUTHENTICATE OAUTHBEARER {bad[0]}
        S: a BAD Invalid OAUTHBEARER or XOAUTH2 response
        C: b AUTHENTICATE OAUTHBEARER {bad[1]}
        S: b BAD Invalid OAUTHBEARER or XOAUTH2 response
        C: c AUTHENTICATE OAUTHBEARER {bad[2]}
        S: c BAD Invalid OAUTHBEARER or XOAUTH2 response
        C: d AUTHENTICATE OAUTHBEARER
        S: +...
        C: {bad[3]}
        S: d BAD Invalid OAUTHBEARER or XOAUTH2 response
        C: e AUTHENTICATE XOAUTH2 {_b64(b"auth=Bearer x" + bytes([1, 1]))}
        S: e BAD Invalid OAUTHBEARER or XOAUTH2 response
        C: f AUTHENTICATE XOAUTH2
        S: +...
        C: not base64!
        S: f BAD Invalid base64
    """)


async def test_session_ends_a_grace_time_after_the_token_expires() -> None:
    # the injected clock says the token expired 10 s ago; with a 10.2 s grace the BYE comes in 0.2 s
    config = SessionConfig(idle_poll=0.05, token_mechanisms=("XOAUTH2",), token_grace=10.2,
                           clock=lambda: NOW + timedelta(seconds=10))
    hung_up: list[bool] = []
    t = Transcript(backend(expires=NOW), config=config)
    t.session._hangup = lambda: hung_up.append(True)
    await t.run(f"""
        S: * OK ...
        C: a AUTHENTICATE XOAUTH2 {xoauth2("alice@pro.test", "tok-alice")}
        S: a OK [CAPABILITY ...] Logged in
        C: b STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 0)
        S: b OK ...
        C: c IDLE
        S: + idling
    """)
    assert not t.session.closed
    await t.run("""
        S: * BYE Access token expired; sign in again
    """, wait=3.0)
    assert t.session.closed and hung_up == [True]
    # a password session (no expiry) is not cut
    t2 = Transcript(backend(), config=config)
    await t2.run("""
        S: * OK ...
        C: a LOGIN alice@pro.test pw
        S: a OK ...
    """)
    await asyncio.sleep(0.4)
    assert not t2.session.closed and t2.take() == b""
    await t2.close()


async def test_fed_byte_by_byte() -> None:
    t = Transcript(backend(), config=TOKENS)
    await t.greet()
    out = b""
    script = (f"a AUTHENTICATE OAUTHBEARER {oauthbearer('bob@pro.test', 'tok-alice')}\r\nAQ==\r\n"
              f"b AUTHENTICATE XOAUTH2\r\n{xoauth2('alice@pro.test', 'tok-alice')}\r\n").encode()
    for octet in script:
        out += await t.feed(bytes([octet]))
    assert out.startswith(f"+ {CHALLENGE}\r\na NO [AUTHENTICATIONFAILED] Authentication failed\r\n+ \r\nb OK ".encode())
    assert t.session.boxes.username == "alice@pro.test"
    await t.close()
