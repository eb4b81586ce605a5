"""Shared fixtures: a migrated store on SQLite and on the real PostgreSQL server.

In CI (``CI=true``) a missing component fails the test instead of skipping it.

The suite runs in parallel (pytest-xdist, ``scripts/test``): whatever a test takes is its
worker's own. Ports come from the worker's slice (``gateway.testing.ports``), PostgreSQL
databases carry the worker and process in their name (``gateway.testing.pg``) and are dropped
when the worker's session ends, and each worker has its own temporary folder (``TMPDIR``, under
the system's), so private Postfix/Dovecot instances, Chromium's files and anything a test counts
in the temporary folder are never another worker's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.testing import pg
from gateway.testing.store import Store, open_store

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_OWN_TMPDIR = pytest.StashKey[tuple[Path, str | None]]()


def pytest_configure(config: pytest.Config) -> None:
    """A pytest-xdist worker gets a temporary folder of its own (``TMPDIR``, inherited by the
    programs it starts); traversable by others (0711) for the ``nobody`` processes of a private
    Postfix or Dovecot, whose own folders inside are made readable."""
    if os.environ.get("GATEWAY_TEST_STORE") == "postgresql":  # the PostgreSQL pass: issue 23's statement check
        from tests import dist_plugin

        dist_plugin.register(config)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    own = Path(tempfile.mkdtemp(prefix=f"hmg-{worker}-"))
    own.chmod(0o711)
    config.stash[_OWN_TMPDIR] = (own, os.environ.get("TMPDIR"))
    os.environ["TMPDIR"] = str(own)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again


# The files that took longest (serial run, docs/testing.md), longest first. Under pytest-xdist
# they are handed out first (scripts/test passes --no-loadscope-reorder, which would otherwise
# put files with many tests first and these one-test minutes last, on one worker while the
# others are done). Only the order changes; a file missing here is simply not moved.
SLOW_FIRST = (
    "tests/cluster/test_rotation_under_load.py",
    "tests/cluster/test_two_nodes.py",
    "tests/web/test_browser_recovery.py",
    "tests/imaptest/test_gateway.py",
    "tests/gateway/test_first_run.py",
    "tests/gateway/test_readme.py",
    "tests/gateway/test_store_open.py",
    "tests/imap_server/test_store_backend.py",
    "tests/gateway/test_login_races.py",
    "tests/interop/test_postfix_peer.py",
    "tests/mail/test_conversations.py",
    "tests/web/test_browser.py",
    "tests/imap_server/test_live_fuzz.py",
    "tests/mail/test_group_commit.py",
    "tests/mail/test_smtp_processes.py",
    "tests/web/test_security.py",
    "tests/admin_web/test_api.py",
    "tests/keys/test_live_reload.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: files stay whole


def pytest_unconfigure(config: pytest.Config) -> None:
    pg.drop_created()  # the live gateways' databases (GATEWAY_TEST_STORE=postgresql)
    saved = config.stash.get(_OWN_TMPDIR, None)
    if saved is None:
        return
    own, before = saved
    if before is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = before
    tempfile.tempdir = None
    shutil.rmtree(own, ignore_errors=True)


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
