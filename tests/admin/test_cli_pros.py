"""``gateway pro show|passwd|disable|enable|remove`` in process, against a populated home."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import ColumnElement, func, select

from gateway.accounts.auth import Authenticator
from gateway.accounts.pros import pro_by_address, verify_password
from gateway.accounts.throttle import LoginThrottle, counter_keys
from gateway.mailstore.messages import append_message
from gateway.operations.common import cli_actor
from gateway.store import audit
from gateway.store.models import (
    AuditEntry,
    Conversation,
    DataKey,
    Folder,
    LoginCounter,
    Mailbox,
    Message,
    ProAccount,
)
from gateway.testing.world import PASSWORD, World
from tests.admin.conftest import cli, opened

NEW_PASSWORD = "une toute nouvelle phrase"


def _account(world: World, address: str) -> ProAccount | None:
    with opened(world.home) as svc, svc.db.read() as session:
        found = pro_by_address(session, address)
        if found is not None:
            session.expunge(found)
        return found


def _deliver(world: World, address: str, n: int) -> int:
    with opened(world.home) as svc, svc.db.write() as session:
        pro = pro_by_address(session, address)
        assert pro is not None
        for i in range(n):
            append_message(session, svc.keys, pro.mailbox_id, "INBOX", f"Subject: bilan {i}\r\n\r\ncorps\r\n".encode())
        return pro.mailbox_id


def _login(world: World, address: str, password: str) -> str:
    with opened(world.home) as svc:
        authenticator = Authenticator(svc.db, LoginThrottle(svc.db, svc.keys))
        return authenticator._attempt(address, password, "127.0.0.9", "imap")[0].reason


def test_show_gives_name_state_and_mailbox_size_never_a_subject(world: World) -> None:
    _deliver(world, world.pro, 2)
    code, out, _ = cli(world.home, "pro", "show", "Dr.Martin@Clinic.test", "--json")
    info = json.loads(out)
    assert code == 0 and info["address"] == world.pro and info["name"] == "Dr Martin"
    assert info["messages"] == 2 and info["folders"] >= 4 and info["mailbox_bytes"] > 0 and info["has_password"]
    code, out, _ = cli(world.home, "pro", "show", world.pro)
    assert code == 0 and "domain:" in out and "clinic.test" in out and "bilan" not in out
    code, _, err = cli(world.home, "pro", "show", "nobody@clinic.test")
    assert code == 1 and err == "gateway: error: no professional account nobody@clinic.test\n"
    code, _, err = cli(world.home, "pro", "show", "not an address")
    assert code == 1 and err.startswith("gateway: error: invalid address") and err.count("\n") == 1


def test_passwd_from_stdin_sets_the_password_and_clears_the_lockout(world: World) -> None:
    with opened(world.home) as svc, svc.db.write() as session:
        index, version = svc.keys.index_version(session)
        pair = counter_keys(index, version, "pro", world.colleague, "127.0.0.9")[0]
        session.add(LoginCounter(key=pair, window_start=time.time(), failures=10,
                                 locked_until=time.time() + 3600))
    assert _login(world, world.colleague, PASSWORD) == "auth.account_locked"
    before = _account(world, world.colleague)
    assert before is not None
    for stdin, expected in (("court\n", "password too short (at least 12 characters)"),
                            ("", "no password on standard input")):
        code, _, err = cli(world.home, "pro", "passwd", world.colleague, stdin=stdin)
        assert code == 1 and err == f"gateway: error: {expected}\n"
    code, _, err = cli(world.home, "pro", "passwd", "nobody@clinic.test", stdin=NEW_PASSWORD + "\n")
    assert code == 1 and "no professional account" in err
    after = _account(world, world.colleague)
    assert after is not None and after.password_hash == before.password_hash  # refusals changed nothing

    code, out, err = cli(world.home, "pro", "passwd", world.colleague, stdin=NEW_PASSWORD + "\n")
    assert code == 0 and "password of dr.durand@clinic.test set" in out, err
    after = _account(world, world.colleague)
    assert after is not None and verify_password(after.password_hash, NEW_PASSWORD)
    assert _login(world, world.colleague, PASSWORD) == "auth.failed"
    assert _login(world, world.colleague, NEW_PASSWORD) == "auth.ok"
    with opened(world.home) as svc, svc.db.read() as session:
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "pro.password")).scalar_one()
    assert entry.actor == cli_actor().audit_actor and entry.subject_ref == f"pro:{world.colleague}"
    assert NEW_PASSWORD not in entry.details and '"reset":true' in entry.details


def test_passwd_prompts_twice_on_a_terminal(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["première phrase longue", "seconde phrase longue"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    monkeypatch.setattr("sys.stdin", Tty())
    from gateway.app.cli.main import main

    assert main(["--home", str(world.home), "pro", "passwd", world.colleague]) == 1  # they differ
    answers = iter([NEW_PASSWORD, NEW_PASSWORD])
    assert main(["--home", str(world.home), "pro", "passwd", world.colleague]) == 0
    assert _login(world, world.colleague, NEW_PASSWORD) == "auth.ok"


def test_disable_refuses_the_next_login_and_enable_restores_it(world: World) -> None:
    assert _login(world, world.colleague, PASSWORD) == "auth.ok"
    code, out, _ = cli(world.home, "pro", "disable", world.colleague)
    assert code == 0 and "disabled" in out
    assert _login(world, world.colleague, PASSWORD) == "auth.disabled"
    code, out, _ = cli(world.home, "pro", "list", "--json")
    assert '"status": "disabled"' in out
    code, out, _ = cli(world.home, "pro", "enable", world.colleague)
    assert code == 0 and _login(world, world.colleague, PASSWORD) == "auth.ok"
    with opened(world.home) as svc, svc.db.read() as session:
        actions = session.execute(select(AuditEntry.action).where(AuditEntry.subject_ref == f"pro:{world.colleague}",
                                                                  AuditEntry.action.like("pro.%"))).scalars().all()
    assert actions == ["pro.disable", "pro.enable"]


def _counts(world: World, mailbox_id: int) -> tuple[int, int, int, int]:
    with opened(world.home) as svc, svc.db.read() as session:
        def n(model: type, where: ColumnElement[bool]) -> int:
            return int(session.execute(select(func.count()).select_from(model).where(where)).scalar_one())

        folders = select(Folder.id).where(Folder.mailbox_id == mailbox_id).scalar_subquery()
        return (n(Message, Message.folder_id.in_(folders)), n(Folder, Folder.mailbox_id == mailbox_id),
                n(DataKey, DataKey.mailbox_id == mailbox_id), n(Mailbox, Mailbox.id == mailbox_id))


def test_remove_needs_yes_then_shreds_and_deletes_everything(world: World) -> None:
    mailbox_id = _deliver(world, world.colleague, 3)
    before = _counts(world, mailbox_id)
    assert before[0] == 3 and before[2] == 1 and before[3] == 1
    code, out, err = cli(world.home, "pro", "remove", world.colleague)
    assert code == 1 and "3 message(s)" in out and "shredded" in out
    assert err == "gateway: error: nothing removed: add --yes to confirm\n"
    assert _counts(world, mailbox_id) == before and _account(world, world.colleague) is not None

    code, out, _ = cli(world.home, "pro", "remove", world.colleague, "--yes")
    assert code == 0 and "3 message(s)" in out and "1 data key(s) shredded" in out
    assert _counts(world, mailbox_id) == (0, 0, 0, 0) and _account(world, world.colleague) is None
    with opened(world.home) as svc, svc.db.read() as session:
        assert session.execute(select(func.count()).select_from(Conversation)
                               .where(Conversation.mailbox_id == mailbox_id)).scalar_one() == 0
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "pro.remove")).scalar_one()
    assert entry.subject_ref == f"pro:{world.colleague}" and '"messages":3' in entry.details
    assert _login(world, world.colleague, PASSWORD) == "auth.failed"
    code, _, err = cli(world.home, "pro", "remove", world.colleague, "--yes")
    assert code == 1 and "no professional account" in err
    # the address can be given to someone else: a fresh, empty mailbox
    code, _, err = cli(world.home, "pro", "add", world.colleague, "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert code == 0, err
    code, out, _ = cli(world.home, "audit", "verify")
    assert code == 0


def test_remove_is_all_or_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    mailbox_id = _deliver(world, world.colleague, 2)
    before = _counts(world, mailbox_id)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(audit, "record", broken)  # the last step of the removal fails
    with pytest.raises(RuntimeError):
        cli(world.home, "pro", "remove", world.colleague, "--yes")
    monkeypatch.undo()
    assert _counts(world, mailbox_id) == before and _account(world, world.colleague) is not None
    with opened(world.home) as svc, svc.db.read() as session:
        pro = pro_by_address(session, world.colleague)
        assert pro is not None
        assert svc.keys.for_mailbox(session, pro.mailbox_id).data_key_id  # still readable
    assert _login(world, world.colleague, PASSWORD) == "auth.ok"
