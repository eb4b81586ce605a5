"""Shared fixtures: a migrated store on SQLite and on the real PostgreSQL server.

In CI (``CI=true``) a missing component fails the test instead of skipping it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.testing import pg
from gateway.testing.store import Store, open_store

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition_problem: str | None, what: str) -> None:
    """Skip locally, fail in CI, when a component the test needs is missing."""
    if condition_problem is None:
        return
    message = f"{what} unavailable: {condition_problem}"
    if IN_CI:
        pytest.fail(message + " (CI must run every test)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_admin() -> str:
    require(pg.server_available(), "PostgreSQL at " + pg.admin_url())
    return pg.admin_url()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
        return
    request.getfixturevalue("pg_admin")
    with pg.temporary_database() as url:
        yield url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    try:
        yield opened
    finally:
        opened.close()
