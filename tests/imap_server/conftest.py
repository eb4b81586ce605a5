"""A live gateway with the IMAP listeners (and submission, for SMTP → IDLE), real store.

Each test gets its own fresh professional account so tests do not see each other's mail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.app.listeners import start_imap, start_imaps, start_submission
from gateway.testing.live import live_gateway, make_home
from gateway.testing.world import populate
from tests.imap_server.kit import MESSAGES, ImapEnv


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImapEnv]:
    home: Path = make_home(tmp_path_factory.mktemp("imap") / "home")
    world = populate(home)
    with live_gateway(home, factories=[start_imap, start_imaps, start_submission]) as live:
        yield ImapEnv(world, live)


@pytest.fixture
def account(env: ImapEnv) -> str:
    return env.new_account()


@pytest.fixture
def filled(env: ImapEnv, account: str) -> str:
    """An account whose INBOX holds the three sample messages (UIDs 1, 2, 3)."""
    for raw in MESSAGES:
        env.deliver(account, raw)
    return account
