"""INS validation (SPEC §3) and address parsing (RFC 5321 §4.1.2, IDNA). Synthetic INS only."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.address import (
    Address,
    InvalidAddress,
    normalise_domain,
    parse_address,
    patient_address,
    patient_ins,
)
from routing.ins import InvalidINS, ins_log_id, is_valid_ins, mask_ins, normalise_ins, synthetic_ins

RNG = random.Random(20240601)
PATIENT_DOMAIN = "patients.example"


def _with_wrong_key(ins: str) -> str:
    key = int(ins[-2:])
    return ins[:-2] + f"{(key % 97) + 1:02d}"


def test_synthetic_ins_are_valid() -> None:
    for _ in range(200):
        ins = synthetic_ins(RNG)
        assert normalise_ins(ins) == ins
        assert len(ins) == 15


@pytest.mark.parametrize("dept", ["2A", "2B"])
def test_corsican_ins_valid(dept: str) -> None:
    for _ in range(50):
        ins = synthetic_ins(RNG, corsica=True)
        if ins[5:7] == dept:
            assert normalise_ins(ins) == ins
            break
    else:  # pragma: no cover - 50 draws always hit both departments
        pytest.fail("no Corsican INS drawn")


def test_lower_case_corsica_is_normalised() -> None:
    ins = next(i for i in (synthetic_ins(RNG, corsica=True) for _ in range(50)) if "2A" in i[5:7])
    assert normalise_ins(ins.lower()) == ins
    spaced = f" {ins[:1]} {ins[1:3]} {ins[3:5]} {ins[5:7]} {ins[7:10]} {ins[10:13]} {ins[13:]} "
    assert normalise_ins(spaced) == ins


def test_empty_ins_is_invalid() -> None:
    with pytest.raises(InvalidINS):
        normalise_ins("")


def test_separators_accepted() -> None:
    ins = synthetic_ins(RNG)
    assert normalise_ins(f"{ins[:7]}-{ins[7:]}") == ins


@pytest.mark.parametrize(
    ("make", "reason", "text"),
    [
        (_with_wrong_key, "key", "invalid INS (check key)"),
        (lambda i: i[:-1], "length", "invalid INS (must be 15 characters: 13 + a 2-digit key)"),
        (lambda i: i + "0", "length", "invalid INS (must be 15 characters: 13 + a 2-digit key)"),
        (lambda i: i[:5] + "X" + i[6:], "format", "invalid INS (digits only, except 2A/2B for Corsica)"),
        (lambda i: i[:3] + "_" + i[4:], "format", "invalid INS (digits only, except 2A/2B for Corsica)"),
    ],
    ids=["bad-key", "too-short", "too-long", "letter", "underscore"],
)
def test_invalid_ins(make: object, reason: str, text: str) -> None:
    bad = make(synthetic_ins(RNG))  # type: ignore[operator]
    with pytest.raises(InvalidINS) as caught:
        normalise_ins(bad)
    assert caught.value.reason == reason
    assert str(caught.value) == text
    assert not is_valid_ins(bad)


@given(st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_normalise_ins_never_crashes(text: str) -> None:
    try:
        result = normalise_ins(text)
    except InvalidINS as exc:
        assert exc.reason in {"length", "format", "key"}
    else:
        assert len(result) == 15


def test_mask_never_shows_the_full_ins() -> None:
    for _ in range(100):
        ins = synthetic_ins(RNG)
        masked = mask_ins(ins)
        assert masked != ins
        assert ins[1:13] not in masked
        assert sum(c.isalnum() for c in masked) <= 3
        assert len(masked) == len(ins)
    assert mask_ins("12") == "**"


def test_ins_log_id_is_keyed() -> None:
    ins = synthetic_ins(RNG)
    assert ins_log_id(ins, b"k1") == ins_log_id(ins, b"k1")
    assert ins_log_id(ins, b"k1") != ins_log_id(ins, b"k2")
    assert ins not in ins_log_id(ins, b"k1")


# --- addresses ------------------------------------------------------------------------------


def test_parse_address_normalises_domain_keeps_local_case() -> None:
    addr = parse_address(" <Dr.Martin@Clinique.EXAMPLE.> ")
    assert addr == Address("Dr.Martin", "clinique.example")
    assert addr.key == "dr.martin@clinique.example"
    assert str(addr) == "Dr.Martin@clinique.example"


def test_idna_domains() -> None:
    assert normalise_domain("hôpital.test") == "xn--hpital-ixa.test"
    assert parse_address("accueil@HÔPITAL.test").domain == "xn--hpital-ixa.test"
    assert normalise_domain("XN--HPITAL-IXA.test") == "xn--hpital-ixa.test"  # A-labels stay as they are


def test_idna_2008_not_2003() -> None:
    """Issue 17: IDNA 2008 (RFC 5891, UTS #46 non-transitional), as the trust list's names are
    registered: ß and ς are letters of their own, not mapped to ss and σ as IDNA 2003 did."""
    assert normalise_domain("faß.test") == "xn--fa-hia.test"
    assert normalise_domain("FASS.test") == "fass.test"
    with pytest.raises(InvalidAddress):
        normalise_domain("a\u2764b.test")  # a symbol IDNA 2003 allowed, IDNA 2008 does not
    with pytest.raises(InvalidAddress):
        normalise_domain("xn--zz-bad.test")  # an A-label that does not decode


def test_utf8_local_parts() -> None:
    """RFC 6531 §3.3: a mailbox's local part may be UTF-8 (kept in NFC, RFC 6532 §3.1)."""
    addr = parse_address("médecin@hôpital.test")
    assert addr == Address("médecin", "xn--hpital-ixa.test") and str(addr) == "médecin@xn--hpital-ixa.test"
    assert parse_address("me\u0301decin@hôpital.test").local == "médecin"  # NFD in, NFC out
    assert addr.key == "médecin@xn--hpital-ixa.test" and not addr.ascii
    assert parse_address("dr@hôpital.test").ascii
    # not UTF-8 (a surrogate escape), a C1 control, a no-break space, over 64 octets
    for bad in ("m\udce9decin@h.test", "m\u0085edecin@h.test", "m\u00a0decin@h.test", "é" * 33 + "@h.test"):
        with pytest.raises(InvalidAddress):
            parse_address(bad)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no-at-sign",
        "two@@example.test",
        "a@b@example.test",
        "@example.test",
        "local@",
        "local@localhost",
        "local@-bad.test",
        "sp ace@example.test",
        '"quoted"@example.test',
        "dot.@example.test",
        ".dot@example.test",
        "a..b@example.test",
        "x" * 65 + "@example.test",
        "a@" + "b" * 64 + ".test",
        "a@" + ".".join(["abcdefgh"] * 40) + ".test",
        "crlf\r\n@example.test",
        "a@exa mple.test",
    ],
)
def test_invalid_addresses(text: str) -> None:
    with pytest.raises(InvalidAddress):
        parse_address(text)


def test_patient_address_round_trip() -> None:
    ins = synthetic_ins(RNG)
    addr = patient_address(ins.lower(), "Patients.Example")
    assert addr == Address(ins, PATIENT_DOMAIN)
    assert patient_ins(addr, PATIENT_DOMAIN) == ins
    assert patient_ins(Address(ins, "clinique.example"), PATIENT_DOMAIN) is None


def test_patient_ins_invalid_raises_with_reason() -> None:
    bad = _with_wrong_key(synthetic_ins(RNG))
    with pytest.raises(InvalidINS) as caught:
        patient_ins(parse_address(f"{bad}@{PATIENT_DOMAIN}"), PATIENT_DOMAIN)
    assert caught.value.reason == "key"
