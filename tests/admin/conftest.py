"""Command-line tests run ``gateway.app.cli.main.main`` in process against a populated home."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.app.context import Location, open_services
from gateway.store.services import Services
from gateway.testing.live import make_home
from gateway.testing.world import World, populate


def cli(home: Path, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """``gateway --home HOME ARGS...``: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.stdin", io.StringIO(stdin))
        from gateway.app.cli.main import main

        try:
            code = main(["--home", str(home), *args])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def opened(home: Path) -> Iterator[Services]:
    svc = open_services(Location(home / "gateway.toml", home, True))
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture
def world(tmp_path: Path) -> World:
    """A home from ``gateway init`` with the standard cast (SQLite, or PostgreSQL with GATEWAY_TEST_STORE)."""
    return populate(make_home(tmp_path / "home"))
