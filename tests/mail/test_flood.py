"""Issue 15 item 1: a connection flood on the MX must not take the other services down.

The gateway runs as ``gateway serve`` in a subprocess whose open-file limit is 1,024 (hard
and soft), on its defaults (only the ports set). A second subprocess
(``gateway.testing.flood``) opens 20 connections from each of 1,000 loopback addresses to
the MX and holds every connection the MX greets, as the attack of issue 15 did; before the
budgets, about 51 addresses sufficed to exhaust the descriptors, and IMAP and HTTP stopped
answering while asyncio logged every failed ``accept()``. During the flood this test probes
submission (EHLO), IMAP (greeting, LOGOUT) and the web (``/healthz``) every 0.25 s: each must
answer within 1 s. The gateway's log may grow by a few lines per second at most; its open
descriptors stay below the limit; the refusals are counted per reason.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.testing.live import make_home
from gateway.testing.ports import listen_env, wait_port

OPEN_FILES = 1024
FLOOD_S = 40.0


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, int], Path]]:
    home = make_home(tmp_path_factory.mktemp("flood") / "home")
    env = listen_env()
    ports = {name.rsplit("__", 1)[1].lower(): int(value.rsplit(":", 1)[1]) for name, value in env.items()}
    log_path = home / "gateway.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "--config", str(home / "gateway.toml"), "serve"],
                                env={**os.environ, **env}, stdout=log, stderr=log, preexec_fn=_limit_files)
    try:
        for port in ports.values():
            assert wait_port("127.0.0.1", port, 30), f"port {port} not listening"
        yield proc, ports, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _exchange(port: int, send: bytes, expect: bytes, first: bytes) -> float:
    """Connect, read the greeting, send, read until ``expect``: seconds taken (inf on failure)."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            data = sock.recv(4096)
            if not data.startswith(first):
                return float("inf")
            sock.sendall(send)
            while expect not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    return float("inf")
                data += chunk
    except OSError:
        return float("inf")
    return time.monotonic() - start


def _http(port: int) -> float:
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError:
        return float("inf")
    return time.monotonic() - start if data.startswith(b"HTTP/1.1 200 ") else float("inf")


def _probe(ports: dict[str, int]) -> dict[str, float]:
    return {
        "submission": _exchange(ports["submission"], b"EHLO probe.clinic.test\r\n", b"250 ", b"220 "),
        "imap": _exchange(ports["imap"], b"a1 LOGOUT\r\n", b"a1 OK", b"* OK "),
        "http": _http(ports["http"]),
    }


def _open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_mx_flood_leaves_imap_submission_and_web_answering(
        gateway: tuple[subprocess.Popen[bytes], dict[str, int], Path]) -> None:
    proc, ports, log_path = gateway
    assert _probe(ports)["imap"] < 1.0  # warm
    time.sleep(0.5)
    log_before = log_path.read_bytes().count(b"\n")
    flood = subprocess.Popen([sys.executable, "-m", "gateway.testing.flood", "--port", str(ports["mx"]),
                              "--addresses", "1000", "--per-address", "20", "--seconds", str(FLOOD_S), "--hold", "12"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    worst: dict[str, float] = {}
    descriptors = 0
    probes = 0
    started = time.monotonic()
    stop = threading.Event()

    def watch() -> None:
        nonlocal descriptors
        while not stop.is_set():
            descriptors = max(descriptors, _open_descriptors(proc.pid))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        while flood.poll() is None and time.monotonic() - started < FLOOD_S + 30:
            for name, seconds in _probe(ports).items():
                worst[name] = max(worst.get(name, 0.0), seconds)
            probes += 1
            time.sleep(0.25)
        out, _ = flood.communicate(timeout=30)
    finally:
        stop.set()
        watcher.join(5)
        if flood.poll() is None:
            flood.kill()
    elapsed = time.monotonic() - started
    result = json.loads(out.decode().strip().splitlines()[-1])
    log = log_path.read_bytes()
    lines = log.count(b"\n") - log_before
    refused = sum(v for k, v in result.items() if k.startswith("refused:421 4.7.0"))
    print(f"flood: {result}; probes {probes}, worst {worst}; {descriptors} descriptors at most; "
          f"{lines} log lines in {elapsed:.1f} s")
    assert result["attempts"] == 20_000, result
    assert refused >= 19_000 and result.get("held", 0) <= 300, result
    assert probes >= 10 and max(worst.values()) < 1.0, worst
    assert descriptors < OPEN_FILES, descriptors
    assert lines <= 3 * elapsed, log[-2000:]
    assert b"out of system resource" not in log and b"accept_emfile" not in log
    assert proc.poll() is None
