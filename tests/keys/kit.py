"""Clients for the key and backup tests: SMTP submission, IMAP reads, the patient web inbox,
and ``gateway serve`` as a real process (the way an operator runs it)."""

from __future__ import annotations

import contextlib
import imaplib
import io
import os
import re
import signal
import smtplib
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyotp

from gateway.app.cli.main import main as cli_main
from gateway.testing.ports import listen_env, wait_port

PATIENT_PASSWORD = "Une phrase de passe bien longue 42"
SQLITE = "sqlite:///gateway.db"
"""``make_home(..., storage_url=SQLITE)``: SQLite even in the PostgreSQL pass (tests of SQLite files)."""


def head_revision() -> str:
    from gateway.store import migrate

    head = migrate.head_revision()
    assert head is not None
    return head


def before_key_checks() -> str:
    """The schema revision just before the ``key_checks`` table (a database from before issue 14)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from gateway.store.migrate import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    for rev in ScriptDirectory.from_config(cfg).walk_revisions():
        if rev.path.endswith("_key_checks.py"):
            assert isinstance(rev.down_revision, str)
            return rev.down_revision
    raise AssertionError("no key_checks migration")


def downgrade_before_key_checks(db: Path, key_file: Path | None = None) -> None:
    """Make the SQLite file ``db`` a database from before issue 14: every later migration's own
    downgrade run, down to :func:`before_key_checks` (dropping the table and stamping an old
    revision would leave the later migrations' columns for the upgrade to add twice)."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from gateway.accounts import ins_conversion
    from gateway.store.db import Database
    from gateway.store.keyfile import load_keyring
    from gateway.store.migrate import MIGRATIONS

    # As an operator would before going below 0013 (issue 20): the clear INS back first.
    database = Database(f"sqlite:///{db}")
    try:
        ring = load_keyring(key_file or db.parent / "keys" / "master.keys")
        ins_conversion.run(lambda after: ins_conversion.restore_batch(database, ring, after_id=after))
    finally:
        database.dispose()
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, before_key_checks())
    finally:
        engine.dispose()


def cli(*argv: str) -> tuple[int, str, str]:
    """``gateway ARGV`` in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main(list(argv))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def gateway(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``gateway ARGV`` as a separate process."""
    return subprocess.run([sys.executable, "-m", "gateway", *argv], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, check=False)


def message(sender: str, to: str, subject: str = "Résultats") -> tuple[str, bytes]:
    mid = f"<{uuid.uuid4().hex}@clinic.test>"
    raw = (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
           "Date: Mon, 23 Nov 2026 09:00:00 +0100\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\nBonjour,\r\nvoici vos résultats.\r\n").encode()
    return mid, raw


@contextlib.contextmanager
def submission(port: int, ca: str, user: str, password: str) -> Iterator[smtplib.SMTP]:
    client = smtplib.SMTP("127.0.0.1", port, timeout=60)
    try:
        client.starttls(context=ssl.create_default_context(cafile=ca))
        client.login(user, password)
        yield client
    finally:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client.quit()


def send(client: smtplib.SMTP, sender: str, to: str) -> tuple[str, int, str]:
    """One message; (Message-ID, reply code of DATA or of the refused RCPT, text)."""
    mid, raw = message(sender, to)
    try:
        client.sendmail(sender, [to], raw)
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        return mid, code, text.decode("utf-8", "replace")
    except smtplib.SMTPResponseException as exc:
        error = exc.smtp_error
        return mid, exc.smtp_code, error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
    return mid, 250, ""


@dataclass
class ImapRead:
    message_ids: set[str] = field(default_factory=set)
    refusals: list[str] = field(default_factory=list)


def imap_read(port: int, ca: str, user: str, password: str) -> ImapRead:
    """Log in, SELECT INBOX, FETCH every message's header and body: the Message-IDs read, and any NO/BAD."""
    out = ImapRead()
    client = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        client.starttls(ssl.create_default_context(cafile=ca))
        for status, data in (client.login(user, password), client.select("INBOX")):
            if status != "OK":
                out.refusals.append(f"{status} {data!r}")
        status, data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
        if status != "OK":
            out.refusals.append(f"FETCH {status} {data!r}")
            return out
        for item in data:
            if isinstance(item, tuple):
                found = re.search(rb"Message-ID: (<[^>]+>)", item[1])
                if found and b"voici vos r" in item[1]:
                    out.message_ids.add(found.group(1).decode())
    except imaplib.IMAP4.error as exc:
        out.refusals.append(str(exc))
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            client.logout()
    return out


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page: " + html[:300]
    return found.group(1)


def totp(secret: str, ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * ahead)


def activate(base: str, ins: str, code: str) -> tuple[int, str]:
    """Patient activation over HTTP; (status of the last step, TOTP secret or '')."""
    with httpx.Client(base_url=base, follow_redirects=True, timeout=60) as c:
        r = c.post("/activation", data={"ins": ins, "code": code, "csrf": csrf_of(c.get("/activation").text)})
        if r.status_code != 200:
            return r.status_code, ""
        r = c.post("/activation/mot-de-passe", data={"password": PATIENT_PASSWORD, "confirmation": PATIENT_PASSWORD,
                                                     "csrf": csrf_of(r.text)})
        found = re.search(r'<code class="secret"[^>]*>([A-Z2-7 ]+)</code>', r.text)
        if r.status_code != 200 or not found:
            return r.status_code or 599, ""
        secret = found.group(1).replace(" ", "")
        r = c.post("/activation/double-authentification", data={"code": totp(secret), "csrf": csrf_of(r.text)})
        return (r.status_code if "Mes messages" in r.text else 599), secret


def web_inbox(base: str, ins: str, secret: str, *, ahead: int = 1, messages: list[int] = ()) -> tuple[int, int]:  # type: ignore[assignment]
    """Log in, list the inbox, open each message page of ``messages`` (row ids).

    (worst HTTP status seen, how many message pages showed the message's text)."""
    worst = 200
    read = 0
    with httpx.Client(base_url=base, follow_redirects=True, timeout=60) as c:
        r = c.post("/connexion", data={"ins": ins, "password": PATIENT_PASSWORD, "code": totp(secret, ahead),
                                       "csrf": csrf_of(c.get("/connexion").text)})
        worst = max(worst, r.status_code)
        if "Mes messages" not in r.text:
            return max(worst, 599), read
        for message_id in messages:
            m = c.get(f"/messages/{message_id}")
            worst = max(worst, m.status_code)
            read += "voici vos résultats" in m.text
    return worst, read


@dataclass
class ServeProcess:
    """``gateway serve --home HOME`` as its own process, with its output in HOME/serve.log."""

    home: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def make(cls, home: Path, **settings: str) -> ServeProcess:
        env = {**listen_env(), "GATEWAY__LOGGING__FORMAT": "json", **settings}
        return cls(home, env)

    def port(self, listener: str) -> int:
        return int(self.env[f"GATEWAY__LISTEN__{listener.upper()}"].rsplit(":", 1)[1])

    @property
    def ca(self) -> str:
        return str(self.home / "tls" / "ca.pem")

    @property
    def log(self) -> Path:
        return self.home / "serve.log"

    def start(self, attempts: int = 3) -> None:
        """Start and wait until every listener answers (``/healthz`` from this process). A port
        taken meanwhile by another process (tests run side by side) makes serve exit: then
        again on other free ports."""
        for _ in range(attempts):
            with self.log.open("ab") as out:
                self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--home", str(self.home)],
                                             env={**os.environ, **self.env}, stdout=out, stderr=out)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self._ready():
                    return
                time.sleep(0.2)
            if self.proc.poll() is None:
                break
            self.env.update(listen_env())
        raise AssertionError("gateway serve did not start: " + self.log.read_text(errors="replace")[-3000:])

    def _ready(self) -> bool:
        if not all(wait_port("127.0.0.1", self.port(name), 0.2) for name in ("submission", "imap", "http")):
            return False
        try:
            r = httpx.get(f"http://127.0.0.1:{self.port('http')}/healthz", timeout=5)
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int = signal.SIGHUP) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def wait_log(self, text: str, count: int = 1, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log.read_text(errors="replace")
            if log.count(text) >= count:
                return log
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not logged {count} time(s): " + self.log.read_text(errors="replace")[-3000:])
