"""Every SMTP verb in every state answers as the table says (mox ``TestState``), no sockets.

A *situation* is a listener, TLS or not, a phase and the flags (EHLO or HELO,
authenticated), reached by a real command sequence; in each one every verb is sent with
a valid argument. :func:`expected` is written out from the RFCs, independently of
:data:`smtp.state.TABLE`: the reply (code, enhanced code and text, compared with the
catalogue) and the phase after it. Then the table itself is checked against the same
oracle, so the two copies can only agree by both being right.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest

from smtp import replies
from smtp.policy import Limits
from smtp.replies import Reply
from smtp.session import SessionConfig
from smtp.state import TABLE, Conditions, Phase, Verb, check, next_phase
from smtp.testing import HOST, TLS, Client, is_catalogued

C, G, M, R = Phase.CONNECTED, Phase.GREETED, Phase.MAIL, Phase.RCPT
PLAIN = "AUTH PLAIN " + base64.b64encode(b"\0dr@clinic.test\0secret").decode()


@dataclass(frozen=True)
class Situation:
    listener: str  # mx | submission
    tls: bool
    phase: Phase
    helo: bool = False  # greeted with HELO rather than EHLO
    authed: bool = False
    starttls: bool = True  # the listener offers STARTTLS

    @property
    def name(self) -> str:
        flags = [self.listener, "tls" if self.tls else "plain", self.phase.value]
        flags += ["helo"] * self.helo + ["authed"] * self.authed + ["no-starttls"] * (not self.starttls)
        return "-".join(flags)

    def setup(self) -> list[str]:
        lines = []
        if self.phase is not C:
            lines.append("EHLO client.test")
        if self.authed:
            lines.append(PLAIN)
        if self.helo:
            lines.append("HELO client.test")
        sender = "dr@clinic.test" if self.listener == "submission" else "s@peer.test"
        if self.phase in (M, R):
            lines.append(f"MAIL FROM:<{sender}>")
        if self.phase is R:
            lines.append("RCPT TO:<r@patients.test>")
        return lines


SITUATIONS = [
    *(Situation("mx", tls, phase) for tls in (False, True) for phase in (C, G, M, R)),
    Situation("mx", False, G, helo=True),
    Situation("mx", False, C, starttls=False),
    Situation("mx", False, G, starttls=False),
    *(Situation("submission", tls, phase) for tls in (False, True) for phase in (C, G)),
    *(Situation("submission", tls, G, helo=True) for tls in (False, True)),
    *(Situation("submission", True, phase, authed=True) for phase in (G, M, R)),
    Situation("submission", True, G, helo=True, authed=True),
]

ARGUMENTS = {
    Verb.HELO: "HELO other.test", Verb.EHLO: "EHLO other.test", Verb.RCPT: "RCPT TO:<r2@patients.test>",
    Verb.VRFY: "VRFY someone", Verb.EXPN: "EXPN staff", Verb.AUTH: PLAIN,
}


def _mail_line(s: Situation) -> str:
    return "MAIL FROM:<dr@clinic.test>" if s.listener == "submission" else "MAIL FROM:<s2@peer.test>"


def expected(verb: Verb, s: Situation) -> tuple[Reply, Phase]:
    """The oracle, from the RFCs (see each branch), independent of smtp.state."""
    p, submission = s.phase, s.listener == "submission"
    stay = (p, p)
    if verb in (Verb.EHLO, Verb.HELO):  # RFC 5321 §4.1.4: anywhere, resets the transaction
        return replies.EHLO_OK, G
    if verb is Verb.MAIL:  # RFC 5321 §4.1.4; RFC 3207 §4 and RFC 4954 §6 on submission
        if p is C:
            return replies.NEED_HELO, p
        if p in (M, R):
            return replies.NESTED_MAIL, p
        if submission and not s.tls:
            return replies.TLS_REQUIRED, p
        if submission and not s.authed:
            return replies.AUTH_REQUIRED, p
        return replies.SENDER_OK, M
    if verb is Verb.RCPT:
        return {C: (replies.NEED_HELO, C), G: (replies.NEED_MAIL, G)}.get(p, (replies.RECIPIENT_OK, R))
    if verb is Verb.DATA:
        refusal = {C: replies.NEED_HELO, G: replies.NEED_MAIL, M: replies.NEED_RCPT}.get(p)
        return (refusal, p) if refusal else (replies.START_DATA, G)
    if verb is Verb.RSET:  # RFC 5321 §4.1.1.5: the greeting stays
        return replies.OK, C if p is C else G
    simple = {Verb.NOOP: replies.OK, Verb.QUIT: replies.CLOSING, Verb.VRFY: replies.CANNOT_VERIFY,
              Verb.EXPN: replies.NOT_IMPLEMENTED, Verb.HELP: replies.HELP}
    if verb in simple:
        return simple[verb], stay[1]
    if verb is Verb.STARTTLS:  # RFC 3207 §4, §4.2
        if p in (M, R):
            return replies.TRANSACTION_IN_PROGRESS, p
        if s.tls:
            return replies.TLS_ALREADY_ACTIVE, p
        if not s.starttls:
            return replies.TLS_NOT_AVAILABLE, p
        return replies.STARTTLS_READY, C
    assert verb is Verb.AUTH  # RFC 4954 §4; SPEC §6: never on MX, never before TLS
    if p is C:
        return replies.NEED_HELO, p
    if p in (M, R):
        return replies.TRANSACTION_IN_PROGRESS, p
    if not submission:
        return replies.AUTH_NOT_AVAILABLE, p
    if s.helo:
        return replies.BAD_SEQUENCE, p
    if s.authed:
        return replies.AUTH_ALREADY, p
    if not s.tls:
        return replies.AUTH_ENCRYPTION_REQUIRED, p
    return replies.AUTH_SUCCESS, p


CASES = [(s, verb) for s in SITUATIONS for verb in Verb]


def _client(s: Situation) -> Client:
    config = SessionConfig(hostname=HOST, listener=s.listener, starttls=s.starttls,  # type: ignore[arg-type]
                           limits=Limits(max_message_size=10_000))
    client = Client(config=config, tls=TLS if s.tls else None, peer="192.0.2.1")
    client.greeting()
    for line in s.setup():
        [answer] = [r for r in client.line(line) if not r.startswith("250-")]
        assert answer[0] == "2", (s.name, line, answer)
    assert client.session.phase is s.phase
    return client


@pytest.mark.parametrize(("situation", "verb"), CASES, ids=[f"{s.name}-{v.value}" for s, v in CASES])
def test_every_verb_in_every_situation(situation: Situation, verb: Verb) -> None:
    reply, phase = expected(verb, situation)
    with _client(situation) as client:
        line = _mail_line(situation) if verb is Verb.MAIL else ARGUMENTS.get(verb, verb.value)
        answer = client.line(line)
        if reply is replies.EHLO_OK:
            assert answer[0] in (f"250-{HOST} hello", f"250 {HOST} hello")
            assert all(a.startswith(("250-", "250 ")) for a in answer)
        else:
            assert answer == [reply.line()], situation.name
            assert is_catalogued(answer[0])
        if reply is replies.STARTTLS_READY:
            assert client.outputs[-1].starttls
            client.start_tls()
        if reply is replies.CLOSING:
            assert client.outputs[-1].closes and client.session.closed
        else:
            assert client.session.phase is phase


def _conditions(s: Situation) -> Conditions:
    return Conditions(tls=s.tls, authenticated=s.authed, esmtp=s.phase is not C and not s.helo,
                      starttls_offered=s.starttls, auth_offered=s.listener == "submission", privacy=s.tls,
                      mail_needs_auth=s.listener == "submission")


@pytest.mark.parametrize(("situation", "verb"), CASES, ids=[f"{s.name}-{v.value}" for s, v in CASES])
def test_the_table_agrees_with_the_oracle(situation: Situation, verb: Verb) -> None:
    reply, phase = expected(verb, situation)
    refused = check(verb, situation.phase, _conditions(situation))
    if reply.code // 100 in (2, 3):
        assert refused is None
        if verb is not Verb.QUIT:
            assert next_phase(verb, situation.phase) is phase
    else:  # a refusal, or 502 for a known verb we do not implement
        assert refused == reply


def test_the_table_covers_every_verb_and_refuses_in_catalogue_words() -> None:
    assert set(TABLE) == set(Verb)
    for rule in TABLE.values():
        for reply in rule.refused.values():
            assert reply in replies.CATALOGUE.values()


def test_help_lists_the_implemented_verbs_of_the_table() -> None:
    implemented = sorted(v.value for v, rule in TABLE.items() if rule.implemented)
    assert replies.HELP.text == "commands: " + " ".join(implemented)
