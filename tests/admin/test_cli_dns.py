"""``gateway domain hosted dns DOMAIN`` (issue 19): the zone-file records of a hosted domain,
read back with dnspython's zone parser."""

from __future__ import annotations

import dns.rdataclass
import dns.rdatatype
import dns.zone

from crypto.dkim_keys import parse_public_key
from gateway.store.models import HostedDomain
from gateway.testing.world import World
from tests.admin.conftest import cli, opened

HOST = "mx.gateway.test."  # server.hostname of the test home


def _zone(out: str, origin: str) -> dns.zone.Zone:
    soa = f"@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 300\n@ IN NS ns.{origin}.\n"
    return dns.zone.from_text(soa + out, origin=origin, relativize=False, check_origin=False)


def _rdatas(zone: dns.zone.Zone, name: str, rdtype: str) -> list[str]:
    found = zone.get_rdataset(name, dns.rdatatype.from_text(rdtype))
    return sorted(r.to_text() for r in found) if found is not None else []


def test_records_of_a_hosted_domain(world: World) -> None:
    assert cli(world.home, "domain", "hosted", "add", "cabinet.test", "--selector", "hmgtest")[0] == 0
    code, out, err = cli(world.home, "domain", "hosted", "dns", "Cabinet.TEST")
    assert code == 0, err
    zone = _zone(out, "cabinet.test")
    assert _rdatas(zone, "cabinet.test.", "MX") == [f"10 {HOST}"]
    assert _rdatas(zone, "_imaps._tcp.cabinet.test.", "SRV") == [f"0 1 993 {HOST}"]
    assert _rdatas(zone, "_imap._tcp.cabinet.test.", "SRV") == [f"10 1 143 {HOST}"]
    assert _rdatas(zone, "_submissions._tcp.cabinet.test.", "SRV") == [f"0 1 465 {HOST}"]
    assert _rdatas(zone, "_submission._tcp.cabinet.test.", "SRV") == [f"10 1 587 {HOST}"]
    assert _rdatas(zone, "_pop3s._tcp.cabinet.test.", "SRV") == ["0 0 0 ."]
    assert _rdatas(zone, "_pop3._tcp.cabinet.test.", "SRV") == ["0 0 0 ."]
    assert _rdatas(zone, "autoconfig.cabinet.test.", "CNAME") == [HOST]
    assert _rdatas(zone, "autodiscover.cabinet.test.", "CNAME") == [HOST]
    assert _rdatas(zone, "_autodiscover._tcp.cabinet.test.", "SRV") == [f"0 1 443 {HOST}"]
    txt = zone.get_rdataset("hmgtest._domainkey.cabinet.test.", dns.rdatatype.TXT)
    assert txt is not None
    record = b"".join(next(iter(txt)).strings).decode()
    key = parse_public_key(record)
    with opened(world.home) as svc, svc.db.read() as session:
        stored = session.query(HostedDomain).filter_by(name="cabinet.test").one()
    assert key.key_type == "rsa" and stored.dkim_public_key and stored.dkim_public_key in record


def test_the_client_host_name_setting(world: World) -> None:
    config = world.home / "gateway.toml"
    text = config.read_text()
    config.write_text(text.replace("[server]\n", '[server]\nclient_hostname = "imap.clinic.test"\n', 1))
    code, out, err = cli(world.home, "domain", "hosted", "dns", "clinic.test")  # a hosted domain without DKIM key
    assert code == 0, err
    zone = _zone(out, "clinic.test")
    assert _rdatas(zone, "_imaps._tcp.clinic.test.", "SRV") == ["0 1 993 imap.clinic.test."]
    assert _rdatas(zone, "autoconfig.clinic.test.", "CNAME") == ["imap.clinic.test."]
    assert _rdatas(zone, "clinic.test.", "MX") == [f"10 {HOST}"]  # the MX stays on server.hostname
    assert "; no DKIM key for this domain" in out


def test_unknown_domains_are_refused(world: World) -> None:
    for name in ("hopital.example", "patients.gateway.test", "not a domain"):
        code, out, err = cli(world.home, "domain", "hosted", "dns", name)
        assert code == 1 and out == "", (name, err)
        assert ("not a hosted domain" in err) if "." in name else ("invalid domain name" in err), (name, err)
