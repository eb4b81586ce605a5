"""``gateway quota show|set`` in process, against a populated home (both stores)."""

from __future__ import annotations

import json

from gateway.store.models import AuditEntry
from gateway.testing.audit import opened_entries
from gateway.testing.world import World
from routing.ins import mask_ins
from tests.admin.conftest import cli, opened


def _show(world: World, who: str) -> dict[str, object]:
    code, out, err = cli(world.home, "quota", "show", who, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert isinstance(info, dict)
    return info


def test_set_and_show_a_professional_quota_audited(world: World) -> None:
    info = _show(world, world.pro)
    assert (info["storage_kib_limit"], info["messages_limit"], info["storage_kib_set"]) == (None, None, None)
    code, out, err = cli(world.home, "quota", "set", world.pro, "--storage", "2048", "--messages", "10")
    assert code == 0, err
    assert "storage:   0 KiB used of 2048 [set]" in out and "messages:  0 of 10 [set]" in out
    info = _show(world, world.pro.upper())
    assert (info["storage_kib_limit"], info["messages_limit"], info["full"]) == (2048, 10, False)
    code, _, _ = cli(world.home, "quota", "set", world.pro, "--messages", "default")
    assert code == 0
    info = _show(world, world.pro)
    assert (info["storage_kib_set"], info["messages_set"], info["messages_limit"]) == (2048, None, None)
    with opened(world.home) as svc, svc.db.read() as session:
        entries = opened_entries(session, svc.keys, AuditEntry.action == "quota.set")
        details = [(e.actor.startswith("admin:cli:"), e.subject_ref, json.loads(e.details or "{}")) for e in entries]
    assert [(a, s, d["before"], d["after"], d["via"]) for a, s, d in details] == [
        (True, f"pro:{world.pro}", {"storage_kib": None, "messages": None}, {"storage_kib": 2048, "messages": 10},
         "cli"),
        (True, f"pro:{world.pro}", {"storage_kib": 2048, "messages": 10}, {"storage_kib": 2048, "messages": None},
         "cli"),
    ]


def test_patient_by_ins_or_address_never_shown_in_full(world: World) -> None:
    ins = world.patients["open"]
    code, out, err = cli(world.home, "quota", "set", ins, "--messages", "5", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["mailbox"] == mask_ins(ins) and ins not in out and info["messages_limit"] == 5
    assert _show(world, world.patient())["messages_limit"] == 5


def test_refusals(world: World) -> None:
    code, _, err = cli(world.home, "quota", "set", world.pro)
    assert code == 1 and "nothing to change" in err
    code, _, err = cli(world.home, "quota", "set", world.pro, "--storage", "-3")
    assert code == 1 and "out of range" in err
    code, _, err = cli(world.home, "quota", "set", world.pro, "--storage", "lots")
    assert code == 1 and "whole number or 'default'" in err
    code, _, err = cli(world.home, "quota", "show", "nobody@clinic.test")
    assert code == 1 and "no professional account" in err
    code, _, err = cli(world.home, "quota", "show", "123")
    assert code == 1 and "INS" in err


def test_configured_default_and_zero_for_no_limit(world: World) -> None:
    config = world.home / "gateway.toml"
    config.write_text(config.read_text() + "\n[quota]\nstorage_kib = 4096\nmessages = 7\n")
    info = _show(world, world.colleague)
    assert (info["storage_kib_limit"], info["messages_limit"], info["messages_set"]) == (4096, 7, None)
    assert (info["storage_kib_default"], info["messages_default"]) == (4096, 7)
    code, out, _ = cli(world.home, "quota", "set", world.colleague, "--messages", "0")
    assert code == 0 and "messages:  0 of no limit [set: no limit]" in out
    assert "storage:   0 KiB used of 4096 [default (4096)]" in out
