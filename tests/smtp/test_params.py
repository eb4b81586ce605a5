"""ESMTP parameters of MAIL and RCPT (RFC 1870, 3461, 6152, 6531) and xtext, as :mod:`smtp.params` reads them.

The session sends whatever reply these return (``tests/smtp/test_transcript_mail.py`` shows a
few on the wire); here every case is checked against the parser itself.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp import replies
from smtp.params import (
    MailParams,
    RcptParams,
    XtextError,
    parse_mail_params,
    parse_rcpt_params,
    xtext_decode,
    xtext_encode,
)
from smtp.policy import DEFAULT_LIMITS, Limits

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
    assert parse_mail_params(params, LIM.max_message_size) == expected


def test_size_refusal_is_552_534() -> None:
    limit = DEFAULT_LIMITS.max_message_size  # SPEC §6: 25 MB
    assert parse_mail_params([f"SIZE={limit + 1}"], limit) == replies.MESSAGE_TOO_BIG
    assert replies.MESSAGE_TOO_BIG.line().startswith("552 5.3.4 ")
    assert parse_mail_params([f"SIZE={limit}"], limit) == MailParams(size=limit)


def test_unknown_param_is_555() -> None:
    reply = parse_mail_params(["FOO=BAR"], 1000)
    assert isinstance(reply, replies.Reply) and (reply.code, reply.enhanced) == (555, "5.5.4")


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
    assert parse_rcpt_params(params) == expected


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
