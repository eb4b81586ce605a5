"""SPEC §4 routing table, row by row, on the submission, MX, web and internal paths."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from routing import reasons
from routing.address import Address, parse_address
from routing.decide import (
    Verdict,
    conversation_effect,
    decide_after_data,
    decide_mail_from,
    decide_rcpt,
    verdict,
)
from routing.facts import (
    NO_CONVERSATION,
    ConversationFacts,
    DkimCheck,
    HeaderFacts,
    RecipientFacts,
    Sender,
)
from routing.ins import synthetic_ins
from routing.trust import TrustEntry, TrustList

RNG = random.Random(4242)
PATIENT_DOMAIN = "patients.example"
INS_A = synthetic_ins(RNG)
INS_B = synthetic_ins(RNG)

HOPITAL_DN = "CN=mx.hopital.test,O=Hopital Test,C=FR"
CABINET_DN = "CN=relay.cabinet.test,O=Cabinet Test,C=FR"
STRICT_DN = "CN=mx.strict.test,O=Strict Test,C=FR"

TRUST = TrustList(
    [
        TrustEntry("hopital.test", "Hopital", operator_dn=HOPITAL_DN, dkim_policy="dns"),
        TrustEntry("cabinet.test", "Cabinet", operator_dn=CABINET_DN, dkim_policy="none"),
        TrustEntry("nodn.test", "No DN", dkim_policy="none"),
        TrustEntry("plain.test", "No TLS needed", tls_required=False, dkim_policy="dns"),
        TrustEntry("pinned.test", "Pinned", dkim_policy="pinned", dkim_selector="s1", dkim_public_key="MIIB"),
        TrustEntry("suspendu.test", "Suspended", status="suspended"),
        TrustEntry("signed.test", "DKIM, no certificate", dkim_policy="dns"),
        TrustEntry("strict.test", "Certificate and DKIM", operator_dn=STRICT_DN, dkim_policy="dns", dkim_required=True),
    ]
)


def a(text: str) -> Address:
    return parse_address(text)


PATIENT_A = Address(INS_A, PATIENT_DOMAIN)
PATIENT_B = Address(INS_B, PATIENT_DOMAIN)
DR_HOSTED = a("dr.martin@clinique.example")
DR_HOSTED_2 = a("dr.petit@clinique.example")
DR_TRUSTED = a("dr.durand@hopital.test")
PHARMACY = a("pharmacie@clinique.example")
SECRETARIAT = a("secretariat@hopital.test")

HOSTED_PRO = Sender("hosted_pro", DR_HOSTED, "submission", account=DR_HOSTED, tls=True)
TRUSTED_PRO = Sender("trusted_pro", DR_TRUSTED, "mx", tls=True, tls_peer_dn=HOPITAL_DN)
PATIENT = Sender("patient", PATIENT_A, "web")
GATEWAY = Sender("gateway", a("notifications@patients.example"), "internal")
UNTRUSTED = Sender("untrusted", a("someone@mail.example"), "mx", tls=True)


BAD_INS = Address(INS_B[:-2] + ("00" if INS_B[-2:] != "00" else "01"), PATIENT_DOMAIN)  # wrong key


def patient_rcpt(state: str | None = "open", address: Address = PATIENT_B) -> RecipientFacts:
    return RecipientFacts(address, "patient", mailbox_state=state)  # type: ignore[arg-type]


R_PATIENT_OPEN = patient_rcpt("open")
R_HOSTED = RecipientFacts(DR_HOSTED_2, "hosted_pro")
R_HOSTED_DR = RecipientFacts(DR_HOSTED, "hosted_pro")
R_TRUSTED = RecipientFacts(DR_TRUSTED, "trusted_pro")
R_UNTRUSTED = RecipientFacts(a("friend@mail.example"), "untrusted_domain")
R_NOTIFY = RecipientFacts(a("patient.perso@mail.example"), "untrusted_domain", notification_target=True)
R_PHARMACY = RecipientFacts(PHARMACY, "hosted_pro", accepts_patient_initiated=True)

CONV_BY_HOSTED = ConversationFacts(exists=True, opened_by=DR_HOSTED, patient=PATIENT_A)
CONV_BY_TRUSTED = ConversationFacts(exists=True, opened_by=DR_TRUSTED, patient=PATIENT_A)
CONV_REPLY_TO = ConversationFacts(exists=True, opened_by=DR_TRUSTED, reply_to=SECRETARIAT, patient=PATIENT_A)

OK = (reasons.RCPT_OK.reason, "250 2.1.5 recipient OK")
UNTRUSTED_DOMAIN = ("rcpt.untrusted_domain", "550 5.7.1 recipient domain is not in the trust space")
NOT_IN_CONV = (
    "rcpt.patient_not_in_conversation",
    "550 5.7.1 patients can only reply to a professional who wrote to them first",
)

RCPT_ROWS: list[tuple[str, Sender, RecipientFacts, ConversationFacts, tuple[str, str]]] = [
    # hosted pro (authenticated) -> patient: allowed if open
    ("hosted_pro->patient open", HOSTED_PRO, R_PATIENT_OPEN, NO_CONVERSATION, OK),
    ("trusted_pro->patient open", TRUSTED_PRO, R_PATIENT_OPEN, NO_CONVERSATION, OK),
    # mailbox states, both paths
    *[
        (f"{name}->patient {state}", s, patient_rcpt(state), NO_CONVERSATION, expected)
        for name, s in (("hosted_pro", HOSTED_PRO), ("trusted_pro", TRUSTED_PRO))
        for state, expected in (
            (None, ("rcpt.no_such_patient", "550 5.1.1 no such patient mailbox")),
            ("provisioned", ("rcpt.mailbox_not_open", "550 5.2.1 mailbox not open")),
            (
                "opposed",
                (
                    "rcpt.mailbox_opposed",
                    "550 5.2.1 the patient has opposed the creation of this mailbox",
                ),
            ),
            ("closed", ("rcpt.mailbox_closed", "550 5.2.1 the patient has closed this mailbox")),
            ("purged", ("rcpt.mailbox_purged", "550 5.1.1 this patient mailbox no longer exists")),
        )
    ],
    # patient -> professional: only inside a conversation the pro opened, not ended
    ("patient->hosted pro, its conversation", PATIENT, R_HOSTED_DR, CONV_BY_HOSTED, OK),
    ("patient->trusted pro, its conversation", PATIENT, R_TRUSTED, CONV_BY_TRUSTED, OK),
    (
        "patient->Reply-To of the conversation",
        PATIENT,
        RecipientFacts(SECRETARIAT, "trusted_pro"),
        CONV_REPLY_TO,
        OK,
    ),
    ("patient->pro, no conversation", PATIENT, R_HOSTED_DR, NO_CONVERSATION, NOT_IN_CONV),
    ("patient->another pro than the opener", PATIENT, R_HOSTED, CONV_BY_HOSTED, NOT_IN_CONV),
    (
        "patient->pro, conversation of another patient",
        PATIENT,
        R_HOSTED_DR,
        replace(CONV_BY_HOSTED, patient=PATIENT_B),
        NOT_IN_CONV,
    ),
    (
        "patient->pro, conversation ended",
        PATIENT,
        R_HOSTED_DR,
        replace(CONV_BY_HOSTED, ended=True),
        ("rcpt.conversation_ended", "550 5.7.1 the professional has ended this conversation"),
    ),
    ("patient->pharmacy (accepts patient-initiated)", PATIENT, R_PHARMACY, NO_CONVERSATION, OK),
    # patient -> patient: never (even to an open mailbox)
    (
        "patient->patient",
        PATIENT,
        R_PATIENT_OPEN,
        NO_CONVERSATION,
        ("rcpt.patient_to_patient", "550 5.7.1 patients cannot write to other patients"),
    ),
    # pro -> pro (the trust space)
    ("hosted_pro->hosted_pro", HOSTED_PRO, R_HOSTED, NO_CONVERSATION, OK),
    ("hosted_pro->trusted_pro", HOSTED_PRO, R_TRUSTED, NO_CONVERSATION, OK),
    ("trusted_pro->hosted_pro", TRUSTED_PRO, R_HOSTED, NO_CONVERSATION, OK),
    (
        "trusted_pro->trusted_pro via our MX is relaying",
        TRUSTED_PRO,
        RecipientFacts(a("dr.x@cabinet.test"), "trusted_pro"),
        NO_CONVERSATION,
        (
            "rcpt.relay_denied",
            "550 5.7.1 relaying denied: this server only accepts mail for its own users",
        ),
    ),
    # anyone -> untrusted domain: refused, no relay ever
    ("hosted_pro->untrusted", HOSTED_PRO, R_UNTRUSTED, NO_CONVERSATION, UNTRUSTED_DOMAIN),
    ("trusted_pro->untrusted", TRUSTED_PRO, R_UNTRUSTED, NO_CONVERSATION, UNTRUSTED_DOMAIN),
    ("patient->untrusted", PATIENT, R_UNTRUSTED, NO_CONVERSATION, UNTRUSTED_DOMAIN),
    ("gateway->untrusted, not a notification", GATEWAY, R_UNTRUSTED, NO_CONVERSATION, UNTRUSTED_DOMAIN),
    (
        "hosted_pro->notification target is still untrusted",
        HOSTED_PRO,
        R_NOTIFY,
        NO_CONVERSATION,
        UNTRUSTED_DOMAIN,
    ),
    (
        "trusted_pro claims a suspended recipient domain",
        HOSTED_PRO,
        RecipientFacts(a("dr@suspendu.test"), "trusted_pro"),
        NO_CONVERSATION,
        UNTRUSTED_DOMAIN,
    ),
    (
        "recipient classified trusted but absent from the list",
        HOSTED_PRO,
        RecipientFacts(a("dr@mail.example"), "trusted_pro"),
        NO_CONVERSATION,
        UNTRUSTED_DOMAIN,
    ),
    # the only mail that leaves the trust space
    (
        "gateway->patient personal address notification",
        GATEWAY,
        R_NOTIFY,
        NO_CONVERSATION,
        ("rcpt.ok_notification", "250 2.1.5 recipient OK"),
    ),
    ("gateway->patient open (system message)", GATEWAY, R_PATIENT_OPEN, NO_CONVERSATION, OK),
    ("gateway->hosted pro (bounce, MDN)", GATEWAY, R_HOSTED, NO_CONVERSATION, OK),
    ("gateway->trusted pro (bounce, MDN)", GATEWAY, R_TRUSTED, NO_CONVERSATION, OK),
    # untrusted sender -> anyone: refused (already at MAIL, again at RCPT)
    *[
        (
            f"untrusted->{r.kind}",
            UNTRUSTED,
            r,
            NO_CONVERSATION,
            ("mail.untrusted_sender", "550 5.7.1 sender domain is not in the trust space"),
        )
        for r in (R_PATIENT_OPEN, R_HOSTED, R_TRUSTED, R_UNTRUSTED)
    ],
    # local recipients that do not exist or are disabled
    *[
        (
            f"{name}->unknown hosted user",
            s,
            RecipientFacts(a("nobody@clinique.example"), "unknown_local"),
            NO_CONVERSATION,
            ("rcpt.no_such_user", "550 5.1.1 no such user here"),
        )
        for name, s in (("hosted_pro", HOSTED_PRO), ("trusted_pro", TRUSTED_PRO))
    ],
    *[
        (
            f"{name}->disabled hosted account",
            s,
            replace(R_HOSTED, account_active=False),
            c,
            (
                "rcpt.account_disabled",
                "550 5.2.1 this mailbox is disabled and does not accept mail",
            ),
        )
        for name, s, c in (
            ("hosted_pro", HOSTED_PRO, NO_CONVERSATION),
            ("trusted_pro", TRUSTED_PRO, NO_CONVERSATION),
            ("patient", PATIENT, replace(CONV_BY_HOSTED, opened_by=DR_HOSTED_2)),
        )
    ],
    # an address on the patient domain whose INS does not hold (SPEC §3): refused with the reason
    *[
        (
            f"{name}->patient, invalid INS",
            s,
            RecipientFacts(BAD_INS, "patient", invalid_ins="key"),
            NO_CONVERSATION,
            ("rcpt.invalid_ins", f"550 5.1.1 <{BAD_INS}>: invalid INS (check key)"),
        )
        for name, s in (("hosted_pro", HOSTED_PRO), ("trusted_pro", TRUSTED_PRO))
    ],
]


@pytest.mark.parametrize(
    ("sender", "recipient", "conversation", "expected"),
    [row[1:] for row in RCPT_ROWS],
    ids=[row[0] for row in RCPT_ROWS],
)
def test_rcpt_table(
    sender: Sender, recipient: RecipientFacts, conversation: ConversationFacts, expected: tuple[str, str]
) -> None:
    result = decide_rcpt(sender, recipient, conversation, TRUST)
    assert (result.reason, result.line()) == expected
    assert result.accept == result.line().startswith("2")


@pytest.mark.parametrize("problem", ["key", "length", "format"])
@pytest.mark.parametrize("sender", [HOSTED_PRO, TRUSTED_PRO], ids=["submission", "mx"])
def test_invalid_ins_is_refused_with_the_reason(sender: Sender, problem: str) -> None:
    bad = BAD_INS
    rcpt = RecipientFacts(bad, "patient", invalid_ins=problem)  # type: ignore[arg-type]
    result = decide_rcpt(sender, rcpt, NO_CONVERSATION, TRUST)
    assert result.reason == "rcpt.invalid_ins"
    assert (result.code, result.enhanced) == (550, "5.1.1")
    if problem == "key":
        assert result.line() == f"550 5.1.1 <{bad}>: invalid INS (check key)"
    assert result.text.startswith(f"<{bad}>: invalid INS (")


def test_invalid_ins_wins_over_mailbox_state() -> None:
    rcpt = RecipientFacts(PATIENT_B, "patient", invalid_ins="key", mailbox_state="open")
    assert decide_rcpt(HOSTED_PRO, rcpt, NO_CONVERSATION, TRUST).reason == "rcpt.invalid_ins"


def test_patient_to_patient_refused_before_revealing_mailbox_state() -> None:
    for state in (None, "provisioned", "opposed", "closed", "purged"):
        r = decide_rcpt(PATIENT, patient_rcpt(state), NO_CONVERSATION, TRUST)
        assert r.reason == "rcpt.patient_to_patient"


def test_patient_reply_case_insensitive_local_part() -> None:
    rcpt = RecipientFacts(Address("DR.MARTIN", "clinique.example"), "hosted_pro")
    assert decide_rcpt(PATIENT, rcpt, CONV_BY_HOSTED, TRUST).accept


# --- MAIL FROM ----------------------------------------------------------------------------------

MAIL_ROWS: list[tuple[str, Sender, str, str]] = [
    ("submission ok", HOSTED_PRO, "mail.ok", "250 2.1.0 sender OK"),
    (
        "submission without auth",
        replace(HOSTED_PRO, account=None),
        "mail.auth_required",
        "530 5.7.0 authentication required",
    ),
    (
        "submission, the account suspended or removed since AUTH",
        replace(HOSTED_PRO, account_active=False),
        "mail.account_disabled",
        "421 4.7.0 account disabled by the administrator, closing connection",
    ),
    (
        "submission MAIL FROM another address",
        replace(HOSTED_PRO, address=DR_HOSTED_2),
        "mail.not_your_address",
        "550 5.7.1 sender address does not belong to your account",
    ),
    (
        "submission null reverse-path",
        replace(HOSTED_PRO, address=None),
        "mail.not_your_address",
        "550 5.7.1 sender address does not belong to your account",
    ),
    (
        "submission case-insensitive",
        replace(HOSTED_PRO, address=Address("Dr.Martin", "clinique.example")),
        "mail.ok",
        "250 2.1.0 sender OK",
    ),
    ("mx trusted ok", TRUSTED_PRO, "mail.ok", "250 2.1.0 sender OK"),
    (
        "mx trusted, DN in the other order",
        replace(TRUSTED_PRO, tls_peer_dn="C=FR, O=Hopital Test, CN=mx.hopital.test"),
        "mail.ok",
        "250 2.1.0 sender OK",
    ),
    (
        "mx trusted without TLS",
        replace(TRUSTED_PRO, tls=False, tls_peer_dn=None),
        "mail.tls_required",
        "530 5.7.0 must issue STARTTLS first",
    ),
    (
        "mx trusted, wrong certificate",
        replace(TRUSTED_PRO, tls_peer_dn=CABINET_DN),
        "mail.certificate_mismatch",
        "550 5.7.1 client certificate does not match the trusted operator of the sender domain",
    ),
    (
        "mx trusted, no client certificate",
        replace(TRUSTED_PRO, tls_peer_dn=None),
        "mail.certificate_mismatch",
        "550 5.7.1 client certificate does not match the trusted operator of the sender domain",
    ),
    (
        "mx trusted entry without DN, any TLS",
        Sender("trusted_pro", a("dr@nodn.test"), "mx", tls=True),
        "mail.ok",
        "250 2.1.0 sender OK",
    ),
    (
        "mx trusted entry not requiring TLS",
        Sender("trusted_pro", a("dr@plain.test"), "mx", tls=False),
        "mail.ok",
        "250 2.1.0 sender OK",
    ),
    (
        "mx suspended domain",
        Sender("trusted_pro", a("dr@suspendu.test"), "mx", tls=True),
        "mail.domain_suspended",
        "550 5.7.1 sender domain is suspended from the trust space",
    ),
    (
        "mx untrusted",
        UNTRUSTED,
        "mail.untrusted_sender",
        "550 5.7.1 sender domain is not in the trust space",
    ),
    (
        "mx untrusted even if misclassified as trusted",
        replace(UNTRUSTED, kind="trusted_pro"),
        "mail.untrusted_sender",
        "550 5.7.1 sender domain is not in the trust space",
    ),
    *[
        (
            f"mx claims a local {kind} address",
            Sender(kind, DR_HOSTED, "mx", tls=True),
            "mail.local_domain_via_mx",
            "550 5.7.1 sender domain is hosted here: use authenticated submission",
        )
        for kind in ("hosted_pro", "patient", "gateway")
    ],
    (
        "mx null sender from a trusted operator certificate",
        Sender("trusted_pro", None, "mx", tls=True, tls_peer_dn=HOPITAL_DN),
        "mail.ok",
        "250 2.1.0 sender OK",
    ),
    (
        "mx null sender, unknown certificate",
        Sender("untrusted", None, "mx", tls=True, tls_peer_dn="CN=evil.example"),
        "mail.untrusted_sender",
        "550 5.7.1 sender domain is not in the trust space",
    ),
    (
        "mx null sender without TLS",
        Sender("untrusted", None, "mx"),
        "mail.tls_required",
        "530 5.7.0 must issue STARTTLS first",
    ),
    # Issue 17 item 5: a client certificate that does not verify, whatever the sender claims.
    *[
        (
            f"mx certificate {problem}",
            replace(sender, tls_peer_dn=None, tls_peer_problem=problem),
            reason,
            f"550 5.7.1 client certificate not trusted: {words}",
        )
        for problem, reason, words in [
            ("untrusted_issuer", "mail.certificate_untrusted", "untrusted issuer"),
            ("expired", "mail.certificate_expired", "certificate expired"),
            ("not_yet_valid", "mail.certificate_not_yet_valid", "certificate not yet valid"),
            ("invalid", "mail.certificate_invalid", "certificate does not verify"),
            ("unchecked", "mail.certificate_invalid", "certificate does not verify"),
        ]
        for sender in (TRUSTED_PRO, Sender("untrusted", None, "mx", tls=True),
                       Sender("hosted_pro", DR_TRUSTED, "mx", tls=True))
    ],
    ("web patient", PATIENT, "mail.ok", "250 2.1.0 sender OK"),
    (
        "web, not a patient",
        replace(PATIENT, kind="hosted_pro"),
        "mail.wrong_channel",
        "550 5.7.1 this sender may not send mail through this service",
    ),
    (
        "patient over submission",
        Sender("patient", PATIENT_A, "submission", account=PATIENT_A, tls=True),
        "mail.wrong_channel",
        "550 5.7.1 this sender may not send mail through this service",
    ),
    ("internal gateway", GATEWAY, "mail.ok", "250 2.1.0 sender OK"),
    (
        "internal, not the gateway",
        replace(GATEWAY, kind="hosted_pro"),
        "mail.wrong_channel",
        "550 5.7.1 this sender may not send mail through this service",
    ),
]


@pytest.mark.parametrize(("sender", "reason", "line"), [r[1:] for r in MAIL_ROWS], ids=[r[0] for r in MAIL_ROWS])
def test_mail_from_table(sender: Sender, reason: str, line: str) -> None:
    result = decide_mail_from(sender, TRUST)
    assert (result.reason, result.line()) == (reason, line)


def test_rcpt_rechecks_the_sender() -> None:
    no_tls = replace(TRUSTED_PRO, tls=False, tls_peer_dn=None)
    assert decide_rcpt(no_tls, R_PATIENT_OPEN, NO_CONVERSATION, TRUST).reason == "mail.tls_required"


# --- after DATA ------------------------------------------------------------------------------------


def h(*addresses: str) -> HeaderFacts:
    return HeaderFacts(tuple(a(x) for x in addresses))


def signed(*domains: str, result: str = "pass") -> tuple[DkimCheck, ...]:
    return tuple(DkimCheck(d, result) for d in domains)  # type: ignore[arg-type]


DATA_OK = ("data.ok", "250 2.6.0 message content OK")
NO_DKIM = ("data.no_dkim", "550 5.7.20 no passing DKIM signature found")
DKIM_NOT_ALIGNED = ("data.dkim_not_aligned", "550 5.7.22 no valid DKIM signature matches the From: domain")
NOT_ALIGNED = (
    "data.from_not_aligned",
    "550 5.7.1 the From: domain is not authenticated by a DKIM signature or the operator certificate",
)
DKIM_FAILED = ("data.dkim_failed", "550 5.7.20 the DKIM signature of the From: domain does not verify")
CABINET_PRO = Sender("trusted_pro", a("dr@cabinet.test"), "mx", tls=True, tls_peer_dn=CABINET_DN)
STRICT_PRO = Sender("trusted_pro", a("dr@strict.test"), "mx", tls=True, tls_peer_dn=STRICT_DN)
SIGNED_PRO = Sender("trusted_pro", a("dr@signed.test"), "mx", tls=True)
NULL_HOPITAL = Sender("trusted_pro", None, "mx", tls=True, tls_peer_dn=HOPITAL_DN)
NULL_STRICT = Sender("trusted_pro", None, "mx", tls=True, tls_peer_dn=STRICT_DN)

DATA_ROWS: list[tuple[str, Sender, HeaderFacts, tuple[str, str]]] = [
    ("submission From: is the account", HOSTED_PRO, h("dr.martin@clinique.example"), DATA_OK),
    (
        "submission From: another address",
        HOSTED_PRO,
        h("dr.petit@clinique.example"),
        ("data.from_not_your_address", "550 5.7.1 the From: address does not belong to your account"),
    ),
    (
        "no From:",
        HOSTED_PRO,
        h(),
        ("data.from_invalid", "550 5.6.0 the message must have exactly one valid From: address"),
    ),
    (
        "two From: mailboxes",
        TRUSTED_PRO,
        h("dr.durand@hopital.test", "x@hopital.test"),
        ("data.from_invalid", "550 5.6.0 the message must have exactly one valid From: address"),
    ),
    (
        "mx dns policy, aligned DKIM",
        replace(TRUSTED_PRO, dkim=signed("hopital.test")),
        h("dr.durand@hopital.test"),
        DATA_OK,
    ),
    (
        "mx From: a subdomain that is not on the list",
        replace(TRUSTED_PRO, dkim=signed("hopital.test")),
        h("dr.durand@service.hopital.test"),
        ("data.from_untrusted", "550 5.7.1 the From: domain is not in the trust space"),
    ),
    # Issue 17: the operator certificate bound to the From: domain's entry suffices ...
    ("mx dns policy, no DKIM, certificate of the operator", TRUSTED_PRO, h("dr.durand@hopital.test"), DATA_OK),
    (
        "mx dns policy, certificate, a third party's signature (not the author's)",
        replace(TRUSTED_PRO, dkim=signed("cabinet.test", result="fail")),
        h("dr.durand@hopital.test"),
        DATA_OK,
    ),
    # ... but a signature of the author's domain that is present must verify,
    (
        "mx dns policy, certificate, failing author signature",
        replace(TRUSTED_PRO, dkim=signed("hopital.test", result="fail")),
        h("dr.durand@hopital.test"),
        DKIM_FAILED,
    ),
    (
        "mx dns policy, certificate, parent-domain signature failing for a subdomain author (null sender)",
        Sender("trusted_pro", None, "mx", tls=True, tls_peer_dn=HOPITAL_DN, dkim=signed("hopital.test", result="fail")),
        h("MAILER-DAEMON@mx.hopital.test"),
        DKIM_FAILED,
    ),
    (
        "mx dns policy, certificate, one author signature fails and another passes",
        replace(TRUSTED_PRO, dkim=signed("hopital.test", result="fail") + signed("hopital.test")),
        h("dr.durand@hopital.test"),
        DATA_OK,
    ),
    (
        "mx dns policy, certificate, the author's key cannot be fetched now",
        replace(TRUSTED_PRO, dkim=signed("hopital.test", result="temperror")),
        h("dr.durand@hopital.test"),
        ("data.dkim_temperror", "451 4.7.5 the DKIM key of the From: domain cannot be fetched now; try again later"),
    ),
    (
        "mx dns policy, certificate, author signature not checked (beyond the limit)",
        replace(TRUSTED_PRO, dkim=signed("hopital.test", result="policy")),
        h("dr.durand@hopital.test"),
        DATA_OK,
    ),
    # ... and the entry may ask for DKIM on top of the certificate.
    ("mx dkim_required, certificate, no DKIM", STRICT_PRO, h("dr@strict.test"), NO_DKIM),
    ("mx dkim_required, certificate and DKIM", replace(STRICT_PRO, dkim=signed("strict.test")), h("dr@strict.test"),
     DATA_OK),
    (
        "mx dkim_required, DKIM but another operator's certificate",
        replace(TRUSTED_PRO, dkim=signed("strict.test")),
        h("dr@strict.test"),
        NOT_ALIGNED,
    ),
    (
        "mx From: an entry with a certificate, aligned DKIM but another operator's certificate",
        replace(TRUSTED_PRO, dkim=signed("cabinet.test")),
        h("dr@cabinet.test"),
        NOT_ALIGNED,
    ),
    # Entries with no certificate: DKIM is required.
    ("mx no certificate bound, no DKIM", SIGNED_PRO, h("dr@signed.test"), NO_DKIM),
    ("mx no certificate bound, aligned DKIM", replace(SIGNED_PRO, dkim=signed("signed.test")), h("dr@signed.test"),
     DATA_OK),
    (
        "mx no certificate bound, DKIM of another domain",
        replace(SIGNED_PRO, dkim=signed("cabinet.test")),
        h("dr@signed.test"),
        DKIM_NOT_ALIGNED,
    ),
    # Null-sender DSNs and MDNs from a trusted operator (issue 17).
    ("mx null sender, From: the operator's domain", NULL_HOPITAL, h("MAILER-DAEMON@hopital.test"), DATA_OK),
    ("mx null sender, From: the operator's host name", NULL_HOPITAL, h("MAILER-DAEMON@mx.hopital.test"), DATA_OK),
    ("mx null sender, MDN from one of its professionals", NULL_HOPITAL, h("dr.durand@hopital.test"), DATA_OK),
    ("mx null sender, From: another operator's domain", NULL_HOPITAL, h("MAILER-DAEMON@cabinet.test"), NOT_ALIGNED),
    (
        "mx null sender, From: under another operator's domain",
        NULL_HOPITAL,
        h("MAILER-DAEMON@relay.cabinet.test"),
        ("data.from_untrusted", "550 5.7.1 the From: domain is not in the trust space"),
    ),
    (
        "mx null sender, From: a look-alike of the operator's domain",
        NULL_HOPITAL,
        h("MAILER-DAEMON@xhopital.test"),
        ("data.from_untrusted", "550 5.7.1 the From: domain is not in the trust space"),
    ),
    ("mx null sender, dkim_required operator, no DKIM", NULL_STRICT, h("MAILER-DAEMON@mx.strict.test"), NO_DKIM),
    (
        "mx null sender, dkim_required operator, parent-domain DKIM",
        replace(NULL_STRICT, dkim=signed("strict.test")),
        h("MAILER-DAEMON@mx.strict.test"),
        DATA_OK,
    ),
    (
        "mx pinned policy, aligned DKIM",
        Sender("trusted_pro", a("a@pinned.test"), "mx", tls=True, dkim=signed("pinned.test")),
        h("a@pinned.test"),
        DATA_OK,
    ),
    (
        "mx pinned policy, no DKIM",
        Sender("trusted_pro", a("a@pinned.test"), "mx", tls=True),
        h("a@pinned.test"),
        NO_DKIM,
    ),
    ("mx none policy, TLS peer is the operator", CABINET_PRO, h("dr@cabinet.test"), DATA_OK),
    (
        "mx none policy, From: another trusted domain whose operator is not the peer",
        replace(TRUSTED_PRO),
        h("dr@cabinet.test"),
        NOT_ALIGNED,
    ),
    (
        "mx none policy, entry without DN and no DKIM",
        Sender("trusted_pro", a("dr@nodn.test"), "mx", tls=True),
        h("dr@nodn.test"),
        NOT_ALIGNED,
    ),
    (
        "mx none policy, entry without DN but aligned DKIM",
        Sender("trusted_pro", a("dr@nodn.test"), "mx", tls=True, dkim=signed("NODN.test.")),
        h("dr@nodn.test"),
        DATA_OK,
    ),
    (
        "mx From: an untrusted domain",
        replace(TRUSTED_PRO, dkim=signed("mail.example")),
        h("boss@mail.example"),
        ("data.from_untrusted", "550 5.7.1 the From: domain is not in the trust space"),
    ),
    (
        "mx From: a suspended domain",
        TRUSTED_PRO,
        h("x@suspendu.test"),
        ("data.from_untrusted", "550 5.7.1 the From: domain is not in the trust space"),
    ),
    (
        "mx sender itself refused",
        UNTRUSTED,
        h("someone@mail.example"),
        ("mail.untrusted_sender", "550 5.7.1 sender domain is not in the trust space"),
    ),
    ("web patient (gateway writes the headers)", PATIENT, h(), DATA_OK),
    ("internal gateway", GATEWAY, h(), DATA_OK),
]


@pytest.mark.parametrize(("sender", "headers", "expected"), [r[1:] for r in DATA_ROWS], ids=[r[0] for r in DATA_ROWS])
def test_after_data_table(sender: Sender, headers: HeaderFacts, expected: tuple[str, str]) -> None:
    result = decide_after_data(sender, headers, TRUST)
    assert (result.reason, result.line()) == expected


def test_dkim_parent_domain_aligns_for_a_trusted_subdomain() -> None:
    trust = TRUST.with_entry(TrustEntry("service.signed.test", dkim_policy="dns"))
    sender = replace(SIGNED_PRO, dkim=signed("signed.test"))
    assert decide_after_data(sender, h("x@service.signed.test"), trust).accept
    # but not the other way round, nor a look-alike suffix
    sender = replace(SIGNED_PRO, dkim=signed("service.signed.test", "ned.test"))
    assert decide_after_data(sender, h("x@signed.test"), trust).reason == "data.dkim_not_aligned"


def test_dkim_required_needs_a_key_source() -> None:
    with pytest.raises(ValueError, match="dns or pinned"):
        TrustEntry("x.test", dkim_policy="none", dkim_required=True)


def test_operator_entry_walks_up_to_the_certificates_domain() -> None:
    assert TRUST.operator_entry("a.b.mx.hopital.test", HOPITAL_DN) == TRUST["hopital.test"]
    assert TRUST.operator_entry("hopital.test", HOPITAL_DN) == TRUST["hopital.test"]
    assert TRUST.operator_entry("mx.hopital.test", CABINET_DN) is None
    assert TRUST.operator_entry("test", HOPITAL_DN) is None
    assert TRUST.operator_entry("not a domain", HOPITAL_DN) is None
    assert TRUST.operator_entry("mx.hopital.test", None) is None


# --- conversations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "mes", "effect"),
    [
        ("[FIN]", None, "end"),
        ("  [FIN]\r\n", None, "end"),
        ("[fin]", None, "open"),
        ("Re: [FIN]", None, "open"),
        ("[FIN] merci", None, "open"),
        ("Résultats", "FIN", "end"),
        (None, " fin ", "end"),
        (None, "Fin", "end"),
        (None, "FINAL", "open"),
        (None, None, "open"),
        ("", "", "open"),
    ],
)
def test_conversation_effect(subject: str | None, mes: str | None, effect: str) -> None:
    assert conversation_effect(subject, mes) == effect


def test_verdict_line_and_template() -> None:
    v = verdict(reasons.RCPT_INVALID_INS, address=PATIENT_B, detail="invalid INS (check key)")
    assert v == Verdict(False, "rcpt.invalid_ins", 550, "5.1.1", f"<{PATIENT_B}>: invalid INS (check key)")
    assert verdict(reasons.RCPT_OK).accept


# The reasons each table exercises, from the decisions themselves (not from the expected
# column, which could name a reason no decision gives): every reason of the catalogue is the
# outcome of at least one row, and every row's expected reason is a catalogue entry.


def test_every_rcpt_reason_is_exercised() -> None:
    decided = {decide_rcpt(s, r, c, TRUST).reason for _, s, r, c, _ in RCPT_ROWS}  # with rechecked senders
    assert {r for r in decided if r.startswith("rcpt.")} == {r for r in reasons.CATALOGUE if r.startswith("rcpt.")}


# Decided by healthdocs.decide on the documents a message carries (issue 21; tests/healthdocs).
DOCUMENT_REASONS = {"data.document_other_patient", "data.document_invisible_patient"}


def test_every_mail_and_data_reason_is_exercised() -> None:
    decided = ({decide_mail_from(s, TRUST).reason for _, s, _, _ in MAIL_ROWS}
               | {decide_after_data(s, h, TRUST).reason for _, s, h, _ in DATA_ROWS})
    assert decided | DOCUMENT_REASONS == {r for r in reasons.CATALOGUE if r.startswith(("mail.", "data."))}
    assert not decided & DOCUMENT_REASONS


def test_every_expected_reason_is_in_the_catalogue() -> None:
    expected = ({row[-1][0] for row in RCPT_ROWS} | {row[2] for row in MAIL_ROWS}
                | {row[-1][0] for row in DATA_ROWS})
    assert sorted(expected - set(reasons.CATALOGUE)) == []


# --- private links (TLS not required, no operator DN) --------------------------------------------

PRIVATE = TRUST.with_entry(TrustEntry("lien.test", "Private link", tls_required=False, dkim_policy="none"))


def test_private_link_aligns_on_the_envelope_sender() -> None:
    sender = Sender("trusted_pro", a("dr@lien.test"), "mx", tls=False)
    assert decide_mail_from(sender, PRIVATE).accept
    assert decide_after_data(sender, h("dr@lien.test"), PRIVATE).reason == "data.ok"
    assert decide_after_data(sender, h("dr@cabinet.test"), PRIVATE).reason == "data.from_not_aligned"
    other = Sender("trusted_pro", a("dr@cabinet.test"), "mx", tls=True, tls_peer_dn=CABINET_DN)
    assert decide_after_data(other, h("dr@lien.test"), PRIVATE).reason == "data.from_not_aligned"


def test_tls_required_entry_without_dn_still_refuses_envelope_alignment() -> None:
    sender = Sender("trusted_pro", a("dr@nodn.test"), "mx", tls=True)
    assert decide_after_data(sender, h("dr@nodn.test"), PRIVATE).reason == "data.from_not_aligned"


def test_only_the_opener_or_its_reply_to_owns_a_conversation() -> None:
    from routing.decide import owns_conversation

    assert owns_conversation("dr.martin@clinic.test", "Dr.Martin@CLINIC.test", None)
    assert owns_conversation("<secretariat@clinic.test>", "dr.martin@clinic.test", "secretariat@clinic.test")
    assert not owns_conversation("dr.durand@clinic.test", "dr.martin@clinic.test", "secretariat@clinic.test")
    assert not owns_conversation("", "dr.martin@clinic.test", None)
    assert not owns_conversation("not an address", "dr.martin@clinic.test", None)
    assert not owns_conversation("dr.martin@clinic.test", "broken", None)
