"""The inbox on the production store: activation, login, reading (MDN), reply, trash and the
access history against PostgreSQL (row locks, audit advisory lock), over plain HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.testing import pg
from gateway.testing.live import live_gateway, make_home
from gateway.testing.smtpclient import mailbox_messages
from gateway.testing.world import populate
from tests.web.conftest import Site
from tests.web.kit import activate_http, csrf_of, login_http, new_ins, pro_sends, provision


@pytest.mark.postgres
def test_inbox_on_postgresql(pg_admin: str, tmp_path: Path) -> None:
    del pg_admin
    with pg.temporary_database() as url:
        home = make_home(tmp_path / "home", storage_url=url)
        world = populate(home)
        with live_gateway(home) as live:
            site = Site(home, world, live)
            ins = new_ins()
            account = activate_http(live, ins, provision(home, ins))
            first = pro_sends(live, world, ins, subject="Rendez-vous",
                              extra=f"Disposition-Notification-To: {world.pro}\r\n")
            with login_http(live, account) as c:
                inbox = c.get("/")
                assert "Rendez-vous" in inbox.text and "1 message non lu" in inbox.text
                conversation = re.search(r'href="(/conversations/\d+)"', inbox.text)
                assert conversation
                page = c.get(conversation.group(1))
                message = re.search(r'href="(/messages/\d+)"', page.text)
                assert message
                for _ in range(2):
                    assert "Rendez-vous" in c.get(message.group(1)).text
                r = c.post(f"{conversation.group(1)}/repondre",
                           data={"csrf": csrf_of(page.text), "text": "Je serai là"})
                assert "réponse a été envoyée" in r.text
                r = c.post(f"{message.group(1)}/corbeille", data={"csrf": csrf_of(page.text)})
                assert r.status_code == 200 and "Rendez-vous" in c.get("/corbeille").text
                assert "Lecture d&#39;un message" in c.get("/mon-espace/historique").text
            pro_box = mailbox_messages(site.live, pro=world.pro)
            assert sum(b"disposition-notification" in m for m in pro_box) == 1
            assert any(b"Je serai l" in m and first.encode() in m for m in pro_box)
