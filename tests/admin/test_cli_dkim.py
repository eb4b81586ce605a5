"""``gateway domain hosted dkim``: the records of every key the gateway signs with (issue 17),
and ``--dkim-required`` on the trust list."""

from __future__ import annotations

import json

from sqlalchemy import select

from crypto.dkim_keys import PublicKey, parse_public_key
from gateway.store.models import AuditEntry
from gateway.testing.world import World
from tests.admin.conftest import cli, opened

PATIENTS, HOST = "patients.gateway.test", "mx.gateway.test"


def _records(out: str) -> dict[str, tuple[str, PublicKey]]:
    """domain -> (selector, key) from the zone-file lines printed, read back with our own parser."""
    found = {}
    for line in out.splitlines():
        if line.startswith(";") or not line.strip():
            continue
        name = line.split()[0]
        selector, _, domain = name.rstrip(".").partition("._domainkey.")
        found[domain] = (selector, parse_public_key(line))
    return found


def test_records_for_hosted_domains_the_patient_domain_and_the_host_name(world: World) -> None:
    assert cli(world.home, "domain", "hosted", "add", "cabinet.test")[0] == 0
    code, out, err = cli(world.home, "domain", "hosted", "dkim")
    assert code == 0, err
    records = _records(out)
    assert set(records) == {"cabinet.test", PATIENTS, HOST}
    assert all(key.key_type == "rsa" and sel.startswith("hmg") for sel, key in records.values())
    assert "; patients.gateway.test: patient domain (read receipts, patients' replies)" in out
    assert "; mx.gateway.test: host name (DSNs, notifications)" in out
    assert all(len(s) <= 255 for line in out.splitlines() for s in line.split('"')[1::2])  # RFC 1035 §3.3.14
    again = cli(world.home, "domain", "hosted", "dkim")[1]
    assert again == out  # made once, then the same keys
    code, out, _ = cli(world.home, "domain", "hosted", "dkim", "Patients.Gateway.TEST")
    assert code == 0 and _records(out) == {PATIENTS: records[PATIENTS]}
    code, out, _ = cli(world.home, "domain", "hosted", "dkim", "--json")
    rows = {r["domain"]: r for r in json.loads(out)}
    assert rows[PATIENTS]["name"] == f"{records[PATIENTS][0]}._domainkey.{PATIENTS}"
    assert rows[PATIENTS]["value"] == records[PATIENTS][1].record and rows["cabinet.test"]["signs"] == "hosted domain"
    with opened(world.home) as svc, svc.db.read() as s:
        made = s.execute(select(AuditEntry).where(AuditEntry.action == "dkim.key.create")).scalars().all()
    assert sorted(e.subject_ref or "" for e in made) == [f"domain:{HOST}", f"domain:{PATIENTS}"]
    assert all(e.actor.startswith("admin:cli:") for e in made)


def test_one_domain_only_and_unknown_domains(world: World) -> None:
    code, out, _ = cli(world.home, "domain", "hosted", "dkim", HOST)
    assert code == 0 and set(_records(out)) == {HOST}
    code, _, err = cli(world.home, "domain", "hosted", "dkim", "hopital.example")
    assert code == 1 and "neither a hosted domain" in err
    with opened(world.home) as svc, svc.db.read() as s:  # asking about one domain made no key for the other
        made = s.execute(select(AuditEntry.subject_ref).where(AuditEntry.action == "dkim.key.create")).scalars()
        assert list(made) == [f"domain:{HOST}"]


def test_an_ed25519_hosted_domain(world: World) -> None:
    assert cli(world.home, "domain", "hosted", "add", "ed.test", "--key-type", "ed25519")[0] == 0
    code, out, _ = cli(world.home, "domain", "hosted", "dkim", "ed.test")
    assert code == 0 and "k=ed25519" in out and _records(out)["ed.test"][1].key_type == "ed25519"


def test_dkim_required_on_the_trust_list(world: World) -> None:
    code, _, err = cli(world.home, "domain", "trust", "add", "strict.example", "--dn", "CN=mx.strict.example",
                       "--dkim-required")
    assert code == 0, err
    code, _, err = cli(world.home, "domain", "trust", "add", "lax.example", "--dkim", "none", "--dkim-required")
    assert code == 1 and "a required signature needs the dns or pinned policy" in err
    code, out, _ = cli(world.home, "domain", "trust", "list", "--json")
    required = {r["domain"]: r["dkim_required"] for r in json.loads(out)}
    assert required == {"hopital.example": False, "strict.example": True}
    code, out, _ = cli(world.home, "domain", "trust", "set", "strict.example", "--no-dkim-required")
    assert code == 0 and out == "trusted domain strict.example: changed dkim_required\n"
    code, out, _ = cli(world.home, "domain", "trust", "set", "hopital.example", "--dkim-required")
    assert code == 0 and "changed dkim_required" in out
    code, _, err = cli(world.home, "domain", "trust", "set", "hopital.example", "--dkim", "none")
    assert code == 1 and "a required signature needs the dns or pinned policy" in err
