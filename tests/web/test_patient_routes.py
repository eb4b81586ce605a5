"""A patient's statements reach ``patients`` by its distribution column (issue 23, Citus).

``patients`` is distributed by ``mailbox_id``: every statement on it needs an equality on that
column, or it goes to every shard. Here, on PostgreSQL, the statements a patient's whole web
journey sends (activation, login with its TOTP replay guard, pages behind the session, a
reply, "mot de passe oublié"), a professional's message to the patient (the RCPT lookup) and
lookups of an INS that has no space (the directory misses) are captured at the driver and
analysed as the PostgreSQL pass's statement check does: none may reach ``patients`` without
``mailbox_id``. (Before: the session knew the patient id only, the TOTP step and the reply
found the patient by id, and a directory miss looked for a clear INS on every shard.)
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import httpx
import pytest

from gateway.accounts import ins_index
from gateway.accounts.patients import by_ins
from gateway.testing import pg
from gateway.testing.live import live_gateway, make_home
from gateway.testing.world import populate
from routing.ins import synthetic_ins
from tests.dist_plugin import Capture, allowance
from tests.dist_statements import analyse
from tests.web.kit import activate_http, base_url, csrf_of, login_http, new_ins, pro_sends, provision


def _unrouted_on_patients(capture: Capture) -> list[str]:
    out = []
    for (sql, (where, names)), _count in capture.seen.items():
        callers = [n for n in dict.fromkeys(names) if not n.startswith(("gateway.store.db:", "gateway.store.raw:"))]
        for problem in analyse(sql):
            if problem.table == "patients" and allowance(problem.rule, problem.table,
                                                         callers[0] if callers else "") is None:
                out.append(f"{where}: {problem.rule} {problem.detail}: {sql[:160]}")
    return out


@pytest.mark.postgres
def test_a_patients_requests_and_rcpt_reach_patients_by_mailbox(pg_admin: str, tmp_path: Path) -> None:
    del pg_admin
    with pg.temporary_database() as url:
        home = make_home(tmp_path / "home", storage_url=url)
        world = populate(home)
        with live_gateway(home) as live:
            ins = new_ins()
            code = provision(home, ins)
            unknown = synthetic_ins(random.Random(2321))
            capture = Capture()
            capture.start()
            try:
                account = activate_http(live, ins, code)
                pro_sends(live, world, ins, subject="Rendez-vous")
                with login_http(live, account) as c:
                    inbox = c.get("/")
                    conversation = re.search(r'href="(/conversations/\d+)"', inbox.text)
                    assert conversation
                    page = c.get(conversation.group(1))
                    r = c.post(f"{conversation.group(1)}/repondre",
                               data={"csrf": csrf_of(page.text), "text": "Merci"})
                    assert "réponse a été envoyée" in r.text
                    assert "Mon espace" in c.get("/mon-espace").text
                with httpx.Client(base_url=base_url(live), follow_redirects=True) as anon:
                    token = csrf_of(anon.get("/mot-de-passe-oublie").text)
                    assert anon.post("/mot-de-passe-oublie", data={"ins": ins, "csrf": token}).status_code == 200
                    time.sleep(0.5)  # the request is served after the answer (a background task)
                keys, index = live.services.keys, live.services.keys.ring.index
                assert index is not None
                with live.services.db.read() as s:
                    assert by_ins(s, keys, unknown) is None
                    assert ins_index.rcpt_row(s, index, unknown) is None
                    assert ins_index.find_ids(s, index, [unknown, ins]) == {ins: account.patient_id}
            finally:
                capture.stop()
    assert _unrouted_on_patients(capture) == []
    seen = {where.rsplit(" ", 1)[1] for (_sql, (where, _n)) in capture.seen}
    assert {"by_key", "claim_totp_step", "send_reply", "rcpt_row", "self_service", "_lookup", "find_ids"} <= seen, \
        sorted(seen)
