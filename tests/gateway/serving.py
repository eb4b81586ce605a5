"""Helpers for tests that drive a real ``gateway serve`` process with shell commands, as a user does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.testing.ports import listen_env, wait_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Serving:
    proc: subprocess.Popen[str]
    env: dict[str, str]
    output: list[str] = field(default_factory=list)

    def address(self, name: str) -> tuple[str, int]:
        host, port = self.env[f"GATEWAY__LISTEN__{name.upper()}"].rsplit(":", 1)
        return host, int(port)

    def assert_still_serving(self) -> None:
        """Alive, healthy, answering SMTP and serving the web inbox."""
        assert self.proc.poll() is None, "the gateway stopped"
        host, port = self.address("http")
        health = httpx.get(f"http://{host}:{port}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        assert httpx.get(f"http://{host}:{port}/connexion", timeout=10).status_code == 200
        import smtplib

        with smtplib.SMTP(*self.address("mx"), timeout=10) as smtp:
            assert smtp.ehlo()[0] == 250


@contextmanager
def serving(home: Path, *, cwd: Path = ROOT, extra_env: Mapping[str, str] | None = None) -> Iterator[Serving]:
    """``gateway serve`` (this interpreter's) on free loopback ports, until its "Try it" is printed."""
    env = {**os.environ, **listen_env(), "GATEWAY_HOME": str(home), **(extra_env or {})}
    log = tempfile.TemporaryFile("w+")  # the gateway's log: a file, so that it can never fill a pipe
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=log, text=True)
    running = Serving(proc, env)
    try:
        assert proc.stdout is not None
        for _ in range(500):
            line = proc.stdout.readline()
            if not line:
                log.seek(0)
                raise AssertionError("gateway serve exited: " + log.read()[-3000:])
            running.output.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C stops"):
                break
        assert wait_port(*running.address("http")), "no HTTP listener"
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)
        log.close()


def commands_of(lines: list[str]) -> list[str]:
    """Shell commands of a code block: comments and blank lines dropped, ``\\`` continuations joined."""
    commands: list[str] = []
    pending = ""
    for raw in lines:
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        commands.append(pending + line)
        pending = ""
    if pending:
        commands.append(pending.strip())
    return commands


def run_commands(commands: list[str], env: Mapping[str, str], cwd: Path = ROOT, timeout: float = 300) -> str:
    """Run ``commands`` in one bash (exports carry over); each must exit 0. Returns the output."""
    script = ["set -uo pipefail"]
    for number, command in enumerate(commands, 1):
        script.append(f"{{ {command}\n}} || {{ echo 'command {number} failed' >&2; exit 1; }}")
    proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        failed = proc.stderr.strip().splitlines()[-1:] or ["?"]
        number = int(failed[0].split()[1]) if failed[0].startswith("command ") else 0
        shown = commands[number - 1] if number else "(unknown)"
        raise AssertionError(f"exit {proc.returncode} from: {shown}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc.stdout
