"""Bulk patient provisioning from a roster: bad rows, idempotence, codes; and the import commands."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.accounts.patients import by_ins, check_activation_code, personal_email
from gateway.accounts.provisioning import ImportOptions, ImportReport, import_roster
from gateway.accounts.roster import BadRow
from gateway.store.models import AuditEntry, DataKey, Folder, Mailbox, Patient, TrustedDomain
from gateway.testing.store import Store
from routing.ins import synthetic_ins
from tests.cli_kit import new_home, run

NOW = datetime(2025, 3, 1, 9, tzinfo=UTC)


def _roster(n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        ins = synthetic_ins(rng, corsica=len(out) % 7 == 3)
        if ins not in out:
            out.append(ins)
    return out


def _bad_key(ins: str) -> str:
    return ins[:13] + f"{(int(ins[13:]) + 1) % 100:02d}"


def _run(store: Store, text: str, *, workers: int = 0, batch: int = 4) -> tuple[ImportReport, list[BadRow],
                                                                              dict[str, str]]:
    bad: list[BadRow] = []
    codes: dict[str, str] = {}

    def on_codes(ins: object, new: object, _expires: datetime) -> None:
        codes.update(zip(ins, new, strict=True))  # type: ignore[call-overload]

    opts = ImportOptions(now=NOW, opposition_window=timedelta(days=42), code_validity=timedelta(days=42),
                         actor="admin:test", batch_size=batch, workers=workers)
    report = import_roster(store.db, store.ring, io.StringIO(text), opts, on_bad=bad.append, on_codes=on_codes)
    return report, bad, codes


def _count(store: Store, model: type[object]) -> int:
    with store.db.read() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def test_bad_rows_reported_good_rows_imported_reimport_changes_nothing(store: Store) -> None:
    good = _roster(9)
    lines = ["ins;email", f"{good[0]};p0@perso.example", good[1], "18001750123;", f"{_bad_key(good[2])};",
             f"{good[3]};not-an-address", f"{good[4]};", f"{good[4]};", "1800175012345AB;", "",
             *[f"{g};" for g in good[5:]], f"{good[0]};"]
    report, bad, codes = _run(store, "\n".join(lines) + "\n")
    assert [(b.line, b.reason) for b in bad] == [
        (4, "invalid INS (must be 15 characters: 13 + a 2-digit key)"), (5, "invalid INS (check key)"),
        (6, "bad e-mail (address must have the form local@domain)"),
        (8, "duplicate in file (first on line 7)"), (9, "invalid INS (digits only, except 2A/2B for Corsica)"),
        (10, "empty row"), (15, "duplicate in file")]
    assert (report.created, report.invalid, report.duplicates, report.existing) == (7, 5, 2, 0)
    assert set(codes) == {good[i] for i in (0, 1, 4, 5, 6, 7, 8)}
    with store.db.read() as session:
        for ins, code in codes.items():
            patient = by_ins(session, store.keys, ins)
            assert patient is not None and patient.state == "provisioned"
            assert patient.activation_code_hash and code not in patient.activation_code_hash
            assert check_activation_code(patient, code, NOW, ins=ins)
            assert not check_activation_code(patient, "AAAA", NOW, ins=ins)
            assert patient.opposition_deadline == NOW + timedelta(days=42)
        first = by_ins(session, store.keys, good[0])
        assert first is not None and personal_email(session, store.keys, first) == "p0@perso.example"
        assert first.notifications_enabled
    assert (_count(store, Mailbox), _count(store, DataKey), _count(store, Folder)) == (7, 7, 21)
    audits = _count(store, AuditEntry)
    again, bad_again, codes_again = _run(store, "\n".join(lines) + "\n")
    assert (again.created, again.existing) == (0, 8) and not codes_again
    assert _count(store, Patient) == 7 and _count(store, AuditEntry) == audits
    assert len(bad_again) == 6  # the repeat across batches now counts as already present


def test_workers_give_the_same_result(store: Store) -> None:
    roster = _roster(30, seed=5)
    text = "ins,email\n" + "".join(f"{ins},\n" for ins in roster)
    report, bad, codes = _run(store, text, workers=1, batch=7)
    assert report.created == 30 and not bad and set(codes) == set(roster) and report.batches == 5
    with store.db.read() as session:
        patient = by_ins(session, store.keys, roster[17])
        assert patient is not None and check_activation_code(patient, codes[roster[17]], NOW, ins=roster[17])




@pytest.fixture
def home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    return new_home(capsys, tmp_path)


def test_patient_import_command_writes_codes_0600(home: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    roster = _roster(5, seed=3)
    src = tmp_path / "roster.csv"
    src.write_text("ins,email\n" + "".join(f"{i},\n" for i in roster) + "999,\n", encoding="utf-8")
    out_path = tmp_path / "codes.csv"
    code, out, err = run(capsys, "--home", home, "patient", "import", str(src), "--codes-out", str(out_path),
                         "--workers", "0")
    assert code == 1 and "roster.csv:7: invalid INS" in err and "created 5" in out
    assert all(ins not in err for ins in roster) and "progress:" in err
    assert out_path.stat().st_mode & 0o777 == 0o600
    rows = list(csv.DictReader(out_path.open(encoding="utf-8")))
    assert [r["ins"] for r in rows] == roster and all(r["code"] and r["expires_at"] for r in rows)
    code, out, _ = run(capsys, "--home", home, "patient", "import", str(src), "--codes-out", str(out_path))
    assert code == 1 and "already exists" in _
    code, out, _ = run(capsys, "--home", home, "patient", "import", str(src), "--open")
    assert "created 0, already present 5" in out


def test_trust_import_command_preview_apply_and_hostile(home: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "lb.xml"
    src.write_text('<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema" DateDeGeneration="2024-06-01">'
                   "<Domaine><Nom>hôpital-1.example</Nom><Description>H1</Description></Domaine>"
                   "</ListeBlanche>", encoding="utf-8")
    code, out, _ = run(capsys, "--home", home, "domain", "trust", "import", str(src), "--dry-run")
    assert code == 0 and "+ xn--hpital-1-43a.example  (H1)" in out and "nothing changed" in out
    code, out, _ = run(capsys, "--home", home, "domain", "trust", "list", "--json")
    assert out.strip() == "[]"
    code, out, _ = run(capsys, "--home", home, "domain", "trust", "import", str(src))
    assert code == 0 and "applied: 1 to add" in out
    code, out, _ = run(capsys, "--home", home, "domain", "trust", "import", str(src))
    assert code == 0 and "nothing to change" in out
    evil = tmp_path / "evil.xml"
    evil.write_text('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]>'
                    '<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema"><Domaine><Nom>&a;.example</Nom>'
                    "</Domaine></ListeBlanche>", encoding="utf-8")
    code, _, err = run(capsys, "--home", home, "domain", "trust", "import", str(evil))
    assert code == 1 and "refused" in err
    code, _, err = run(capsys, "--home", home, "domain", "trust", "import", str(src), "--max-bytes", "10")
    assert code == 1 and "limit" in err
    from gateway.app.context import locate, open_services
    svc = open_services(locate(None, home))
    try:
        with svc.db.read() as session:
            names = list(session.execute(select(TrustedDomain.name)).scalars())
    finally:
        svc.close()
    assert names == ["xn--hpital-1-43a.example"]
