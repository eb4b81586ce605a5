"""One way to open a stored message (issue 16): ``gateway.mailstore.sealed.open_message``, with
the mailbox the caller acts for, on SQLite and PostgreSQL; and no other module unseals one."""

from __future__ import annotations

import ast
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from gateway.accounts.patients import provision
from gateway.mailstore import inbox, message_ops
from gateway.mailstore.folders import find_folder
from gateway.mailstore.messages import append_message, read_message, sealed_row
from gateway.mailstore.sealed import NotThisMailbox, open_message, open_summary
from gateway.store.models import Message
from gateway.testing.store import Store
from routing.ins import synthetic_ins

ROOT = Path(__file__).resolve().parents[2]
RAW = b"From: dr.a@clinic.test\r\nSubject: confidentiel\r\n\r\ncorps\r\n"


def _mailbox(store: Store, seed: int) -> int:
    with store.db.write() as s:
        done = provision(s, store.keys, synthetic_ins(random.Random(seed)), email=None, now=datetime.now(UTC),
                         opposition_window=timedelta(days=42), code_validity=timedelta(days=42), open_now=True)
        assert done.patient.mailbox_id is not None
        return done.patient.mailbox_id


def test_a_message_of_mailbox_a_does_not_open_through_mailbox_b(store: Store) -> None:
    a, b = _mailbox(store, 1), _mailbox(store, 2)
    with store.db.write() as s:
        stored = append_message(s, store.keys, a, "INBOX", RAW, summary=b"{}")
    with store.db.read() as s:
        row = sealed_row(s, a, stored.message_id)
        assert row is not None and row.mailbox_id == a
        assert open_message(s, store.keys, a, row) == RAW
        assert open_summary(s, store.keys, a, row) == b"{}"
        with pytest.raises(NotThisMailbox):
            open_message(s, store.keys, b, row)
        with pytest.raises(NotThisMailbox):
            open_summary(s, store.keys, b, row)
        # Reads by B are keyed by B's mailbox id (issue 23): A's row is not even found through B,
        # by the web inbox nor by IMAP naming a folder id of A; the ownership check above stays
        # for a row whose mailbox or key was tampered with (the tests below).
        with pytest.raises(LookupError):
            read_message(s, store.keys, b, stored.message_id)
        assert inbox.owned(s, b, stored.message_id) is None
        assert message_ops.fetch_raw(s, store.keys, b, stored.folder_id, stored.uid) is None
        assert message_ops.fetch_raws(s, store.keys, b, stored.folder_id, [stored.uid]) == {}
        assert message_ops.fetch_summaries(s, store.keys, b, stored.folder_id, [stored.uid]) == ({}, {})


def test_a_row_moved_into_another_mailbox_with_its_key_does_not_open(store: Store) -> None:
    a, b = _mailbox(store, 3), _mailbox(store, 4)
    with store.db.write() as s:
        stored = append_message(s, store.keys, a, "INBOX", RAW)
        inbox_b = find_folder(s, b, "INBOX")
        assert inbox_b is not None
        s.execute(update(Message).where(Message.id == stored.message_id)
                  .values(mailbox_id=b, folder_id=inbox_b.id, uid=77))
    with store.db.read() as s:
        row = sealed_row(s, b, stored.message_id)
        assert row is not None and row.mailbox_id == b  # the folder says B, the key says A
        with pytest.raises(NotThisMailbox):
            open_message(s, store.keys, b, row)
        found = inbox.owned(s, b, stored.message_id)
        assert found is not None
        with pytest.raises(NotThisMailbox):
            inbox.open_row(s, store.keys, b, found)
        with pytest.raises(NotThisMailbox):
            message_ops.fetch_raw(s, store.keys, b, inbox_b.id, 77)
        assert s.execute(select(Message.id).where(Message.id == stored.message_id)).scalar_one()


# --- no other module unseals message bytes --------------------------------------------------
PURPOSES = {"msg", "summary"}  # gateway.mailstore.sealed's purposes for a stored message
OPENER = ROOT / "gateway" / "mailstore" / "sealed.py"


def _unsealing_calls(path: Path, root: Path = ROOT) -> list[str]:
    """Where ``path`` names a stored message's purpose (a constant, or a module name bound to
    one) in a ``.open``/``.seal`` call or binds such a name, or reads a row's sealed bytes."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = str(path.relative_to(root))
    found: list[str] = []
    names = {t.id for node in tree.body if isinstance(node, ast.Assign)
             and isinstance(node.value, ast.Constant) and node.value.value in PURPOSES
             for t in node.targets if isinstance(t, ast.Name)}
    found += [f"{where}: binds {name}" for name in sorted(names)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in {"open", "seal"} and node.args:
            first = node.args[0]
            if (isinstance(first, ast.Constant) and first.value in PURPOSES) or \
                    (isinstance(first, ast.Name) and first.id in names):
                found.append(f"{where}:{node.lineno}")
        if isinstance(node, ast.ImportFrom) and node.module == "gateway.mailstore.chunks":
            if any(alias.name == "whole" for alias in node.names):  # the sealed bytes of a row
                found.append(f"{where}:{node.lineno} imports chunks.whole")
        if isinstance(node, ast.ImportFrom) and node.module == "gateway.mailstore.sealed":
            if any(alias.name.startswith("_") for alias in node.names):
                found.append(f"{where}:{node.lineno} imports a purpose")
    return found


def test_only_the_mail_store_opener_names_the_message_purposes() -> None:
    offenders = [hit for path in sorted((ROOT / "gateway").rglob("*.py")) if path != OPENER
                 for hit in _unsealing_calls(path)]
    assert offenders == []
    assert len(_unsealing_calls(OPENER)) >= 6  # the check above looks for what the opener really does


def test_the_scan_catches_a_second_opener(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from gateway.mailstore.chunks import whole\n"
                     "from gateway.mailstore.sealed import _MESSAGE\n"
                     "def peek(mk, row):\n    return mk.open('msg', row.uuid, whole(None, row.uuid, row.sealed))\n")
    assert len(_unsealing_calls(probe, tmp_path)) == 3
