"""SMTP session policy: AUTH/TLS order, ESMTP parameters (RFC 1870, 3461, 6152, 6531), limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp import replies
from smtp.policy import (
    ConnectionLimiter,
    Limits,
    MailParams,
    RcptParams,
    SessionFacts,
    XtextError,
    auth_offered,
    check_auth_allowed,
    check_mail_allowed,
    check_mail_params,
    check_message_size,
    check_rcpt_params,
    check_recipient_count,
    check_starttls,
    client_key,
    parse_mail_params,
    parse_rcpt_params,
    xtext_decode,
    xtext_encode,
)

DEV = Limits(allow_plaintext_auth_on_loopback=True)


def facts(listener: str = "submission", tls: bool = True, ip: str = "192.0.2.10", **kw: object) -> SessionFacts:
    return SessionFacts(ip, listener, tls, **kw)  # type: ignore[arg-type]


# --- AUTH and TLS ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("session", "limits", "expected"),
    [
        (facts(tls=True), Limits(), None),
        (facts("submissions", tls=True), Limits(), None),
        (facts(tls=False), Limits(), replies.AUTH_ENCRYPTION_REQUIRED),
        (facts(tls=False, ip="127.0.0.1"), Limits(), replies.AUTH_ENCRYPTION_REQUIRED),
        (facts(tls=False, ip="127.0.0.1"), DEV, None),
        (facts(tls=False, ip="::1"), DEV, None),
        (facts(tls=False, ip="192.0.2.10"), DEV, replies.AUTH_ENCRYPTION_REQUIRED),  # relaxation is loopback-only
        (facts("mx", tls=True), Limits(), replies.AUTH_NOT_AVAILABLE),
        (facts(tls=True, account="dr@clinique.example"), Limits(), replies.AUTH_ALREADY),
    ],
)
def test_check_auth_allowed(session: SessionFacts, limits: Limits, expected: replies.Reply | None) -> None:
    assert check_auth_allowed(session, limits) == expected
    assert auth_offered(session, limits) == (expected is None or expected == replies.AUTH_ALREADY)


def test_auth_encryption_required_reply() -> None:
    assert replies.AUTH_ENCRYPTION_REQUIRED.line() == (
        "538 5.7.11 encryption required for requested authentication mechanism"
    )


def test_auth_not_offered_after_helo() -> None:
    assert not auth_offered(facts(esmtp=False))


@pytest.mark.parametrize(
    ("session", "expected"),
    [
        (facts(tls=True, account="dr@clinique.example"), None),
        (facts(tls=True), replies.AUTH_REQUIRED),
        (facts(tls=False, account="dr@clinique.example"), replies.TLS_REQUIRED),
        (facts("mx", tls=False), None),  # MX is decided by routing (trust list)
    ],
)
def test_check_mail_allowed(session: SessionFacts, expected: replies.Reply | None) -> None:
    assert check_mail_allowed(session) == expected


def test_starttls_injection_refused() -> None:
    # CVE-2011-0411 class: commands pipelined behind STARTTLS must never run inside TLS
    assert check_starttls(facts(tls=False), b"MAIL FROM:<evil@mail.example>\r\n") == replies.STARTTLS_PIPELINED
    assert check_starttls(facts(tls=False)) is None
    assert check_starttls(facts(tls=True)) == replies.TLS_ALREADY_ACTIVE


# --- MAIL parameters -------------------------------------------------------------------------------

LIM = Limits(max_message_size=1000)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([], MailParams()),
        (["SIZE=1000"], MailParams(size=1000)),
        (["size=0"], MailParams(size=0)),
        (["BODY=8BITMIME", "SMTPUTF8"], MailParams(body="8BITMIME", smtputf8=True)),
        (["body=7bit"], MailParams(body="7BIT")),
        (["RET=FULL", "ENVID=QQ314159"], MailParams(ret="FULL", envid="QQ314159")),
        (["RET=hdrs"], MailParams(ret="HDRS")),
        (["ENVID=a+2Bb+3Dc"], MailParams(envid="a+b=c")),
        (["ENVID=case+20Kept"], MailParams(envid="case Kept")),
        (["AUTH=<>"], MailParams(auth="<>")),
        (["AUTH=dr+2Bx@clinique.example"], MailParams(auth="dr+x@clinique.example")),
    ],
)
def test_mail_params_ok(params: list[str], expected: MailParams) -> None:
    assert parse_mail_params(params, LIM.max_message_size) == expected
    assert check_mail_params(params, LIM) is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (["SIZE=1001"], replies.MESSAGE_TOO_BIG),
        (["SIZE=" + "9" * 20], replies.MESSAGE_TOO_BIG),
        (["SIZE=" + "9" * 21], replies.SIZE_INVALID),
        (["SIZE=-1"], replies.SIZE_INVALID),
        (["SIZE"], replies.SIZE_INVALID),
        (["SIZE=12a"], replies.SIZE_INVALID),
        (["BODY=BINARYMIME"], replies.BODY_INVALID),
        (["BODY"], replies.BODY_INVALID),
        (["SMTPUTF8=yes"], replies.SMTPUTF8_INVALID),
        (["RET=ALL"], replies.DSN_PARAM_INVALID),
        (["RET"], replies.DSN_PARAM_INVALID),
        (["ENVID=" + "a" * 101], replies.DSN_PARAM_INVALID),
        (["ENVID=bad+2"], replies.DSN_PARAM_INVALID),
        (["ENVID=bad+ZZ"], replies.DSN_PARAM_INVALID),
        (["ENVID=+0D+0A"], replies.DSN_PARAM_INVALID),  # decodes to CR LF: not printable
        (["ENVID=+C3"], replies.DSN_PARAM_INVALID),  # not US-ASCII
        (["ENVID"], replies.DSN_PARAM_INVALID),
        (["AUTH"], replies.SYNTAX_ERROR),
        (["XFOO=1"], replies.MAIL_PARAMS_UNRECOGNIZED),
        (["NOTIFY=NEVER"], replies.MAIL_PARAMS_UNRECOGNIZED),  # RCPT-only parameter
        (["SIZE=1", "size=2"], replies.PARAM_DUPLICATE),
        (["=1"], replies.SYNTAX_ERROR),
        (["SIZE="], replies.SYNTAX_ERROR),
        (["-X=1"], replies.SYNTAX_ERROR),
        (["ENVID=a=b"], replies.SYNTAX_ERROR),
        (["ENVID=a\x00b"], replies.SYNTAX_ERROR),
    ],
)
def test_mail_params_refused(params: list[str], expected: replies.Reply) -> None:
    assert check_mail_params(params, LIM) == expected


def test_size_refusal_is_552_534() -> None:
    assert check_mail_params(["SIZE=26214401"]) == replies.MESSAGE_TOO_BIG
    assert replies.MESSAGE_TOO_BIG.line().startswith("552 5.3.4 ")
    assert check_mail_params(["SIZE=26214400"]) is None


def test_unknown_param_is_555() -> None:
    reply = check_mail_params(["FOO=BAR"])
    assert reply is not None and (reply.code, reply.enhanced) == (555, "5.5.4")


# --- RCPT parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([], RcptParams()),
        (["NOTIFY=NEVER"], RcptParams(notify=frozenset())),
        (["NOTIFY=never"], RcptParams(notify=frozenset())),
        (["NOTIFY=SUCCESS,FAILURE,DELAY"], RcptParams(notify=frozenset({"SUCCESS", "FAILURE", "DELAY"}))),
        (["NOTIFY=failure"], RcptParams(notify=frozenset({"FAILURE"}))),
        (["ORCPT=rfc822;dr+2Bx@clinique.example"], RcptParams(orcpt=("rfc822", "dr+x@clinique.example"))),
        (["ORCPT=RFC822;a@b.example"], RcptParams(orcpt=("rfc822", "a@b.example"))),
    ],
)
def test_rcpt_params_ok(params: list[str], expected: RcptParams) -> None:
    assert parse_rcpt_params(params) == expected
    assert check_rcpt_params(params) is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (["NOTIFY=NEVER,SUCCESS"], replies.DSN_PARAM_INVALID),  # NEVER is exclusive
        (["NOTIFY=SUCCESS,NEVER"], replies.DSN_PARAM_INVALID),
        (["NOTIFY=SUCCESS,SUCCESS"], replies.DSN_PARAM_INVALID),
        (["NOTIFY=SUCCESS,"], replies.DSN_PARAM_INVALID),
        (["NOTIFY=ALWAYS"], replies.DSN_PARAM_INVALID),
        (["NOTIFY"], replies.DSN_PARAM_INVALID),
        (["ORCPT=rfc822"], replies.DSN_PARAM_INVALID),
        (["ORCPT=;a@b.example"], replies.DSN_PARAM_INVALID),
        (["ORCPT=rfc822;"], replies.DSN_PARAM_INVALID),
        (["ORCPT=rfc822;a+4@b.example"], replies.DSN_PARAM_INVALID),
        (["ORCPT=rfc822;" + "a" * 500], replies.DSN_PARAM_INVALID),
        (["RET=FULL"], replies.RCPT_PARAMS_UNRECOGNIZED),  # MAIL-only parameter
        (["XFOO"], replies.RCPT_PARAMS_UNRECOGNIZED),
        (["NOTIFY=NEVER", "notify=NEVER"], replies.PARAM_DUPLICATE),
    ],
)
def test_rcpt_params_refused(params: list[str], expected: replies.Reply) -> None:
    assert check_rcpt_params(params) == expected


# --- xtext (RFC 3461 §4) -------------------------------------------------------------------------------


def test_xtext_examples() -> None:
    assert xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d"
    assert xtext_decode("a+2Bb+3Dc+20d") == "a+b=c d"
    assert xtext_decode("lower+2b") == "lower+"
    for bad in ("a=b", "a b", "+", "+4", "+G0", "é"):
        with pytest.raises(XtextError):
            xtext_decode(bad)
    with pytest.raises(XtextError):
        xtext_encode("é")


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60))
@settings(max_examples=300, deadline=None)
def test_xtext_round_trip(text: str) -> None:
    encoded = xtext_encode(text)
    assert all("!" <= c <= "~" and c != "=" for c in encoded)
    assert xtext_decode(encoded) == text


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_xtext_decode_never_crashes(text: str) -> None:
    try:
        xtext_decode(text)
    except XtextError:
        pass


@given(st.lists(st.text(max_size=20), max_size=6))
@settings(max_examples=300, deadline=None)
def test_param_parsers_never_crash(tokens: list[str]) -> None:
    assert isinstance(parse_mail_params(tokens, 1000), MailParams | replies.Reply)
    assert isinstance(parse_rcpt_params(tokens), RcptParams | replies.Reply)


# --- limits ------------------------------------------------------------------------------------------------


def test_recipient_count() -> None:
    limits = Limits(max_recipients=3)
    assert check_recipient_count(0, limits) is None
    assert check_recipient_count(2, limits) is None
    assert check_recipient_count(3, limits) == replies.TOO_MANY_RECIPIENTS
    assert replies.TOO_MANY_RECIPIENTS.line() == "452 4.5.3 too many recipients"
    assert check_recipient_count(99) is None and check_recipient_count(100) is not None


def test_message_size() -> None:
    assert check_message_size(1000, LIM) is None
    assert check_message_size(1001, LIM) == replies.MESSAGE_TOO_BIG


def test_connection_limiter() -> None:
    limiter = ConnectionLimiter(max_per_ip=2, max_total=3)
    assert limiter.open("192.0.2.1") is None
    assert limiter.open("192.0.2.1") is None
    assert limiter.open("192.0.2.1") == replies.TOO_MANY_CONNECTIONS
    assert limiter.count("192.0.2.1") == 2
    assert limiter.open("192.0.2.2") is None
    assert limiter.open("192.0.2.3") == replies.TOO_MANY_CONNECTIONS  # global cap
    limiter.close("192.0.2.1")
    assert limiter.open("192.0.2.3") is None
    for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.3", "198.51.100.9"):
        limiter.close(ip)  # closing more than opened never goes negative
    assert limiter.total == 0 and limiter.count("192.0.2.1") == 0
    assert replies.TOO_MANY_CONNECTIONS.code == 421


def test_ipv6_counted_per_64() -> None:
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key("not-an-ip") == "not-an-ip"
    limiter = ConnectionLimiter(max_per_ip=1)
    assert limiter.open("2001:db8::1") is None
    assert limiter.open("2001:db8::2") == replies.TOO_MANY_CONNECTIONS


