"""The listener policy of :mod:`smtp.policy` as a session applies it: AUTH and TLS (RFC 4954, SPEC §6).

:func:`smtp.policy.conditions` gives the state table its flags; these cases drive a
:class:`smtp.session.Session` (no sockets) so the rule is checked where it is applied: what EHLO
offers, what AUTH answers, per listener, TLS, client address and the development relaxation.
``tests/smtp/test_state_matrix.py`` checks every verb in every phase; the parameters are
``test_params.py``'s, the connection counting ``test_throttle.py``'s.
"""

from __future__ import annotations

import base64

import pytest

from smtp import replies
from smtp.policy import DEFAULT_LIMITS, Limits, check_recipient_count
from smtp.session import SessionConfig
from smtp.testing import HOST, TLS, Client

DEV = Limits(allow_plaintext_auth_on_loopback=True)
PLAIN = "AUTH PLAIN " + base64.b64encode(b"\0dr@clinic.test\0secret").decode()


def session(listener: str, tls: bool, peer: str, limits: Limits = DEFAULT_LIMITS) -> Client:
    config = SessionConfig(hostname=HOST, listener=listener, limits=limits,  # type: ignore[arg-type]
                           starttls=not tls)
    client = Client(config=config, peer=peer, tls=TLS if tls else None)
    client.greeting()
    return client


@pytest.mark.parametrize(
    ("listener", "tls", "peer", "limits", "expected"),
    [
        ("submission", True, "192.0.2.10", DEFAULT_LIMITS, replies.AUTH_SUCCESS),
        ("submissions", True, "192.0.2.10", DEFAULT_LIMITS, replies.AUTH_SUCCESS),
        ("submission", False, "192.0.2.10", DEFAULT_LIMITS, replies.AUTH_ENCRYPTION_REQUIRED),
        ("submission", False, "127.0.0.1", DEFAULT_LIMITS, replies.AUTH_ENCRYPTION_REQUIRED),
        ("submission", False, "127.0.0.1", DEV, replies.AUTH_SUCCESS),
        ("submission", False, "::1", DEV, replies.AUTH_SUCCESS),
        ("submission", False, "192.0.2.10", DEV, replies.AUTH_ENCRYPTION_REQUIRED),  # loopback only
        ("mx", True, "192.0.2.10", DEFAULT_LIMITS, replies.AUTH_NOT_AVAILABLE),
        ("mx", False, "127.0.0.1", DEV, replies.AUTH_NOT_AVAILABLE),  # never on MX
    ],
)
def test_auth_is_offered_and_allowed_only_where_the_policy_says(
        listener: str, tls: bool, peer: str, limits: Limits, expected: replies.Reply) -> None:
    with session(listener, tls, peer, limits) as client:
        offered = any(line[4:].startswith("AUTH ") for line in client.line("EHLO client.test"))
        assert offered == (expected is replies.AUTH_SUCCESS)
        assert client.line(PLAIN) == [expected.line()]
        if expected is replies.AUTH_SUCCESS:
            assert client.line(PLAIN) == [replies.AUTH_ALREADY.line()]


def test_auth_is_not_offered_after_helo() -> None:
    with session("submission", True, "192.0.2.10") as client:
        assert client.line("HELO client.test") == [f"250 {HOST} hello"]
        assert client.line(PLAIN) == [replies.BAD_SEQUENCE.line()]


def test_submission_mail_needs_authentication_and_mx_mail_is_the_hosts_decision() -> None:
    with session("submission", True, "192.0.2.10") as client:
        client.line("EHLO client.test")
        assert client.line("MAIL FROM:<dr@clinic.test>") == [replies.AUTH_REQUIRED.line()]
        client.line(PLAIN)
        assert client.line("MAIL FROM:<dr@clinic.test>") == [replies.SENDER_OK.line()]
    with session("mx", False, "192.0.2.10") as client:  # TLS, trust list: the backend's verdict
        client.line("EHLO peer.test")
        assert client.line("MAIL FROM:<s@peer.test>") == [replies.SENDER_OK.line()]


def test_recipient_count() -> None:
    limits = Limits(max_recipients=3)
    assert check_recipient_count(0, limits) is None
    assert check_recipient_count(2, limits) is None
    assert check_recipient_count(3, limits) == replies.TOO_MANY_RECIPIENTS
    assert replies.TOO_MANY_RECIPIENTS.line() == "452 4.5.3 too many recipients"
    assert check_recipient_count(99) is None and check_recipient_count(100) is not None
