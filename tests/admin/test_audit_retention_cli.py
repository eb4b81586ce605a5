"""``gateway audit prune [--dry-run]``, ``gateway audit verify --export``, the ``audit-retention``
job on its schedule (injected clock), and the patient's access history after a prune."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from gateway.accounts.jobs import RETENTION, run_periodically
from gateway.accounts.patients import by_ins
from gateway.operations import audit_trail
from gateway.operations.common import cli_actor
from gateway.store import audit
from gateway.store.models import AuditCheckpoint, AuditEntry
from gateway.testing.world import World
from gateway.web.admin.context import AdminContext
from gateway.web.patient import history
from tests.admin.conftest import cli, opened

LATER = datetime.now(UTC) + timedelta(days=800)  # every entry of the populated world is then due


def _seed(world: World, n: int = 12) -> int:
    """``n`` entries at today's time (the populated world writes none); returns how many there are."""
    with opened(world.home) as svc, svc.db.write() as s:
        for i in range(n):
            audit.record(s, actor="admin:cli:test", action="test.event", details={"i": i})
    return len(_snapshot(world.home)[0])


def _snapshot(home: Path) -> tuple[list[tuple[object, ...]], int]:
    with opened(home) as svc, svc.db.read() as s:
        rows = [tuple(r) for r in s.execute(select(AuditEntry.__table__).order_by(AuditEntry.id)).all()]
        checkpoints = s.execute(select(func.count()).select_from(AuditCheckpoint)).scalar_one()
    return rows, int(checkpoints)


def _patient_id(world: World) -> int:
    with opened(world.home) as svc, svc.db.read() as s:
        patient = by_ins(s, svc.keys, world.patients["open"])
        assert patient is not None
        return patient.id


def test_dry_run_says_what_and_changes_nothing(world: World) -> None:
    _seed(world)
    before = _snapshot(world.home)
    code, out, err = cli(world.home, "audit", "prune", "--dry-run", "--now", LATER.isoformat())
    assert code == 0, err
    due = len(before[0])
    assert re.fullmatch(rf"dry run: {due:,} entries older than \S+ \(entries #\d+-#\d+\) would be exported to "
                        rf"{re.escape(str(world.home / 'audit-archive'))} and pruned, in 1 batch\(es\) of at most "
                        r"10,000; nothing was changed\n", out), out
    assert _snapshot(world.home) == before
    assert not (world.home / "audit-archive").exists()
    code, out, _ = cli(world.home, "audit", "prune", "--dry-run")
    assert code == 0 and out.startswith("dry run: no entry older than ")


def test_prune_then_verify_the_trail_and_the_export(world: World) -> None:
    due = _seed(world)
    code, out, err = cli(world.home, "audit", "prune", "--now", LATER.isoformat())
    assert code == 0, err
    lines = out.splitlines()
    assert re.fullmatch(rf"pruned {due:,} entries older than \S+ in 1 batch\(es\):", lines[0]), out
    found = re.fullmatch(r"  checkpoint #1: entries #(\d+)-#(\d+) \(([\d,]+)\) -> (\S+) \(sha256 ([0-9a-f]{64})\)",
                         lines[1])
    assert found is not None, out
    export = Path(found[4])
    assert export.parent == world.home / "audit-archive" and found[3] == f"{due:,}"

    code, out, err = cli(world.home, "audit", "verify", "--export", str(export))
    assert code == 0, err
    head, file_line = out.splitlines()
    assert re.fullmatch(rf"audit trail intact: 1 entries in 1 partition\(s\), 0 anchor\(s\) checked from #\d+; "
                        rf"{due:,} earlier entries \(until \S+\) pruned behind 1 checkpoint\(s\)", head), out
    assert re.fullmatch(rf"{re.escape(str(export))}: {due:,} entries #{found[1]}-#{found[2]}, matches "
                        rf"checkpoint #1 \(pruned {LATER.year}-\S+\)", file_line), out

    code, out, _ = cli(world.home, "audit", "verify", "--export", str(export), "--json")
    report = json.loads(out)
    assert code == 0 and report["pruned"] == due and report["exports"][0]["checkpoint"] == 1

    export.write_bytes(export.read_bytes().replace(b'"action":"', b'"action":"x', 1))
    code, out, err = cli(world.home, "audit", "verify", "--export", str(export))
    assert code == 1 and out.startswith("audit trail intact")
    assert err == f"{export}: does NOT verify: line 1: entry #{found[1]} was modified\n"


def test_nothing_to_prune_and_retention_off(world: World) -> None:
    _seed(world)
    code, out, _ = cli(world.home, "audit", "prune")
    assert code == 0 and out.startswith("nothing to prune: no entry older than ")
    config = world.home / "gateway.toml"
    config.write_text(config.read_text() + "\n[audit]\nretention_days = 0\n")
    code, out, _ = cli(world.home, "audit", "prune", "--now", LATER.isoformat())
    assert code == 0 and out == "audit.retention_days is 0: every entry is kept; nothing to prune\n"


def test_a_retention_under_a_year_is_refused(world: World) -> None:
    config = world.home / "gateway.toml"
    config.write_text(config.read_text() + "\n[audit]\nretention_days = 180\n")
    code, _, err = cli(world.home, "audit", "prune")
    assert code != 0 and "audit.retention_days" in err and "at least 365" in err


def test_patient_history_still_shows_recent_entries(world: World) -> None:
    patient_id = _patient_id(world)
    with opened(world.home) as svc, svc.db.write() as s:
        for days in (900, 800):  # entries of today, about the patient: older than a year at LATER
            audit.record(s, actor="admin:cli:test", action="admin.patient.lookup",
                         subject_ref=f"patient:{patient_id}", now=LATER - timedelta(days=days), keys=svc.keys)
        for days in (30, 20, 10):
            audit.record(s, actor="pro:dr.a@hopital.test", action="mail.delivered", subject_ref=f"patient:{patient_id}",
                         peer="192.0.2.1", now=LATER - timedelta(days=days), keys=svc.keys)
    with opened(world.home) as svc, svc.db.read() as s:
        before, _ = history.entries(s, svc.keys, patient_id)
    assert len(before) == 5
    assert cli(world.home, "audit", "prune", "--now", LATER.isoformat())[0] == 0
    with opened(world.home) as svc, svc.db.read() as s:
        after, more = history.entries(s, svc.keys, patient_id)
        assert audit.verify(s).ok
    assert [e.at for e in after] == [LATER - timedelta(days=d) for d in (10, 20, 30)] and more is None
    assert {(e.who, e.where) for e in after} == {("Professionnel dr.a@hopital.test", "192.0.2.1")}
    # The pruned entries about the patient left sealed (issue 20): the export keeps the sealed bytes
    # and verifies against its checkpoint; no patient reference in clear in the file.
    files = sorted((world.home / "audit-archive").glob("audit-*.jsonl"))
    assert files and f"patient:{patient_id}".encode() not in b"".join(f.read_bytes() for f in files)
    code, _, err = cli(world.home, "audit", "verify", "--export", *map(str, files))
    assert code == 0, err


def test_the_job_prunes_on_its_schedule_with_an_injected_clock(world: World) -> None:
    code, out, _ = cli(world.home, "jobs", "list")
    assert code == 0 and RETENTION in out
    clock = [datetime.now(UTC)]
    due = _seed(world)

    async def scenario() -> None:
        with opened(world.home) as svc:
            task = asyncio.create_task(run_periodically(svc, interval=0.05, clock=lambda: clock[0]))
            try:
                await asyncio.sleep(0.5)  # several periods at today's clock: nothing is old enough
                assert _snapshot(world.home)[1] == 0
                clock[0] = LATER  # the clock moves on: the next period prunes
                for _ in range(200):
                    await asyncio.sleep(0.05)
                    if _snapshot(world.home)[1]:
                        break
            finally:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass

    asyncio.run(scenario())
    with opened(world.home) as svc, svc.db.read() as s:
        report = audit.verify(s)
        actors = set(s.execute(select(AuditEntry.actor).where(AuditEntry.action == "audit.pruned")).scalars())
    assert report.ok and report.checkpoints == 1 and report.pruned >= due
    assert actors == {"system:jobs"}


def test_jobs_run_audit_retention(world: World) -> None:
    _seed(world)
    code, out, err = cli(world.home, "jobs", "run", RETENTION, "--now", LATER.isoformat(), "--json")
    assert code == 0, err
    [row] = json.loads(out)
    assert row["ran"] and row["counts"]["batches"] == 1 and row["counts"]["pruned"] > 0


def test_the_console_says_where_the_verified_trail_starts(world: World) -> None:
    _seed(world)
    assert cli(world.home, "audit", "prune", "--now", LATER.isoformat())[0] == 0
    with opened(world.home) as svc:
        verified = audit_trail.verify(svc.db, cli_actor())
        ctx = AdminContext(svc)
        html = ctx.env.get_template("audit.html").render(
            base="", who=None, csrf="", path="/admin/audit", rows=[], query={}, error=None, verified=verified,
            export="")
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert (f"Chaîne intacte : 1 entrées vérifiées depuis l'entrée n° {verified['start_id']} ; 12 entrées "
            f"antérieures (jusqu'au {verified['pruned_until']}) exportées puis purgées derrière 1 point(s) "
            "de contrôle.") in text
