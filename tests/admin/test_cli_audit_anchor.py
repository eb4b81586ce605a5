"""``gateway audit anchor`` and what ``gateway audit verify`` says when a partition was cut
short after it (issue 23)."""

from __future__ import annotations

import json
import re

from sqlalchemy import delete, select

from gateway.store import audit
from gateway.store.models import AuditEntry
from gateway.store.partitions import SYSTEM_PARTITION
from gateway.testing.world import World
from tests.admin.conftest import cli, opened


def test_anchor_then_a_partition_cut_short_breaks_verify(world: World) -> None:
    with opened(world.home) as svc, svc.db.write() as s:
        for i in range(4):
            audit.record(s, actor="admin:cli:test", action="test.event", subject_ref=f"domain:d{i}.test")
    code, out, err = cli(world.home, "audit", "anchor")
    assert code == 0, err
    assert re.fullmatch(r"anchor #1: the heads of 32 audit partitions recorded \(hash [0-9a-f]{64}\)\n", out), out
    code, out, err = cli(world.home, "audit", "verify", "--json")
    assert code == 0 and json.loads(out)["anchors"] == 1, err
    with opened(world.home) as svc, svc.db.write() as s:
        tail = s.execute(select(AuditEntry).where(AuditEntry.partition != SYSTEM_PARTITION)
                         .order_by(AuditEntry.id.desc()).limit(1)).scalar_one()
        gone, partition = tail.id, tail.partition
        s.execute(delete(AuditEntry).where(AuditEntry.partition == partition, AuditEntry.id == gone))
    code, out, err = cli(world.home, "audit", "verify")
    assert code == 1 and out == ""
    assert re.fullmatch(rf"audit trail BROKEN at entry #{gone} \(partition {partition}\): entry #{gone}, partition "
                        rf"{partition}'s head at anchor #1, is gone \(the partition was cut short or forked after the "
                        r"anchor\) \(\d+ entries verified before it\)\n", err), err
