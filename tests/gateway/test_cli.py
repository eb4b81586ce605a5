"""The ``gateway`` command line, in process (fast) and as a real subprocess (serve)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.testing.ports import listen_env, wait_port
from routing.ins import synthetic_ins
from tests.cli_kit import new_home, run


@pytest.fixture
def home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    return new_home(capsys, tmp_path)


def test_help_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["serve", "--help"], ["init", "--help"], ["db", "upgrade", "--help"],
                 ["domain", "trust", "add", "--help"], ["domain", "hosted", "add", "--help"],
                 ["pro", "add", "--help"], ["patient", "add", "--help"], ["patient", "show", "--help"],
                 ["keys", "rotate", "--help"], ["audit", "verify", "--help"]):
        code, out, _ = run(capsys, *argv)
        assert code == 0 and "usage: gateway" in out


def test_init_creates_state_folder(home: str) -> None:
    root = Path(home)
    assert (root / "gateway.toml").is_file() and (root / "gateway.db").is_file()
    assert (root / "keys" / "master.keys").stat().st_mode & 0o777 == 0o600
    assert (root / "tls" / "server.key").stat().st_mode & 0o777 == 0o600
    for name in ("ca.pem", "server.pem"):
        assert b"BEGIN CERTIFICATE" in (root / "tls" / name).read_bytes()


def test_init_refuses_to_overwrite(home: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "init", "--home", home)
    assert code == 1 and "already exists" in err


def test_patient_add_validates_ins(home: str, capsys: pytest.CaptureFixture[str]) -> None:
    good = synthetic_ins(random.Random(7))
    bad = good[:13] + f"{(int(good[13:]) + 1) % 100:02d}"
    code, _, err = run(capsys, "--home", home, "patient", "add", bad)
    assert code == 1 and err.strip() == "gateway: error: invalid INS (check key)"
    code, _, err = run(capsys, "--home", home, "patient", "add", "12345")
    assert code == 1 and "invalid INS" in err
    code, out, _ = run(capsys, "--home", home, "patient", "add", good, "--email", "p@perso.example")
    assert code == 0 and "activation code:" in out and good not in out.split("\n")[0].split(":")[0]
    code, _, err = run(capsys, "--home", home, "patient", "add", good)
    assert code == 1 and "already exists" in err


@pytest.mark.parametrize("ins", ["253072B07300470", "253072A07300443", "253072a07300443"])
def test_patient_add_accepts_corsican_ins(home: str, capsys: pytest.CaptureFixture[str], ins: str) -> None:
    code, out, _ = run(capsys, "--home", home, "patient", "add", ins, "--open")
    assert code == 0 and "(open)" in out
    code, out, _ = run(capsys, "--home", home, "patient", "show", ins, "--json")
    info = json.loads(out)
    assert code == 0 and info["state"] == "open" and info["ins"] == ins.upper()


def test_admin_commands_end_to_end(home: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    g = ("--home", home)
    assert run(capsys, *g, "domain", "hosted", "add", "Clinic.TEST")[0] == 0
    code, out, _ = run(capsys, *g, "domain", "hosted", "dkim", "clinic.test")
    assert code == 0 and "._domainkey.clinic.test. IN TXT" in out and "v=DKIM1; k=rsa; p=" in out
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough password\n"))
    assert run(capsys, *g, "pro", "add", "Dr.A@clinic.test", "--name", "Dr A", "--password-stdin")[0] == 0
    code, _, err = run(capsys, *g, "pro", "add", "x@elsewhere.test")
    assert code == 1 and "not a hosted domain" in err
    code, out, _ = run(capsys, *g, "pro", "list", "--json")
    assert [p["address"] for p in json.loads(out)] == ["dr.a@clinic.test"]

    from crypto.dkim_keys import generate_dkim_key

    key = tmp_path / "peer.txt"
    key.write_text(f'"v=DKIM1; k=rsa; p={generate_dkim_key(1024)[1].decode()}"')
    assert run(capsys, *g, "domain", "trust", "add", "hopital.example", "--description", "Hôpital",
               "--dn", "CN=mx.hopital.example", "--route", "127.0.0.1:3525",
               "--dkim", f"pinned:sel1:{key}")[0] == 0
    code, _, err = run(capsys, *g, "domain", "trust", "add", "bad.example", "--route", "nohost")
    assert code == 1 and "route: expected host:port" in err  # the message of the console's operation
    code, _, err = run(capsys, *g, "domain", "trust", "add", "bad.example", "--dkim", "pinned:x")
    assert code == 1 and "--dkim" in err
    assert run(capsys, *g, "domain", "trust", "suspend", "hopital.example")[0] == 0
    code, out, _ = run(capsys, *g, "domain", "trust", "list", "--json")
    (entry,) = json.loads(out)
    assert entry["status"] == "suspended" and entry["dkim"] == "pinned:sel1" and entry["route"] == "127.0.0.1:3525"
    assert run(capsys, *g, "domain", "trust", "remove", "hopital.example")[0] == 0
    code, _, err = run(capsys, *g, "domain", "trust", "remove", "hopital.example")
    assert code == 1 and "not in the trust list" in err

    assert run(capsys, *g, "keys", "rotate")[0] == 0
    code, out, _ = run(capsys, *g, "keys", "status")
    assert code == 0 and "2        True" in out
    code, out, _ = run(capsys, *g, "audit", "verify")
    assert code == 0 and "audit trail intact" in out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t + "\n[listen2]\nx = 1\n", "listen2: unknown key"),
        (lambda t: t.replace('mx = "127.0.0.1:2525"', 'mx = "127.0.0.1:70000"'), "listen.mx: port 70000"),
        (lambda t: t.replace('master_key_file = "keys/master.keys"', 'master_key_file = "keys/nope.keys"'),
         "keys.master_key_file: file not found"),
    ],
)
def test_bad_config_exits_and_writes_nothing(home: str, capsys: pytest.CaptureFixture[str], edit: object,
                                             expected: str) -> None:
    config = Path(home) / "gateway.toml"
    config.write_text(edit(config.read_text()))  # type: ignore[operator]
    os.remove(Path(home) / "gateway.db")
    before = _snapshot(Path(home))
    for argv in (["serve"], ["patient", "add", "253072A07300443"], ["db", "upgrade"]):
        code, _, err = run(capsys, "--home", home, *argv)
        assert code == 1 and expected in err and str(config) in err
    assert _snapshot(Path(home)) == before


def test_missing_config_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--config", str(tmp_path / "none.toml"), "patient", "show", "253072A07300443")
    assert code == 1 and "configuration file not found" in err
    assert not any(tmp_path.iterdir())


def test_serve_from_nothing_listens_and_stops(tmp_path: Path) -> None:
    """`gateway serve` with no configuration creates the embedded default, then listens."""
    env = {**os.environ, **listen_env(), "GATEWAY_HOME": str(tmp_path / "state")}
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for name in ("HTTP", "MX", "SUBMISSION", "SUBMISSIONS", "IMAP", "IMAPS"):
            host, port = env[f"GATEWAY__LISTEN__{name}"].rsplit(":", 1)
            if name in SERVED:
                assert wait_port(host, int(port)), f"{name} listener did not start"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "first run: created the embedded default" in out and "Try it, from" in out
    assert (tmp_path / "state" / "gateway.toml").is_file()


SERVED = {"HTTP", "MX", "SUBMISSION", "SUBMISSIONS", "IMAP", "IMAPS"}
