"""``gateway domain trust set``: edit in place, only the options given, never untrusted in between."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from sqlalchemy import select

from crypto.dkim_keys import generate_dkim_key
from gateway.accounts.pros import trusted_domain
from gateway.delivery.directory import Directory
from gateway.operations.common import cli_actor
from gateway.store.models import AuditEntry, TrustedDomain
from gateway.testing.world import World
from tests.admin.conftest import cli, opened


def _entry(world: World, name: str = "hopital.example") -> TrustedDomain:
    with opened(world.home) as svc, svc.db.read() as session:
        found = trusted_domain(session, name)
        assert found is not None
        session.expunge(found)
        return found


def test_only_the_given_fields_change_and_the_audit_says_what(world: World) -> None:
    before = _entry(world)
    code, out, err = cli(world.home, "domain", "trust", "set", "Hopital.Example", "--description", "CH Exemple",
                         "--route", "127.0.0.1:3525")
    assert code == 0 and out == "trusted domain hopital.example: changed description, route\n", err
    after = _entry(world)
    assert (after.description, after.route) == ("CH Exemple", "127.0.0.1:3525")
    assert (after.operator_dn, after.dkim_policy, after.dkim_selector, after.dkim_public_key, after.tls_required,
            after.status, after.id) == (before.operator_dn, "pinned", "peer1", before.dkim_public_key, True,
                                        "active", before.id)
    assert after.modified_at > before.modified_at
    with opened(world.home) as svc, svc.db.read() as session:
        (entry,) = session.execute(select(AuditEntry).where(AuditEntry.action == "domain.trust.set")).scalars()
    changed = json.loads(entry.details)["changed"]
    assert entry.actor == cli_actor().audit_actor and entry.subject_ref == "domain:hopital.example"
    assert changed == {"description": {"from": "Hopital example", "to": "CH Exemple"},
                       "route": {"from": None, "to": "127.0.0.1:3525"}}

    code, out, _ = cli(world.home, "domain", "trust", "set", "hopital.example", "--description", "CH Exemple")
    assert code == 0 and out.endswith("nothing changed\n")
    code, out, _ = cli(world.home, "domain", "trust", "set", "hopital.example", "--max-size", "2048",
                       "--no-tls-required", "--cert-dn", "", "--route", "")
    assert code == 0 and "max_message_size, operator_dn, route, tls_required" in out
    after = _entry(world)
    assert (after.max_message_size, after.tls_required, after.operator_dn, after.route) == (2048, False, None, None)
    code, out, _ = cli(world.home, "domain", "trust", "set", "hopital.example", "--max-size", "none",
                       "--tls-required", "--dkim", "dns")
    after = _entry(world)
    assert code == 0 and (after.max_message_size, after.tls_required, after.dkim_policy) == (None, True, "dns")
    assert after.dkim_selector is None and after.dkim_public_key is None
    code, out, _ = cli(world.home, "domain", "trust", "list", "--json")
    assert code == 0 and json.loads(out)[0]["dkim"] == "dns"


def test_pinned_key_from_a_file_and_refusals_change_nothing(world: World, tmp_path: Path) -> None:
    _private, public = generate_dkim_key(2048)
    p = public.decode()
    key = tmp_path / "peer.txt"
    key.write_text(f'"v=DKIM1; k=rsa; "\n "p={p[:200]}"\n "{p[200:]}"')
    code, out, err = cli(world.home, "domain", "trust", "set", "hopital.example", "--dkim", f"pinned:sel2:{key}")
    assert code == 0 and "dkim_public_key, dkim_selector" in out, err
    after = _entry(world)
    assert (after.dkim_policy, after.dkim_selector) == ("pinned", "sel2")
    assert after.dkim_public_key == p
    with opened(world.home) as svc, svc.db.read() as session:
        details = session.execute(select(AuditEntry.details).where(AuditEntry.action == "domain.trust.set")).scalar()
    assert details is not None and "MIIB" not in details and "sha256:" in details

    broken = tmp_path / "broken.txt"
    broken.write_text('"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"')
    before = _entry(world)
    for argv, expected in (
        (["--route", "nohost"], "route:"),
        (["--max-size", "10"], "max_message_size: out of range (1024-1073741824)"),
        (["--max-size", "big"], "max_message_size: a whole number expected"),
        (["--dkim", "pinned:x"], "--dkim: expected dns, none or pinned"),
        (["--dkim", f"pinned:s:{broken}"], "not an RSA public key"),
        (["--dkim", "none", "--dkim-required"], "dkim: a required signature needs the dns or pinned policy"),
        ([], "nothing to change"),
    ):
        code, _, err = cli(world.home, "domain", "trust", "set", "hopital.example", "--description", "changed?",
                           *argv) if argv else cli(world.home, "domain", "trust", "set", "hopital.example")
        assert code == 1 and err.startswith("gateway: error: ") and expected in err and err.count("\n") == 1, err
    code, _, err = cli(world.home, "domain", "trust", "set", "absent.example", "--description", "x")
    assert code == 1 and err == "gateway: error: absent.example is not in the trust list\n"
    code, _, err = cli(world.home, "domain", "trust", "set", "hopital.example", "--tls-required", "--no-tls-required")
    assert code == 2 and "not allowed with" in err
    after = _entry(world)
    assert (after.description, after.route, after.max_message_size, after.modified_at) == (
        before.description, before.route, before.max_message_size, before.modified_at)


def test_the_domain_stays_trusted_while_it_is_edited(world: World) -> None:
    """A reader polling the trust list (as the MX does) never finds the domain missing."""
    stop, missing, seen = threading.Event(), [], [0]
    with opened(world.home) as svc:
        directory = Directory(svc.db, world.patient_domain, keys=svc.keys, ttl=0.0)

        def poll() -> None:
            while not stop.is_set() and seen[0] < 100_000:
                seen[0] += 1
                if directory.snapshot(refresh=True).trust.entry("hopital.example") is None:
                    missing.append(seen[0])

        reader = threading.Thread(target=poll)
        reader.start()
        try:
            for i in range(6):
                assert cli(world.home, "domain", "trust", "set", "hopital.example", "--description", f"v{i}",
                           "--max-size", str(4096 + i))[0] == 0
        finally:
            stop.set()
            reader.join(30)
    assert seen[0] > 6 and missing == []
    assert _entry(world).description == "v5"


def test_operator_connection_allowance(world: World) -> None:
    """Issue 17 item 2: an entry's own connection allowance for its operator's addresses,
    which the MX gate reads through the directory (by client address, at accept time)."""
    code, _, err = cli(world.home, "domain", "trust", "set", "hopital.example", "--max-connections", "120")
    assert code == 1 and "--networks" in err and _entry(world).max_connections is None
    code, _, err = cli(world.home, "domain", "trust", "set", "hopital.example", "--networks", "192.0.2.0/33")
    assert code == 1 and "192.0.2.0/33" in err
    code, out, err = cli(world.home, "domain", "trust", "set", "hopital.example", "--max-connections", "120",
                         "--networks", "192.0.2.0/28, 2001:db8:5::/48 198.51.100.7")
    assert code == 0 and out.endswith("changed max_connections, networks\n"), err
    after = _entry(world)
    assert (after.max_connections, after.networks) == (120, "192.0.2.0/28 2001:db8:5::/48 198.51.100.7/32")
    code, out, _ = cli(world.home, "domain", "trust", "list", "--json")
    shown = next(e for e in json.loads(out) if e["domain"] == "hopital.example")
    assert shown["max_connections"] == 120 and shown["networks"] == ["192.0.2.0/28", "2001:db8:5::/48",
                                                                      "198.51.100.7/32"]
    with opened(world.home) as svc:
        directory = Directory(svc.db, world.patient_domain, keys=svc.keys)
        snap = directory.snapshot()
        assert snap.trust.connection_limit("192.0.2.3") == 120 and snap.trust.connection_limit("2001:db8:5:1::9") == 120
        assert snap.trust.connection_limit("203.0.113.1") is None
    code, _, err = cli(world.home, "domain", "trust", "set", "hopital.example", "--networks", "")
    assert code == 1 and "--networks" in err  # the allowance would apply to no address
    code, out, _ = cli(world.home, "domain", "trust", "set", "hopital.example", "--max-connections", "none",
                       "--networks", "")
    assert code == 0 and (_entry(world).max_connections, _entry(world).networks) == (None, None)
    with opened(world.home) as svc, svc.db.read() as session:
        entries = session.execute(select(AuditEntry).where(AuditEntry.action == "domain.trust.set")).scalars()
        changes = [json.loads(e.details)["changed"] for e in entries]
    assert changes[-2]["max_connections"] == {"from": None, "to": 120}
    assert changes[-1]["networks"]["to"] is None
    code, out, _ = cli(world.home, "domain", "trust", "add", "op.example", "--max-connections", "80",
                       "--networks", "203.0.113.0/24")
    assert code == 0 and (_entry(world, "op.example").max_connections, _entry(world, "op.example").networks) == (
        80, "203.0.113.0/24")
    code, _, err = cli(world.home, "domain", "trust", "add", "op2.example", "--max-connections", "80")
    assert code == 1 and "--networks" in err
