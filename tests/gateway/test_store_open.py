"""Opening the store (issue 14): PostgreSQL URL forms, one-line errors, file modes, init on PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.app.config import load_settings
from gateway.app.context import Location, init_home, open_services
from gateway.settings import ConfigError
from gateway.store import migrate
from gateway.testing import pg
from gateway.testing.ports import free_port
from tests.cli_kit import run
from tests.conftest import require

INS = "253072A07300443"
COMMANDS = (["serve"], ["patient", "show", INS], ["pro", "list"], ["db", "upgrade"], ["audit", "verify"])




@pytest.fixture(autouse=True)
def no_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """An in-process ``serve`` that got past opening the store would block: fail instead."""
    import gateway.app.server

    async def started(_svc: object) -> None:
        raise AssertionError("serve opened the store and started")

    monkeypatch.setattr(gateway.app.server, "run", started)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return init_home(tmp_path / "gw", hostname="mx.gateway.test", patient_domain="patients.gateway.test").parent


def set_url(home: Path, url: str) -> None:
    config = home / "gateway.toml"
    config.write_text(config.read_text().replace('url = "sqlite:///gateway.db"', f'url = "{url}"'))


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gateway: error: "), err
    return lines[0]


# --- storage URL forms ---------------------------------------------------------------------


@pytest.mark.parametrize("url", ["postgresql://u:p@db.example:5432/gw", "postgres://u:p@db.example:5432/gw",
                                 "postgresql+psycopg://u:p@db.example:5432/gw"])
def test_postgresql_url_forms_mean_psycopg3(tmp_path: Path, url: str) -> None:
    settings = load_settings(None, environ={"GATEWAY__STORAGE__URL": url})
    assert settings.database_url == "postgresql+psycopg://u:p@db.example:5432/gw"


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql+psycopg2://u@h/db", "psycopg2 is not installed"),
    ("postgresql+asyncpg://u@h/db", "asyncpg is not installed"),
    ("mysql://x", "must be a sqlite:///"),
    ("postgresql://u@h:notaport/db", "not a valid database URL"),
])
def test_other_drivers_are_refused_in_the_config(url: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_settings(None, environ={"GATEWAY__STORAGE__URL": url})


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_plain_postgresql_url_opens_the_store(home: Path, pg_admin: str, scheme: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pg.temporary_database() as url:
        set_url(home, url.replace("postgresql+psycopg://", f"{scheme}://"))
        code, out, err = run(capsys, "--home", str(home), "db", "upgrade")
        assert code == 0, err
        assert "(head)" in out
        code, out, err = run(capsys, "--home", str(home), "pro", "list")
        assert code == 0 and "(none)" in out, err


# --- a store that cannot be opened: one line naming the URL and the cause ------------------


def _check_refusals(capsys: pytest.CaptureFixture[str], home: Path, shown: str, cause: str,
                    *, secret: str | None = None) -> None:
    for argv in COMMANDS:
        code, _, err = run(capsys, "--home", str(home), *argv)
        line = one_line_error(err)
        assert code == 1, (argv, err)
        assert shown in line and cause in line, (argv, line)
        if secret:
            assert secret not in line


def test_unreachable_postgresql_server(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    set_url(home, f"postgresql://gw:s3cret-pw@127.0.0.1:{port}/gw")
    _check_refusals(capsys, home, f"postgresql+psycopg://gw:***@127.0.0.1:{port}/gw", "Connection refused",
                    secret="s3cret-pw")


@pytest.mark.postgres
@pytest.mark.parametrize(("path", "cause"), [
    ("/postgres", 'role "nobody_hmg" does not exist'),
    ("/no_such_db_hmg", 'database "no_such_db_hmg" does not exist'),
])
def test_bad_credentials_or_database(home: Path, pg_admin: str, capsys: pytest.CaptureFixture[str],
                                     path: str, cause: str) -> None:
    host = pg_admin.split("@", 1)[1].rsplit("/", 1)[0]
    user = "nobody_hmg" if path == "/postgres" else pg_admin.split("://", 1)[1].split("@", 1)[0]
    set_url(home, f"postgres://{user}:hidden-pw@{host}{path}")
    _check_refusals(capsys, home, f"@{host}{path}", cause, secret="hidden-pw")


def test_sqlite_folder_missing(home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "gateway.db"
    set_url(home, f"sqlite:///{target}")
    _check_refusals(capsys, home, f"sqlite:///{target}", "folder not found")
    assert not (tmp_path / "nowhere").exists()


def test_sqlite_file_missing(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / "gateway.db").unlink()
    for argv in COMMANDS[:-2]:
        code, _, err = run(capsys, "--home", str(home), *argv)
        line = one_line_error(err)
        assert code == 1 and f"sqlite:///{home.resolve()}/gateway.db" in line
        assert "database file not found" in line and "gateway db upgrade" in line
    assert not (home / "gateway.db").exists()
    # 'db upgrade' is how an empty database is created on purpose.
    code, _, err = run(capsys, "--home", str(home), "db", "upgrade")
    assert code == 0, err
    assert (home / "gateway.db").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("content", "cause"), [
    (b"just some text, not a database\n" * 200, "file is not a database"),
    (None, "database disk image is malformed"),
])
def test_sqlite_file_not_a_database_or_corrupt(home: Path, capsys: pytest.CaptureFixture[str],
                                               content: bytes | None, cause: str) -> None:
    db = home / "gateway.db"
    if content is None:  # a real database whose schema pages were overwritten
        data = bytearray(db.read_bytes())
        data[100:4096] = b"\xff" * (4096 - 100)
        content = bytes(data)
    db.write_bytes(content)
    _check_refusals(capsys, home, f"sqlite:///{db.resolve()}", cause)
    assert db.read_bytes() == content


def test_sqlite_path_is_a_folder(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / "gateway.db").unlink()
    (home / "gateway.db").mkdir()
    _check_refusals(capsys, home, "gateway.db", "is a folder, not a database file")


def test_sqlite_file_not_writable(home: Path) -> None:
    """A read-only database file; as root the command runs without CAP_DAC_OVERRIDE (root writes anything)."""
    db = home / "gateway.db"
    os.chmod(db, 0o444)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        require(None if setpriv else "setpriv (util-linux) not found", "setpriv")
        drop = "-dac_override,-dac_read_search"
        prefix = [str(setpriv), f"--bounding-set={drop}", f"--inh-caps={drop}"]
    before = db.read_bytes()
    for argv in (["pro", "list"], ["db", "upgrade"], ["serve"]):
        proc = subprocess.run([*prefix, sys.executable, "-m", "gateway", "--home", str(home), *argv],
                              capture_output=True, text=True, timeout=60, check=False)
        line = one_line_error(proc.stderr)
        assert proc.returncode == 1 and f"sqlite:///{db.resolve()}" in line and "not writable" in line, line
    assert db.read_bytes() == before


# --- file modes -----------------------------------------------------------------------------


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_init_modes_even_with_a_permissive_umask(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "state"
    with umask(0):
        assert run(capsys, "init", "--home", str(home))[0] == 0
        assert mode(home) == 0o700
        assert mode(home / "keys") == 0o700 and mode(home / "tls") == 0o700
        for name in ("keys/master.keys", "tls/ca.key", "tls/server.key", "gateway.db", "gateway.toml"):
            assert mode(home / name) == 0o600, name
        svc = open_services(Location(home / "gateway.toml", home, True))
        try:
            with svc.db.write() as session:
                session.execute(text("CREATE TABLE mode_probe (x INTEGER)"))
            for suffix in ("-wal", "-shm"):
                side = home / f"gateway.db{suffix}"
                assert side.exists() and mode(side) == 0o600, suffix
        finally:
            svc.close()


def test_serve_first_run_creates_a_private_state_folder(tmp_path: Path) -> None:
    """The embedded default of ``gateway serve`` (a subprocess stopped as soon as it listens)."""
    from gateway.testing.ports import listen_env

    env = {**os.environ, **listen_env(), "GATEWAY_HOME": str(tmp_path / "var")}
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: os.umask(0))
    try:
        assert proc.stdout is not None
        for _ in range(200):
            line = proc.stdout.readline()
            if not line or "Try it" in line:
                break
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert mode(tmp_path / "var") == 0o700
    assert mode(tmp_path / "var" / "gateway.db") == 0o600


# --- init on PostgreSQL ---------------------------------------------------------------------


@pytest.mark.postgres
def test_init_with_postgresql_url_creates_no_sqlite_file(tmp_path: Path, pg_admin: str,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with pg.temporary_database() as url:
        monkeypatch.setenv("GATEWAY__STORAGE__URL", url.replace("postgresql+psycopg://", "postgresql://"))
        home = tmp_path / "gw"
        code, out, err = run(capsys, "init", "--home", str(home))
        assert code == 0, err
        assert not list(home.glob("gateway.db*"))
        assert "postgresql+psycopg://" in out and "gateway.db" not in out
        from sqlalchemy import create_engine

        engine = create_engine(url)
        try:
            assert migrate.current_revision(engine) == migrate.head_revision()
        finally:
            engine.dispose()
        code, out, err = run(capsys, "--home", str(home), "pro", "list")
        assert code == 0 and "(none)" in out, err
