"""Running processes pick up a new master key version without a restart (issue 14, seen #1).

Before the fix: after ``gateway keys rotate`` a running gateway answered ``451 4.3.0`` to
SMTP for every mailbox whose key it had not cached, IMAP ``NO`` and HTTP 500 on activation.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from crypto.keyring import MasterKeyring
from gateway.app.context import Location, open_services
from gateway.store import keys as keystore
from gateway.store.keyfile import write_keyring
from gateway.store.keys import KeyService
from gateway.store.models import DataKey
from gateway.testing.live import live_gateway, make_home
from gateway.testing.world import PASSWORD, populate
from routing.ins import synthetic_ins
from tests.keys.kit import ServeProcess, activate, cli, imap_read, send, submission


def _provision(home: Path, seed: int) -> tuple[str, str]:
    import random

    ins = synthetic_ins(random.Random(seed))
    code, out, err = cli("--home", str(home), "patient", "add", ins)
    assert code == 0, err
    found = re.search(r"activation code: (\S+)", out)
    assert found
    return ins, found.group(1)


def test_serving_gateway_reads_keys_rewrapped_by_rotation(tmp_path: Path) -> None:
    """SMTP delivery, IMAP read and patient activation of mailboxes not cached, after a rotation."""
    home = make_home(tmp_path / "home", extra_config="\n[web]\nlogin_delay_after = 50\n")
    world = populate(home)
    ins, code = _provision(home, 4242)
    with live_gateway(home) as live:
        ca = live.ca_file
        before = live.services.keys.ring.versions
        assert before == (1,)
        status, out, err = cli("--home", str(home), "keys", "rotate")
        assert status == 0, err
        assert "master key v2 added" in out and "re-wrapped" in out
        with submission(live.port("submission"), ca, world.pro, PASSWORD) as client:
            mid, reply, text = send(client, world.pro, world.patient())
            assert reply == 250, text
            mid2, reply, text = send(client, world.pro, world.colleague)
            assert reply == 250, text
        read = imap_read(live.port("imap"), ca, world.colleague, PASSWORD)
        assert read.refusals == [] and mid2 in read.message_ids
        status, secret = activate(f"http://127.0.0.1:{live.port('http')}", ins, code)
        assert status == 200 and secret
        assert live.services.keys.ring.versions == (1, 2)
        with live.services.db.read() as s:  # new keys wrapped with the new version
            assert set(s.execute(select(DataKey.master_version)).scalars()) == {2}
        assert mid


class CountingReader:
    def __init__(self, ring: MasterKeyring) -> None:
        self.ring = ring
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> MasterKeyring:
        with self.lock:
            self.calls += 1
        time.sleep(0.05)
        return self.ring


def test_on_demand_reread_is_once_for_many_threads_and_rate_limited(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    populate(home)
    svc = open_services(Location(home / "gateway.toml", home, True))
    try:
        ring = svc.keys.ring
        rotated = ring.with_new_version()
        with svc.db.write() as s:
            keystore.record_checks(s, rotated, [2])
            assert svc.keys.rewrap_all(s) == 0  # the service's own ring has only v1
            KeyService(rotated).rewrap_all(s)
        with svc.db.read() as s:
            key_ids = [(int(i), int(m)) for i, m in s.execute(select(DataKey.id, DataKey.mailbox_id)).tuples()]
        reader = CountingReader(rotated)
        service = KeyService(ring, reader=reader)
        errors: list[BaseException] = []

        def worker(key: tuple[int, int]) -> None:
            try:
                with svc.db.read() as s:
                    service.by_id(s, key[0], mailbox_id=key[1])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(key_ids[i % len(key_ids)],)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == [] and reader.calls == 1 and service.ring.versions == (1, 2)

        # A version nobody has: at most one re-read per interval, then KeyUnavailable (a temporary failure).
        reader.ring = rotated
        old_file = CountingReader(ring)
        stale = KeyService(ring, reader=old_file)
        with svc.db.read() as s:
            for _ in range(20):
                with pytest.raises(keystore.KeyUnavailable, match=r"v2, which .* lacks"):
                    stale.by_id(s, key_ids[0][0], mailbox_id=key_ids[0][1])
        assert old_file.calls == 1
    finally:
        svc.close()


def test_reload_with_a_bad_file_keeps_the_old_ring(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = make_home(tmp_path / "home")
    populate(home)
    svc = open_services(Location(home / "gateway.toml", home, True))
    path = svc.settings.master_key_path
    good = path.read_bytes()
    try:
        before = svc.keys.ring
        def damage(label: str) -> None:
            if label == "another installation":
                write_keyring(path, MasterKeyring({1: bytes(32)}))
            elif label == "mode 0644":
                path.write_bytes(good)
                path.chmod(0o644)
            elif label == "garbage":
                path.write_text("v1 = nope\n")
                path.chmod(0o600)
            elif label == "missing":
                path.unlink()
            else:
                write_keyring(path, MasterKeyring({5: bytes(32)}))

        for label in ("another installation", "mode 0644", "garbage", "missing", "v1 dropped"):
            damage(label)
            caplog.clear()
            with svc.db.read() as s:
                assert svc.keys.reload(s, reason="SIGHUP") is False, label
            lines = [r.getMessage() for r in caplog.records if r.name == "gateway.keys"]
            assert len(lines) == 1 and "not re-read (SIGHUP)" in lines[0] and "keeping v1" in lines[0], (label, lines)
            assert "\n" not in lines[0]
            assert svc.keys.ring is before
        path.write_bytes(good)
        path.chmod(0o600)
        with svc.db.read() as s:
            assert svc.keys.reload(s, reason="SIGHUP") is True
    finally:
        svc.close()


def test_sighup_reaches_the_serving_process_and_its_smtp_workers(tmp_path: Path) -> None:
    """``gateway serve`` with two SMTP processes: SIGHUP re-reads the key file in both; a bad
    file is refused by both (old keys kept, mail still accepted); then a rotation is picked up."""
    home = make_home(tmp_path / "home")
    world = populate(home)
    node = ServeProcess.make(home, GATEWAY__SMTP__PROCESSES="2")
    node.start()
    try:
        node.wait_log("SMTP process accepting")  # its SIGHUP handler is in place
        path = home / "keys" / "master.keys"
        status, out, err = cli("--home", str(home), "keys", "rotate", "--prepare")
        assert status == 0 and "master key v2 added" in out, err
        node.signal(signal.SIGHUP)
        node.wait_log("master key file re-read (SIGHUP): v1, v2 (was v1)", count=2)

        good = path.read_bytes()
        write_keyring(path, MasterKeyring({1: bytes(32), 2: bytes(32)}))
        node.signal(signal.SIGHUP)
        node.wait_log("master key file not re-read (SIGHUP)", count=2)
        with submission(node.port("submission"), node.ca, world.pro, PASSWORD) as client:
            for _ in range(4):
                assert send(client, world.pro, world.patient())[1] == 250
        path.write_bytes(good)

        status, out, err = cli("--home", str(home), "keys", "rotate")
        assert status == 0 and "using the prepared master key v2" in out, err
        replies = []
        for _ in range(6):  # new connections: both processes take some
            with submission(node.port("submission"), node.ca, world.pro, PASSWORD) as client:
                replies += [send(client, world.pro, to)[1] for to in (world.colleague, world.pharmacy)]
        assert replies == [250] * 12
        assert node.alive()
    finally:
        node.stop()


def test_a_node_whose_file_lacks_the_new_version_keeps_serving_then_catches_up(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Node A is not given the new key file (the documented step forgotten): it answers a
    temporary 451 for re-wrapped mailboxes, logs the missing version, and serves them as soon
    as the file is copied, without a restart."""
    import shutil

    home_a = make_home(tmp_path / "a", storage_url="sqlite:///gateway.db")
    world = populate(home_a)
    home_b = tmp_path / "b"  # another node on the same database, with its own key file
    shutil.copytree(home_a, home_b)
    (home_b / "gateway.toml").write_text((home_b / "gateway.toml").read_text().replace(
        'url = "sqlite:///gateway.db"', f'url = "sqlite:///{home_a / "gateway.db"}"'))
    with live_gateway(home_a) as live:
        status, _, err = cli("--home", str(home_b), "keys", "rotate")
        assert status == 0, err
        caplog.clear()
        with submission(live.port("submission"), live.ca_file, world.pro, PASSWORD) as client:
            _, code, text = send(client, world.pro, world.colleague)
            assert code == 451 and text.startswith("4.3.0"), (code, text)
            assert send(client, world.pro, world.colleague)[1] == 451
        lines = [r.getMessage() for r in caplog.records if r.name == "gateway.keys"]
        assert len(lines) == 1 and "v2 not in the file" in lines[0] and "keeping v1" in lines[0], lines
        shutil.copy2(home_b / "keys" / "master.keys", home_a / "keys" / "master.keys")
        time.sleep(keystore.RELOAD_MIN_INTERVAL_S)
        with submission(live.port("submission"), live.ca_file, world.pro, PASSWORD) as client:
            assert send(client, world.pro, world.colleague)[1] == 250
        read = imap_read(live.port("imap"), live.ca_file, world.colleague, PASSWORD)
        assert read.refusals == [] and len(read.message_ids) == 1
        assert live.services.keys.ring.versions == (1, 2)
