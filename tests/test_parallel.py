"""Test ports and databases are each pytest-xdist worker's own (the suite runs in parallel)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.testing import pg
from gateway.testing.ports import _ephemeral_low, free_port, port_range
from tests.conftest import SLOW_FIRST

ROOT = Path(__file__).resolve().parents[1]


def test_a_single_process_has_the_whole_range_below_the_ephemeral_ports() -> None:
    assert port_range({}) == (20000, _ephemeral_low() - 1)
    assert port_range({"PYTEST_XDIST_WORKER": "gw0", "PYTEST_XDIST_WORKER_COUNT": "1"}) == port_range({})


def test_workers_get_disjoint_slices_of_the_run_range() -> None:
    slices = [port_range({"GATEWAY_TEST_PORTS": "30000-30999", "PYTEST_XDIST_WORKER": f"gw{i}",
                          "PYTEST_XDIST_WORKER_COUNT": "4"}) for i in range(4)]
    assert slices == [(30000, 30249), (30250, 30499), (30500, 30749), (30750, 30999)]


@pytest.mark.parametrize("value", ["30000", "999-2000", "40000-30000", "30000-70000"])
def test_a_wrong_run_range_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="GATEWAY_TEST_PORTS"):
        port_range({"GATEWAY_TEST_PORTS": value})


def test_free_port_stays_in_the_workers_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TEST_PORTS", "21000-28999")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20 and all(27000 <= p <= 28999 for p in ports), sorted(ports)


def test_database_names_carry_the_worker_and_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw2")
    name = pg.database_name("hmg_live")
    assert re.fullmatch(r"hmg_live_gw2_\d+_[0-9a-f]{12}", name), name
    assert name != pg.database_name("hmg_live")
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    long = pg.database_name("x" * 80)
    assert re.fullmatch(r"x{32}_main_\d+_[0-9a-f]{12}", long) and len(long) <= 63, long


def test_the_files_handed_out_first_exist() -> None:
    """A renamed slow file would silently go back to the end of the queue (a slower run)."""
    assert [p for p in SLOW_FIRST if not (ROOT / p).is_file()] == []
    assert len(set(SLOW_FIRST)) == len(SLOW_FIRST)
