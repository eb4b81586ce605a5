"""The trust list model (SPEC §6)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from routing.trust import Contacts, TrustEntry, TrustList, dn_matches, parse_networks, parse_route

DN = "CN=mx.hopital.test,OU=Messagerie,O=Hopital Test,C=FR"


def entry(domain: str = "hopital.test", **kw: object) -> TrustEntry:
    return TrustEntry(domain, "Hopital", **kw)  # type: ignore[arg-type]


def test_entry_defaults_are_strict() -> None:
    e = entry()
    assert e.tls_required is True
    assert e.status == "active" and e.active
    assert e.dkim_policy == "dns"
    assert e.origin == "manual"
    assert e.contacts == Contacts()
    assert e.route_host_port is None


def test_entry_keeps_all_list_fields() -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    e = entry(
        operator_dn=DN,
        contacts=Contacts("resp@hopital.test", "support@hopital.test"),
        updated_at=when,
        dkim_policy="pinned",
        dkim_selector="mss2024",
        dkim_public_key="MIIBIjANBgkqh",
        route="[::1]:2525",
        tls_required=True,
        max_message_size=10_000_000,
        origin="import",
    )
    assert e.updated_at == when
    assert e.contacts.support == "support@hopital.test"
    assert e.route_host_port == ("::1", 2525)


def test_entry_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry().status = "suspended"  # type: ignore[misc]


@pytest.mark.parametrize(
    "kw",
    [
        {"domain": "Hopital.TEST"},  # not normalised
        {"domain": "not a domain"},
        {"domain": "localhost"},
        {"dkim_policy": "sometimes"},
        {"dkim_policy": "pinned"},  # pinned needs selector and key
        {"dkim_policy": "pinned", "dkim_selector": "s1"},
        {"dkim_selector": "bad selector"},
        {"route": "mx.hopital.test"},
        {"route": "mx.hopital.test:0"},
        {"route": "mx.hopital.test:99999"},
        {"route": ":25"},
        {"max_message_size": 0},
        {"status": "deleted"},
        {"origin": "guess"},
    ],
)
def test_entry_validation(kw: dict[str, object]) -> None:
    domain = str(kw.pop("domain", "hopital.test"))
    with pytest.raises(ValueError):
        entry(domain, **kw)


def test_idna_domain_entry() -> None:
    assert entry("xn--hpital-ixa.test").domain == "xn--hpital-ixa.test"
    trust = TrustList([entry("xn--hpital-ixa.test")])
    assert trust.is_trusted("hôpital.test")
    assert trust.is_trusted("HÔPITAL.test.")


def test_lookup_only_active() -> None:
    trust = TrustList([entry(), entry("suspendu.test", status="suspended")])
    assert trust.lookup("hopital.test") is not None
    assert trust.lookup("HOPITAL.test") is not None
    assert trust.lookup("suspendu.test") is None
    assert trust.entry("suspendu.test") is not None
    assert not trust.is_trusted("suspendu.test")
    assert not trust.is_trusted("mail.example")
    assert not trust.is_trusted("not a domain")
    assert trust.lookup("sub.hopital.test") is None  # no implicit subdomains


def test_mapping_is_immutable_and_complete() -> None:
    trust = TrustList([entry(), entry("cabinet.test")])
    assert len(trust) == 2
    assert set(trust) == {"hopital.test", "cabinet.test"}
    assert trust["cabinet.test"].domain == "cabinet.test"
    with pytest.raises(TypeError):
        trust["x.test"] = entry("x.test")  # type: ignore[index]


def test_duplicates_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        TrustList([entry(), entry()])


def test_functional_updates() -> None:
    trust = TrustList([entry()])
    suspended = trust.with_status("hopital.test", "suspended")
    assert trust.is_trusted("hopital.test")
    assert not suspended.is_trusted("hopital.test")
    added = trust.with_entry(entry("cabinet.test"))
    assert added.is_trusted("cabinet.test") and not trust.is_trusted("cabinet.test")
    assert "hopital.test" not in added.without("hopital.test")


@pytest.mark.parametrize(
    "presented",
    [
        DN,
        "cn=MX.hopital.test, ou=Messagerie, o=Hopital  Test, c=fr",
        "C=FR,O=Hopital Test,OU=Messagerie,CN=mx.hopital.test",
        "/C=FR/O=Hopital Test/OU=Messagerie/CN=mx.hopital.test",
    ],
)
def test_dn_matches_equivalent_forms(presented: str) -> None:
    assert dn_matches(DN, presented)


@pytest.mark.parametrize(
    "presented",
    [
        None,
        "",
        "CN=mx.hopital.test,O=Hopital Test,C=FR",  # missing OU
        "CN=mx.evil.example,OU=Messagerie,O=Hopital Test,C=FR",
        "CN=mx.hopital.test,OU=Messagerie,O=Hopital Test,C=FR,CN=extra",
        "CN=mx.hopital.test\\,OU=Messagerie,O=Hopital Test,C=FR",  # escaped comma is not a separator
    ],
)
def test_dn_mismatch(presented: str | None) -> None:
    assert not dn_matches(DN, presented)


def test_by_operator_dn_only_active() -> None:
    trust = TrustList([entry(operator_dn=DN), entry("old.test", operator_dn=DN, status="suspended")])
    assert [e.domain for e in trust.by_operator_dn(DN)] == ["hopital.test"]
    assert trust.by_operator_dn(None) == ()
    assert trust.by_operator_dn("CN=other") == ()


def test_parse_route() -> None:
    assert parse_route("127.0.0.1:2525") == ("127.0.0.1", 2525)
    assert parse_route("mx.hopital.test:25") == ("mx.hopital.test", 25)
    with pytest.raises(ValueError):
        parse_route("mx host:25")


def test_connection_limit_override_per_operator_address() -> None:
    """Issue 17 item 2: an entry lists its operator's sending networks and the connections
    each address of them may hold on the MX; the gate asks the list by client address."""
    a = entry(domain="hopital.example", max_connections=120, networks=("192.0.2.0/28", "2001:DB8:1::/48"))
    b = entry(domain="clinique.example", max_connections=30, networks=("192.0.2.8/29",))
    off = entry(domain="off.example", max_connections=200, networks=("198.51.100.0/24",), status="suspended")
    trust = TrustList([a, b, off, entry(domain="plain.example")])
    assert a.networks == ("192.0.2.0/28", "2001:db8:1::/48")  # normalised
    assert trust.connection_limit("192.0.2.3") == 120
    assert trust.connection_limit("192.0.2.9") == 120  # two entries: the larger allowance
    assert trust.connection_limit("::ffff:192.0.2.3") == 120  # IPv4-mapped is the same client
    assert trust.connection_limit("2001:db8:1:7::5") == 120
    assert trust.connection_limit("192.0.2.200") is None  # not an operator address: the default
    assert trust.connection_limit("198.51.100.1") is None  # a suspended entry gives nothing
    assert trust.connection_limit("not an address") is None


@pytest.mark.parametrize("kw", [
    {"max_connections": 0, "networks": ("192.0.2.0/24",)},
    {"max_connections": 100_001, "networks": ("192.0.2.0/24",)},
    {"networks": ("192.0.2.0/33",)},
    {"networks": ("mx.example",)},
])
def test_connection_limit_validation(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TrustEntry("hopital.test", "Hopital", **kw)  # type: ignore[arg-type]


def test_parse_networks_for_an_entry() -> None:
    assert parse_networks(" 192.0.2.1, 2001:db8::/32 192.0.2.0/24") == ("192.0.2.1/32", "2001:db8::/32",
                                                                          "192.0.2.0/24")
    assert parse_networks("") == ()
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/8x"):
        parse_networks("10.0.0.0/8x")
