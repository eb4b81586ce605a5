"""The OAUTHBEARER (RFC 7628 §3.1) and XOAUTH2 response parser of the IMAP core, and the SMTP
twin (:mod:`smtp.sasl`) giving the same answers on the same inputs."""

from __future__ import annotations

import pytest

from imap.proto import bearer
from smtp import sasl
from smtp.backend import TokenCredentials

GOOD = [
    ("OAUTHBEARER", b"n,a=dr@pro.test,\x01auth=Bearer abc.def-ghi\x01\x01", "dr@pro.test", "abc.def-ghi"),
    ("OAUTHBEARER", b"y,a=dr=2Cx=3Dy@pro.test,\x01host=a\x01port=1\x01auth=bearer t0k==\x01\x01",
     "dr,x=y@pro.test", "t0k=="),
    ("OAUTHBEARER", b"n,,\x01auth=Bearer tok\x01\x01", None, "tok"),
    ("XOAUTH2", b"user=dr@pro.test\x01auth=Bearer tok\x01\x01", "dr@pro.test", "tok"),
]
BAD = [
    ("OAUTHBEARER", b"n,a=dr@pro.test,auth=Bearer tok\x01\x01"),
    ("OAUTHBEARER", b"p=tls-unique,,\x01auth=Bearer tok\x01\x01"),
    ("OAUTHBEARER", b"n,a=dr=2Dx,\x01auth=Bearer tok\x01\x01"),
    ("OAUTHBEARER", b"n,b=dr,\x01auth=Bearer tok\x01\x01"),
    ("OAUTHBEARER", b"n,,\x01auth=Bearer tok\x01"),
    ("OAUTHBEARER", b"n,,\x01auth=Bearer tok\x01auth=Bearer tok\x01\x01"),
    ("OAUTHBEARER", b"n,,\x01auth=Bearer two words\x01\x01"),
    ("OAUTHBEARER", b"\x01"),
    ("XOAUTH2", b"user=\x01auth=Bearer tok\x01\x01"),
    ("XOAUTH2", b"user=dr@pro.test\x01auth=Bearer \x01\x01"),
    ("XOAUTH2", b"user=dr@pro.test\x01auth=Bearer tok"),
]


@pytest.mark.parametrize(("mechanism", "data", "authzid", "token"), GOOD)
def test_parsed(mechanism: str, data: bytes, authzid: str | None, token: str) -> None:
    parsed = bearer.parse(mechanism, data)
    assert (parsed.authzid, parsed.token) == (authzid, token)
    assert token not in repr(parsed)
    step = sasl.MECHANISMS[mechanism]().start(data)
    assert step == TokenCredentials(mechanism, authzid, token) and token not in repr(step)


@pytest.mark.parametrize(("mechanism", "data"), BAD)
def test_refused(mechanism: str, data: bytes) -> None:
    with pytest.raises(ValueError):
        bearer.parse(mechanism, data)
    assert not isinstance(sasl.MECHANISMS[mechanism]().start(data), TokenCredentials)
