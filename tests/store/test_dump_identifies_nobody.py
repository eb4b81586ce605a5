"""A stolen database identifies nobody (issue 20): every column of every table, read raw.

A live gateway (SQLite here; PostgreSQL with ``GATEWAY_TEST_STORE=postgresql``) is populated
with everything that could identify a patient: patients with an INS, a personal e-mail
address and an activation code; one activates (password, TOTP), logs in, reads a message
asking for a read receipt (MDN) and replies; professionals write to patients; failed
logins type an INS and a password into the INS field (web) and a secret into the user name
(SMTP AUTH); outbound queue entries fail with replies quoting the patient's address, its
personal address and its INS. Then every table the schema has (reflected, so a new table is
covered without touching this test) is read column by column (bytes as hex and as raw
latin-1 text), and none may hold a full INS (15 characters, or 13 without the key), a
patient's e-mail address, text typed at a login, or an address in the patient domain.

``audit_log`` is scanned on its own (``test_audit_log_has_no_patient_link_in_clear``): the
professionals' addresses stay there in clear on purpose, so the scan there is for links: no row
names both a patient and a professional in clear.
"""

from __future__ import annotations

import re
import shutil
import smtplib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import MetaData, select
from sqlalchemy.engine import Engine

from gateway.outbound import queue
from gateway.outbound.values import QueuedRecipient, RecipientResult
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.smtpclient import mailbox_messages, submission_client
from gateway.testing.world import World, populate
from tests.keys.kit import cli
from tests.web.kit import activate_http, base_url, csrf_of, login_http, new_ins, pro_sends, provision

TYPED_IN_INS_FIELD = "mysecretpass!99"  # a password typed into the INS field of the web login
TYPED_AS_USER = "Zq7-typed-secret"  # a password typed as the SMTP AUTH user name
LEFT_OUT = {"audit_log"}  # scanned by its own test (see the module docstring)


@dataclass
class Populated:
    world: World
    live: LiveGateway
    home: Path
    ins: list[str]
    emails: list[str]

    @property
    def engine(self) -> Engine:
        return self.live.services.db.engine


def _text(value: object) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return raw.hex() + " " + raw.decode("latin-1")
    return "" if value is None else str(value)


def dump(engine: Engine, *, tables: set[str] | None = None) -> dict[tuple[str, str], str]:
    """(table, column) -> every value of that column, as text; every table the database has."""
    meta = MetaData()
    meta.reflect(engine)
    out: dict[tuple[str, str], str] = {}
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            if (tables is None and table.name in LEFT_OUT) or (tables is not None and table.name not in tables):
                continue
            rows = conn.execute(select(table)).all()
            for i, column in enumerate(table.columns):
                out[(table.name, column.name)] = "\n".join(_text(row[i]) for row in rows)
    return out


def hits(columns: dict[tuple[str, str], str], needles: dict[str, str]) -> list[tuple[str, str, str]]:
    """(what, table, column) for every needle found (case-insensitive)."""
    found = []
    for (table, column), text in columns.items():
        low = text.casefold()
        for what, needle in needles.items():
            if needle.casefold() in low:
                found.append((what, table, column))
    return found


def _web_logins(live: LiveGateway, ins: str) -> None:
    """Failed patient logins: a wrong password, and a password typed into the INS field."""
    with httpx.Client(base_url=base_url(live), follow_redirects=True) as c:
        for typed in (ins, TYPED_IN_INS_FIELD, f"{ins[:13]} {ins[13:]}"):
            r = c.post("/connexion", data={"ins": typed, "password": "not the password", "code": "000000",
                                           "csrf": csrf_of(c.get("/connexion").text)})
            assert r.status_code in (401, 429)


def _smtp_logins(live: LiveGateway) -> None:
    for user in (TYPED_AS_USER, "dr.martin@clinic.test"):
        with pytest.raises(smtplib.SMTPAuthenticationError), submission_client(live, user, "wrong password"):
            pass


def _queue_errors(live: LiveGateway, world: World, ins: str, email: str) -> None:
    """Entries whose peers answered with replies quoting the addresses and the INS."""
    svc = live.services
    now = datetime.now(UTC)
    patient_address = f"{ins}@{world.patient_domain}"
    quoting = f"smtp; 550 5.1.1 <{email}>: {ins} unknown (from {patient_address}; user {ins[:13]})"
    with svc.db.write() as s:
        for i in range(2):
            queue.enqueue(s, svc.keys, domain="perso.example" if i == 0 else "hopital.example",
                          mail_from=patient_address if i else None,
                          recipients=[QueuedRecipient(email if i == 0 else "dr.x@hopital.example")],
                          message=b"Subject: x\r\n\r\nx\r\n", kind="notification" if i == 0 else "message",
                          now=now - timedelta(minutes=1), max_age=timedelta(hours=2))
    with svc.db.write() as s:
        first, second = queue.claim_due(s, svc.keys, owner="judge", now=now, lease=timedelta(minutes=5), limit=2)
    with svc.db.write() as s:
        (rcpt,) = first.envelope.recipients
        assert queue.reschedule(s, svc.keys, first.uuid, first.owner, envelope=first.envelope,
                                results=[RecipientResult(rcpt, "temporary", 450, "4.2.0", quoting)],
                                now=now, retry_schedule_minutes=[5]) is not None
        assert queue.fail(s, svc.keys, second.uuid, second.owner, error=quoting, now=now)


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Populated]:
    home = make_home(tmp_path_factory.mktemp("dump") / "home")
    world = populate(home)
    with live_gateway(home) as live:
        ins = new_ins()
        account = activate_http(live, ins, provision(home, ins))
        first = pro_sends(live, world, ins, subject="Rendez-vous",
                          extra=f"Disposition-Notification-To: {world.pro}\r\n")
        pro_sends(live, world, world.patients["open"], subject="Bilan")
        with login_http(live, account) as c:
            inbox = c.get("/")
            conversation = re.search(r'href="(/conversations/\d+)"', inbox.text)
            assert conversation
            page = c.get(conversation.group(1))
            message = re.search(r'href="(/messages/\d+)"', page.text)
            assert message and "Rendez-vous" in c.get(message.group(1)).text  # read: the MDN goes out
            r = c.post(f"{conversation.group(1)}/repondre", data={"csrf": csrf_of(page.text), "text": "Je serai là"})
            assert "réponse a été envoyée" in r.text
        pro_box = mailbox_messages(live, pro=world.pro)
        assert any(b"disposition-notification" in m for m in pro_box)
        assert any(b"Je serai l" in m and first.encode() in m for m in pro_box)
        _web_logins(live, ins)
        _web_logins(live, world.patients["open"])
        _smtp_logins(live)
        _queue_errors(live, world, world.patients["open"], "p.open@perso.example")
        code, _, err = cli("--home", str(home), "jobs", "run")  # the lifecycle jobs, as serve runs them
        assert code == 0, err
        every = [*world.patients.values(), ins]
        yield Populated(world, live, home, every, [f"p.{state}@perso.example" for state in world.patients])


def _needles(p: Populated) -> dict[str, str]:
    needles: dict[str, str] = {}
    for i, one in enumerate(p.ins):
        needles[f"INS #{i}"] = one
        needles[f"INS #{i} without its key"] = one[:13]
    for i, email in enumerate(p.emails):
        needles[f"e-mail #{i}"] = email
    needles["typed into the INS field"] = TYPED_IN_INS_FIELD
    needles["typed as a user name"] = TYPED_AS_USER
    needles["patient-domain address"] = "@" + p.world.patient_domain
    needles["a professional's display name"] = "Dr Martin"  # sealed (pro_accounts.name_sealed)
    return needles


def test_no_table_holds_an_ins_an_email_typed_text_or_a_patient_address(populated: Populated) -> None:
    columns = dump(populated.engine)
    assert ("patients", "ins_sealed") in columns and ("login_counters", "key") in columns  # really read
    assert ("audit_log", "actor") not in columns
    found = hits(columns, _needles(populated))
    assert found == []


def test_the_scan_finds_what_it_looks_for(populated: Populated) -> None:
    """The scan is not blind: values put in clear into a scanned column are found."""
    columns = dump(populated.engine)
    planted = dict(columns)
    ins = populated.ins[0]
    planted[("daily_stats", "metric")] = columns[("daily_stats", "metric")] + "\n" + ins
    planted[("outbound_queue", "last_error_sealed")] = _text(f"x {populated.emails[0].upper()}".encode())
    assert {(w.split()[0], t) for w, t, _ in hits(planted, _needles(populated))} == {
        ("INS", "daily_stats"), ("e-mail", "outbound_queue")}


def test_audit_log_has_no_patient_link_in_clear(populated: Populated) -> None:
    """audit_log (sealed patient links, issue 20): no INS, personal e-mail, typed login text or
    patient-domain address; no row names both a patient and a professional in clear."""
    columns = dump(populated.engine, tables={"audit_log"})
    assert ("audit_log", "subject_ref") in columns
    assert hits(columns, _needles(populated)) == []
    meta = MetaData()
    meta.reflect(populated.engine, only=["audit_log"])
    with populated.engine.connect() as conn:
        rows = conn.execute(select(meta.tables["audit_log"])).mappings().all()
    pros = (populated.world.pro, populated.world.pharmacy, populated.world.colleague)
    linked = []
    for row in rows:
        text = " ".join(_text(v) for v in row.values()).casefold()
        if "patient:" in text and any(pro in text for pro in pros):
            linked.append((row["actor"], row["action"]))
    assert rows and linked == []



def _raw_hits(data: bytes, needles: dict[str, str]) -> list[str]:
    low = data.decode("latin-1").casefold()
    return [what for what, needle in needles.items() if needle.casefold() in low]


def test_raw_files_hold_nothing_identifying(populated: Populated, tmp_path: Path) -> None:
    """Beyond the tables: the database as it lies on disk (SQLite: the file and its WAL, free
    pages included; PostgreSQL: what ``pg_dump`` writes) and a ``gateway backup`` file."""
    needles = _needles(populated)
    url = populated.engine.url
    if url.get_backend_name() == "sqlite":
        assert url.database
        db = Path(url.database)
        raw = db.read_bytes() + (Path(f"{db}-wal").read_bytes() if Path(f"{db}-wal").exists() else b"")
        assert populated.world.pro.encode() in raw  # really the database's bytes (staff addresses stay in clear)
        assert _raw_hits(raw, needles) == []
        backup = tmp_path / "backup.db"
        code, _, err = cli("--home", str(populated.home), "backup", str(backup))
        assert code == 0, err
        assert populated.world.pro.encode() in backup.read_bytes() and _raw_hits(backup.read_bytes(), needles) == []
    else:
        pg_dump = shutil.which("pg_dump")
        assert pg_dump, "pg_dump (postgresql-client) is needed for the PostgreSQL pass"
        target = url.set(drivername="postgresql").render_as_string(hide_password=False)
        done = subprocess.run([pg_dump, "--no-owner", target], capture_output=True, timeout=120, check=True)
        assert b"COPY public.patients" in done.stdout and populated.world.pro.encode() in done.stdout
        assert _raw_hits(done.stdout, needles) == []
