"""SMTP processes (``smtp.processes``, ``gateway.delivery.smtp_processes``).

- the notices wire format, fed whole and one byte at a time;
- one ``gateway smtp-process`` on a socket the test owns: it alone accepts, so its
  delivery, its mailbox notice and its counters are seen deterministically on the pipe;
- ``gateway serve`` with three SMTP processes: every message stored once, a killed SMTP
  process started again, every one gone after the server stops.
"""

from __future__ import annotations

import os
import select
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway import metrics
from gateway.delivery.smtp_processes import NoticeReader, counter_notice, mailbox_notice, parse_sockets
from gateway.testing.live import make_home
from gateway.testing.ports import listen_env, wait_port
from gateway.testing.world import PASSWORD, World, populate

# --- the wire format ------------------------------------------------------------------------------

def _collect() -> tuple[NoticeReader, list[int], list[tuple[str, tuple[str, ...]]]]:
    boxes: list[int] = []
    counts: list[tuple[str, tuple[str, ...]]] = []
    return NoticeReader(boxes.append, lambda n, labels: counts.append((n, labels))), boxes, counts


STREAM = mailbox_notice(7) + counter_notice("messages_refused", ("mx", "rcpt", "routing.unknown")) + mailbox_notice(12)


@pytest.mark.parametrize("step", [len(STREAM), 1, 5])
def test_notices_parse_whole_and_split(step: int) -> None:
    reader, boxes, counts = _collect()
    for i in range(0, len(STREAM), step):
        reader.feed(STREAM[i:i + step])
    assert boxes == [7, 12]
    assert counts == [("messages_refused", ("mx", "rcpt", "routing.unknown"))]


def test_unreadable_notices_are_dropped_and_an_unfinished_line_stays_bounded() -> None:
    reader, boxes, counts = _collect()
    reader.feed(b"m\tnot-a-number\nx\ty\n\n" + mailbox_notice(3))
    assert boxes == [3] and counts == []
    reader.feed(b"m\t" + b"9" * 100_000)  # never ends: kept to a bounded tail
    assert len(reader._rest) <= 4096
    reader.feed(b"\n")  # the truncated tail is still a number, so it may count; nothing crashes
    assert boxes[0] == 3


def test_counter_notice_cannot_break_the_line_format() -> None:
    line = counter_notice("messages_refused", ("mx", "data", "smtp.5.6.0\nm\t99"))
    assert line.count(b"\n") == 1 and line.endswith(b"\n")


def test_parse_sockets() -> None:
    assert parse_sockets(["mx:5", "mx:6", "submission:7"]) == {"mx": [5, 6], "submission": [7]}
    for bad in ("imap:5", "mx", "mx:five", ":5"):
        with pytest.raises(ValueError, match="LISTENER:FD"):
            parse_sockets([bad])


def test_metrics_forward_sends_instead_of_counting() -> None:
    sent: list[tuple[str, tuple[str, ...]]] = []
    before = metrics.CONNECTIONS.labels("mx")._value.get()
    metrics.forward = lambda name, labels: sent.append((name, labels))
    try:
        metrics.connection("mx")
    finally:
        metrics.forward = None
    assert sent == [("connections", ("mx",))]
    assert metrics.CONNECTIONS.labels("mx")._value.get() == before
    metrics.count("connections", ("mx",))  # what the serving process does with the notice
    metrics.count("no_such_counter", ("mx",))  # dropped, never raises
    metrics.count("connections", ("mx", "extra"))  # wrong label count: dropped
    assert metrics.CONNECTIONS.labels("mx")._value.get() == before + 1


# --- one SMTP process on a socket of our own ------------------------------------------------------

def _send(world: World, port: int, ca: str, subject: str) -> None:
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        client.starttls(context=ssl.create_default_context(cafile=ca))
        client.login(world.pro, PASSWORD)
        raw = (f"From: {world.pro}\r\nTo: {world.patient()}\r\nSubject: {subject}\r\n\r\nCompte rendu.\r\n").encode()
        assert client.sendmail(world.pro, [world.patient()], raw) == {}
    finally:
        client.quit()


def _stored(home: Path) -> int:
    from gateway.app.context import Location, open_services
    from gateway.store.models import Message

    svc = open_services(Location(home / "gateway.toml", home, True))
    try:
        with svc.db.read() as session:
            return session.query(Message).count()
    finally:
        svc.close()


def _read_lines(fd: int, want: int, timeout: float) -> list[bytes]:
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"\n") < want and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            data += os.read(fd, 65536)
    return data.splitlines()


def test_smtp_process_delivers_and_tells_the_serving_process(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    world = populate(home)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(home / "gateway.toml"), "smtp-process",
         "--socket", f"submission:{listener.fileno()}", "--notices", str(write_fd)],
        stdin=subprocess.PIPE, pass_fds=(listener.fileno(), write_fd), stderr=subprocess.PIPE)
    try:
        os.close(write_fd)
        # nobody in this process accepts: the connection waits in the backlog for the SMTP process
        _send(world, port, str(home / "tls" / "ca.pem"), "par un autre processus")
        lines = _read_lines(read_fd, 3, 30)
        assert b"c\tconnections\tsubmission" in lines
        assert b"c\tmessages_accepted\tsubmission" in lines
        boxes = [line for line in lines if line.startswith(b"m\t")]
        assert len(boxes) == 1 and boxes[0][2:].isdigit()
        assert _stored(home) == 1
        assert proc.stdin is not None
        proc.stdin.close()  # the serving process goes away: the SMTP process stops by itself
        assert proc.wait(20) == 0
        assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(read_fd)
        listener.close()


def test_smtp_process_refuses_bad_arguments_with_one_line(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    out = subprocess.run([sys.executable, "-m", "gateway", "--config", str(home / "gateway.toml"), "smtp-process",
                          "--socket", "imap:3", "--notices", "1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip().startswith("gateway: error: --socket 'imap:3'")


# --- gateway serve with three SMTP processes ------------------------------------------------------

def _stat(pid: int | str) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    found = _stat(pid)
    return found is not None and found[0] != "Z"


def _smtp_processes(parent: int) -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        found = _stat(entry.name) if entry.name.isdigit() else None
        if found is None or found[1] != parent or found[0] == "Z":
            continue
        try:
            if b"smtp-process" in (entry / "cmdline").read_bytes():
                pids.add(int(entry.name))
        except OSError:
            continue
    return pids


def _wait_smtp_processes(parent: int, count: int, exclude: set[int] = frozenset(), timeout: float = 30) -> set[int]:  # type: ignore[assignment]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = _smtp_processes(parent) - exclude
        if len(pids) >= count:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"expected {count} SMTP processes under {parent}, saw {_smtp_processes(parent)}")


@contextmanager
def _serving(home: Path, processes: int, **popen: Any) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``gateway serve`` with ``smtp.processes = processes``: (process, submission port); killed at the end."""
    env = {**os.environ, **listen_env(), "GATEWAY__SMTP__PROCESSES": str(processes)}
    port = int(env["GATEWAY__LISTEN__SUBMISSION"].rsplit(":", 1)[1])
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--home", str(home)], env=env, **popen)
    try:
        assert wait_port("127.0.0.1", port, 30), "gateway did not start"
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_serve_with_three_smtp_processes(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    world = populate(home)
    ca = str(home / "tls" / "ca.pem")
    with _serving(home, 3, stdout=subprocess.PIPE) as (proc, port):
        first = _wait_smtp_processes(proc.pid, 2)
        for i in range(12):
            _send(world, port, ca, f"message {i}")
        assert _stored(home) == 12

        victim = sorted(first)[0]
        os.kill(victim, signal.SIGKILL)  # the serving process starts another in its place
        again = _wait_smtp_processes(proc.pid, 2, exclude={victim}, timeout=20)
        assert victim not in again
        for i in range(6):
            _send(world, port, ca, f"after restart {i}")
        assert _stored(home) == 18

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        for pid in again:  # the server waited for (and reaped) every SMTP process before exiting
            assert not Path(f"/proc/{pid}").exists()
        assert proc.stdout is not None
        assert b"2 more SMTP processes on the same sockets" in proc.stdout.read()


def test_ctrl_c_to_the_process_group_stops_everything_without_a_restart(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    log = tmp_path / "serve.log"
    with log.open("wb") as err, _serving(home, 2, stderr=err, start_new_session=True) as (proc, _port):
        processes = _wait_smtp_processes(proc.pid, 1)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        assert proc.wait(30) == 0
        assert all(not Path(f"/proc/{pid}").exists() for pid in processes)
    assert b"starting it again" not in log.read_bytes()


def test_smtp_processes_exit_when_the_serving_process_is_killed(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    with _serving(home, 2) as (proc, _port):
        processes = _wait_smtp_processes(proc.pid, 1)
        time.sleep(2)  # let the SMTP process get past its start-up
        proc.kill()  # no chance to stop them: their standard input ends
        proc.wait(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(pid) for pid in processes):
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in processes), "an SMTP process outlived the serving process"
