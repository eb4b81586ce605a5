"""Transcripts: AUTH OAUTHBEARER (RFC 7628) and XOAUTH2 on submission (issue 19): offered in EHLO
when the listener is configured with them, the mailbox named by the authzid, a refused token
answered with the RFC 7628 §3.2.2 error as ``334 <base64>`` then ``535 5.7.8`` whatever the
client answers, malformed responses ``501``, an identity provider down ``454 4.7.0``; fed byte
by byte too. The live gateway against a real provider: tests/gateway/test_token_login.py."""

from __future__ import annotations

import base64

from smtp.session import SessionConfig
from smtp.testing import HOST, TLS, TOKEN_CHALLENGE, UNAVAILABLE_TOKEN, Client, Memory, transcript

TOKENS = SessionConfig(hostname=HOST, listener="submission", mechanisms=("PLAIN", "LOGIN", "OAUTHBEARER", "XOAUTH2"))
GREETED = """
    S: 220 mx.test ESMTP service ready
    C: EHLO client.test
    S: 250-mx.test hello
    S: 250-PIPELINING
    S: 250-SIZE 26214400
    S: 250-8BITMIME
    S: 250-ENHANCEDSTATUSCODES
    S: 250-DSN
    S: 250-SMTPUTF8
    S: 250 AUTH PLAIN LOGIN OAUTHBEARER XOAUTH2
"""
CHALLENGE = base64.b64encode(TOKEN_CHALLENGE).decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def oauthbearer(authzid: str, token: str) -> str:
    return b64(f"n,a={authzid},\x01host=smtp.test\x01port=465\x01auth=Bearer {token}\x01\x01".encode())


def xoauth2(user: str, token: str) -> str:
    return b64(f"user={user}\x01auth=Bearer {token}\x01\x01".encode())


def memory() -> Memory:
    return Memory(tokens={"tok-alice": ("alice@pro.test", "secretariat@pro.test")})


def run(script: str, mem: Memory | None = None) -> Client:
    return transcript(GREETED + script, mem or memory(), TOKENS, tls=TLS)


def test_oauthbearer_opens_the_named_mailbox() -> None:
    client = run(f"""
        C: AUTH OAUTHBEARER {oauthbearer("secretariat@pro.test", "tok-alice")}
        S: 235 2.7.0 authentication successful
    """)
    assert client.session.facts.account == "secretariat@pro.test"
    client.close()


def test_xoauth2_with_an_empty_challenge_first() -> None:
    client = run(f"""
        C: AUTH XOAUTH2
        S: 334
        C: {xoauth2("alice@pro.test", "tok-alice")}
        S: 235 2.7.0 authentication successful
    """)
    assert client.session.facts.account == "alice@pro.test"
    client.close()


def test_refused_token_gets_the_error_challenge_then_535() -> None:
    client = run(f"""
        C: AUTH OAUTHBEARER {oauthbearer("bob@pro.test", "tok-alice")}
        S: 334 {CHALLENGE}
        C: AQ==
        S: 535 5.7.8 authentication credentials invalid
        C: AUTH XOAUTH2 {xoauth2("alice@pro.test", "tok-other")}
        S: 334 {CHALLENGE}
        C: *
        S: 535 5.7.8 authentication credentials invalid
        C: MAIL FROM:<alice@pro.test>
        S: 530 5.7.0 authentication required
    """)
    assert client.session.facts.account is None and client.session.auth_failures == 2
    client.close()


BINDING = b64(b"p=tls-unique,a=alice@pro.test,\x01auth=Bearer x\x01\x01")  # channel binding
ONE_KVSEP = b64(b"n,a=alice@pro.test,\x01auth=Bearer x\x01")
ESCAPED = b64(b"n,a=alice=2Cx@pro.test,\x01auth=Bearer tok-alice\x01\x01")  # "alice,x@pro.test"


def test_malformed_and_unavailable() -> None:
    run(f"""
        C: AUTH OAUTHBEARER {BINDING}
        S: 501 5.5.2 malformed authentication response
        C: AUTH OAUTHBEARER {ONE_KVSEP}
        S: 501 5.5.2 malformed authentication response
        C: AUTH XOAUTH2 {b64(b"auth=Bearer x" + bytes([1, 1]))}
        S: 501 5.5.2 malformed authentication response
        C: AUTH XOAUTH2 {b64(b"user=alice@pro.test" + bytes([1]) + b"auth=Basic eDp5" + bytes([1, 1]))}
        S: 501 5.5.2 malformed authentication response
        C: AUTH XOAUTH2 {xoauth2("alice@pro.test", UNAVAILABLE_TOKEN)}
        S: 454 4.7.0 temporary authentication failure
        C: AUTH OAUTHBEARER {ESCAPED}
        S: 334 {CHALLENGE}
        C: AQ==
        S: 535 5.7.8 authentication credentials invalid
    """)


def test_not_offered_without_the_mechanisms() -> None:
    config = SessionConfig(hostname=HOST, listener="submission")
    transcript(f"""
        S: 220 mx.test ESMTP service ready
        C: EHLO client.test
        S: 250-mx.test hello
        S: 250-PIPELINING
        S: 250-SIZE 26214400
        S: 250-8BITMIME
        S: 250-ENHANCEDSTATUSCODES
        S: 250-DSN
        S: 250-SMTPUTF8
        S: 250 AUTH PLAIN LOGIN
        C: AUTH XOAUTH2 {xoauth2("alice@pro.test", "tok-alice")}
        S: 504 5.5.4 unrecognized authentication type
    """, memory(), config, tls=TLS).close()


def test_fed_byte_by_byte() -> None:
    client = run("")
    data = b""
    script = (f"AUTH OAUTHBEARER {oauthbearer('bob@pro.test', 'tok-alice')}\r\nAQ==\r\n"
              f"AUTH XOAUTH2\r\n{xoauth2('alice@pro.test', 'tok-alice')}\r\n").encode()
    for octet in script:
        data += client._runner.run(client.session.receive_data(bytes([octet]))).data
    assert data == (f"334 {CHALLENGE}\r\n535 5.7.8 authentication credentials invalid\r\n"
                    "334 \r\n235 2.7.0 authentication successful\r\n").encode()
    assert client.session.facts.account == "alice@pro.test"
    client.close()
