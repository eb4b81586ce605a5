"""The one OAUTHBEARER (RFC 7628 §3.1) and XOAUTH2 response parser, :mod:`saslwire.bearer`, that
SMTP AUTH and IMAP AUTHENTICATE share: golden cases, a table of malformed inputs with the reason
each is refused for, every truncation and every single-byte change of the golden cases, and a
fuzz invariant ("parses, or raises MalformedResponse; never another exception"). The SMTP mechanisms give
the parser's answers (tests/smtp/test_transcript_bearer.py and tests/imap/test_imap_bearer.py
drive the same through each protocol)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saslwire import bearer
from smtp import replies, sasl
from smtp.backend import TokenCredentials

GOOD = [
    ("OAUTHBEARER", b"n,a=dr@pro.test,\x01auth=Bearer abc.def-ghi\x01\x01", "dr@pro.test", "abc.def-ghi"),
    ("OAUTHBEARER", b"y,a=dr=2Cx=3Dy@pro.test,\x01host=a\x01port=1\x01auth=bearer t0k==\x01\x01",
     "dr,x=y@pro.test", "t0k=="),
    ("OAUTHBEARER", b"n,,\x01auth=Bearer tok\x01\x01", None, "tok"),
    ("OAUTHBEARER", b"n,a=,\x01auth=BEARER   a~b+c/d_e\x01\x01", None, "a~b+c/d_e"),
    ("OAUTHBEARER", "n,a=médecin@pro.test,\x01auth=Bearer tok-9Z\x01\x01".encode(), "médecin@pro.test", "tok-9Z"),
    ("XOAUTH2", b"user=dr@pro.test\x01auth=Bearer tok\x01\x01", "dr@pro.test", "tok"),
    ("XOAUTH2", b"auth=Bearer tok\x01user= dr@pro.test \x01\x01", "dr@pro.test", "tok"),
]
# (mechanism, input, reason): each refused for the stated reason.
BAD = [
    ("OAUTHBEARER", b"", "no kvsep"),
    ("OAUTHBEARER", b"n,a=dr@pro.test,auth=Bearer tok\x01\x01", "bad GS2 header"),
    ("OAUTHBEARER", b"p=tls-unique,,\x01auth=Bearer tok\x01\x01", "bad GS2 header"),  # channel binding
    ("OAUTHBEARER", b"n,a=dr\x01auth=Bearer tok\x01\x01", "bad GS2 header"),
    ("OAUTHBEARER", b"n,a=dr,x,\x01auth=Bearer tok\x01\x01", "bad GS2 header"),
    ("OAUTHBEARER", b"N,,\x01auth=Bearer tok\x01\x01", "bad GS2 header"),
    ("OAUTHBEARER", b"\xff,,\x01auth=Bearer tok\x01\x01", "header not UTF-8"),
    ("OAUTHBEARER", b"n,b=dr,\x01auth=Bearer tok\x01\x01", "bad GS2 authzid"),
    ("OAUTHBEARER", b"n,a=dr=2Dx,\x01auth=Bearer tok\x01\x01", "bad saslname"),
    ("OAUTHBEARER", b"n,a=dr=2cx,\x01auth=Bearer tok\x01\x01", "bad saslname"),  # escapes are upper case
    ("OAUTHBEARER", b"n,a=dr=,\x01auth=Bearer tok\x01\x01", "bad saslname"),
    ("OAUTHBEARER", b"n,,\x01auth=Bearer tok\x01", "not ended by two kvsep"),
    ("OAUTHBEARER", b"n,,\x01auth=Bearer tok", "not ended by two kvsep"),
    ("OAUTHBEARER", b"n,,\x01", "not ended by two kvsep"),
    ("OAUTHBEARER", b"n,,\x01auth=Bearer tok\x01auth=Bearer tok\x01\x01", "bad key/value pair"),  # twice
    ("OAUTHBEARER", b"n,,\x01auth Bearer tok\x01\x01", "bad key/value pair"),
    ("OAUTHBEARER", b"n,,\x01=Bearer tok\x01\x01", "bad key/value pair"),
    ("OAUTHBEARER", b"n,,\x01au7h=x\x01auth=Bearer tok\x01\x01", "bad key/value pair"),
    ("OAUTHBEARER", b"n,,\x01auth=Bearer tok\x01\x01\x01", "bad key/value pair"),
    ("OAUTHBEARER", b"n,,\x01host=\xc3\x01auth=Bearer tok\x01\x01", "value not UTF-8"),
    ("OAUTHBEARER", b"n,,\x01auth=Bearer two words\x01\x01", "no auth=Bearer value"),
    ("OAUTHBEARER", b"n,,\x01auth=Basic eDp5\x01\x01", "no auth=Bearer value"),
    ("OAUTHBEARER", b"n,,\x01auth=Bearertok\x01\x01", "no auth=Bearer value"),
    ("OAUTHBEARER", b"n,,\x01auth=Bearer t=k\x01\x01", "no auth=Bearer value"),
    ("OAUTHBEARER", b"n,,\x01host=a\x01\x01", "no auth=Bearer value"),
    ("OAUTHBEARER", b"\x01", "bad GS2 header"),  # the error-answer %x01 is no initial response
    ("OAUTHBEARER", b"n,,\x01auth=Bearer " + b"t" * bearer.MAX_RESPONSE + b"\x01\x01", "too long"),
    ("XOAUTH2", b"user=\x01auth=Bearer tok\x01\x01", "no user"),
    ("XOAUTH2", b"user=  \x01auth=Bearer tok\x01\x01", "no user"),
    ("XOAUTH2", b"auth=Bearer tok\x01\x01", "no user"),
    ("XOAUTH2", b"\x01", "no user"),
    ("XOAUTH2", b"user=dr@pro.test\x01auth=Bearer \x01\x01", "no auth=Bearer value"),
    ("XOAUTH2", b"user=dr@pro.test\x01auth=Bearer tok", "not ended by two kvsep"),
    ("XOAUTH2", b"user=dr@pro.test\x01user=x\x01auth=Bearer tok\x01\x01", "bad key/value pair"),
    ("XOAUTH2", b"user=\xe9\x01auth=Bearer tok\x01\x01", "value not UTF-8"),
    ("XOAUTH2", b"user=" + b"d" * bearer.MAX_RESPONSE + b"\x01auth=Bearer tok\x01\x01", "too long"),
]


def _smtp(mechanism: str, data: bytes) -> object:
    return sasl.MECHANISMS[mechanism]().start(data)


@pytest.mark.parametrize(("mechanism", "data", "authzid", "token"), GOOD)
def test_parsed(mechanism: str, data: bytes, authzid: str | None, token: str) -> None:
    parsed = bearer.parse(mechanism, data)
    assert (parsed.mechanism, parsed.authzid, parsed.token) == (mechanism, authzid, token)
    assert token not in repr(parsed)
    step = _smtp(mechanism, data)
    assert step == TokenCredentials(mechanism, authzid, token) and token not in repr(step)


@pytest.mark.parametrize(("mechanism", "data", "reason"), BAD)
def test_refused(mechanism: str, data: bytes, reason: str) -> None:
    with pytest.raises(bearer.MalformedResponse) as refused:
        bearer.parse(mechanism, data)
    assert str(refused.value) == reason and b"tok" not in str(refused.value).encode()
    assert _smtp(mechanism, data) == replies.AUTH_MALFORMED


@pytest.mark.parametrize(("mechanism", "data", "authzid", "token"), GOOD)
def test_every_truncation_is_refused(mechanism: str, data: bytes, authzid: str | None, token: str) -> None:
    """Byte by byte: no proper prefix of a response is one (the list ends with ``%x01%x01``)."""
    for end in range(len(data)):
        with pytest.raises(bearer.MalformedResponse):
            bearer.parse(mechanism, data[:end])
        assert _smtp(mechanism, data[:end]) == replies.AUTH_MALFORMED


SUBSTITUTES = (b"\x00", b"\x01", b",", b"=", b" ", b"\xff", b"\x80", b"A", b"\x7f", b"\r")


@pytest.mark.parametrize(("mechanism", "data", "authzid", "token"), GOOD)
def test_every_single_byte_change(mechanism: str, data: bytes, authzid: str | None, token: str) -> None:
    """Byte by byte, each byte replaced, doubled and removed: the result parses or is refused
    with :class:`~saslwire.bearer.MalformedResponse`, never another exception; what parses still has a
    b64token and an authzid without a control character; SMTP answers the same."""
    variants = set()
    for i in range(len(data)):
        variants.add(data[:i] + data[i + 1:])
        variants.add(data[:i] + data[i:i + 1] * 2 + data[i + 1:])
        variants.update(data[:i] + sub + data[i + 1:] for sub in SUBSTITUTES)
    for variant in variants:
        try:
            parsed = bearer.parse(mechanism, variant)
        except bearer.MalformedResponse:
            assert _smtp(mechanism, variant) == replies.AUTH_MALFORMED
            continue
        assert parsed.token and all(c.isascii() and c.isprintable() and c != " " for c in parsed.token)
        assert parsed.authzid is None or "\x01" not in parsed.authzid
        assert _smtp(mechanism, variant) == TokenCredentials(mechanism, parsed.authzid, parsed.token)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(bearer.TOKEN_MECHANISMS), st.binary(max_size=200))
def test_fuzz_parses_or_is_malformed(mechanism: str, data: bytes) -> None:
    try:
        bearer.parse(mechanism, data)
    except bearer.MalformedResponse:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(bearer.TOKEN_MECHANISMS),
       st.lists(st.sampled_from([b"n", b"y", b",", b"a=", b"=2C", b"=3D", b"=", b"\x01", b"auth", b"user",
                                 b"Bearer ", b"tok", b"dr@pro.test", b" ", b"\xc3\xa9", b"\xff"]), max_size=20))
def test_fuzz_near_the_grammar(mechanism: str, pieces: list[bytes]) -> None:
    """Inputs made of the grammar's own pieces (far likelier to get deep than random bytes)."""
    data = b"".join(pieces)
    try:
        parsed = bearer.parse(mechanism, data)
    except bearer.MalformedResponse:
        assert _smtp(mechanism, data) == replies.AUTH_MALFORMED
    else:
        assert _smtp(mechanism, data) == TokenCredentials(mechanism, parsed.authzid, parsed.token)


def test_not_a_bearer_mechanism() -> None:
    with pytest.raises(bearer.MalformedResponse):
        bearer.parse("PLAIN", b"\x00a\x00b")
    assert sasl.TOKEN_MECHANISMS == bearer.TOKEN_MECHANISMS == ("OAUTHBEARER", "XOAUTH2")
