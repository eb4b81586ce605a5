"""``gateway audit seal-links`` (issue 20): entries about a patient written by an older release
are sealed while the gateway could serve; ``audit verify`` and ``patient show`` still work."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select, text

from gateway.accounts.patients import by_ins
from gateway.store import audit
from gateway.store.models import AuditEntry
from gateway.testing.world import World
from tests.admin.conftest import cli, opened

AT = datetime(2027, 1, 5, 8, 0, tzinfo=UTC)


def _old_entries(world: World, ins: str, n: int) -> int:
    """``n`` entries about the patient as the previous release wrote them (clear, form 1)."""
    with opened(world.home) as svc, svc.db.write() as s:
        patient = by_ins(s, svc.keys, ins)
        assert patient is not None
        for i in range(n):
            prev = s.execute(select(AuditEntry.hash).where(AuditEntry.partition == 0)
                         .order_by(AuditEntry.id.desc()).limit(1)).scalar() or audit.GENESIS
            details = json.dumps({"message": i}, separators=(",", ":"))
            digest = audit.entry_hash(prev, AT, "pro:dr@clinic.test", "mail.deliver", f"patient:{patient.id}",
                                      "192.0.2.4", details)
            s.execute(text("INSERT INTO audit_log (partition, at, actor, action, subject_ref, peer, details, prev_hash,"
                       " hash)"
                           " VALUES (0, :at, 'pro:dr@clinic.test', 'mail.deliver', :sub, '192.0.2.4', :d, :p, :h)"),
                      {"at": AT, "sub": f"patient:{patient.id}", "d": details, "p": prev, "h": digest})
        return patient.id


def test_seal_links_converts_and_the_trail_verifies(world: World) -> None:
    ins = world.patients["open"]
    pid = _old_entries(world, ins, 5)
    code, out, err = cli(world.home, "audit", "seal-links", "--batch-size", "2")
    assert code == 0, err
    assert "sealed the patient links of 5 audit entries in 3 batches" in out and "0 left in clear" in out
    with opened(world.home) as svc, svc.db.engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(text("SELECT * FROM audit_log")) for v in row)
    assert f"patient:{pid}" not in dump and ins not in dump
    assert cli(world.home, "audit", "verify")[0] == 0
    code, out, _ = cli(world.home, "patient", "show", ins, "--json")
    history = json.loads(out)["history"]
    assert code == 0 and [h["actor"] for h in history if h["action"] == "mail.deliver"] == ["pro:dr@clinic.test"] * 5
    code, out, _ = cli(world.home, "audit", "seal-links")
    assert code == 0 and "of 0 audit entries" in out
    assert cli(world.home, "audit", "seal-links", "--batch-size", "0")[0] == 1
