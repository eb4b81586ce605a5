"""The patient's access history after audit retention pruned the oldest entries: what remains
is shown, newest first, with a line saying older accesses were archived (issue 20)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.store import audit
from gateway.store.audit_retention import RetentionPolicy, prune
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.world import populate
from tests.web.kit import activate_http, login_http, new_ins, provision


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveGateway]:
    home = make_home(tmp_path / "home")
    text = (home / "gateway.toml").read_text().replace("[tls]\n", "[tls]\nallow_auth_without_tls = true\n", 1)
    (home / "gateway.toml").write_text(text)
    populate(home)
    with live_gateway(home) as running:
        yield running


def test_history_shows_what_remains_after_a_prune(live: LiveGateway, tmp_path: Path) -> None:
    ins = new_ins()
    account = activate_http(live, ins, provision(live.home, ins))
    with login_http(live, account) as c:
        before = html.unescape(c.get("/mon-espace/historique").text)
        assert "Connexion" in before and 'id="archived"' not in before
        result = prune(live.services.db, RetentionPolicy(400, tmp_path / "archive", 1000),
                       datetime.now(UTC) + timedelta(days=401), actor="system:jobs")
        assert result.pruned > 0
        c.get("/mon-espace")  # a new access, after the prune
        page = html.unescape(c.get("/mon-espace/historique").text)
    rows = re.findall(r"<tr><td><time[^>]*>", page)
    assert rows, page[:2000]
    assert "Connexion" not in page  # the activation and the login were pruned with everything else
    assert re.search(r'<p id="archived">Les accès jusqu\'au .+ ne sont plus affichés ici', page), page[-1500:]
    with live.services.db.read() as s:
        assert audit.verify(s).ok
