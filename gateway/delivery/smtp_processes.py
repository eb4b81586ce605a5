"""SMTP processes (``smtp.processes``): the SMTP listeners on more than one core.

One Python process runs its SMTP sessions on one core. With ``smtp.processes = N > 1`` the
serving process starts N - 1 more SMTP processes (``gateway smtp-process``) after binding
its listeners. Each inherits the three SMTP *listening sockets* and accepts on them as the
serving process does: the kernel gives a new connection to whichever process accepts it
first, so a process busy with a large message takes fewer. Sharing the socket (rather than
``SO_REUSEPORT`` groups) also keeps port 0, PROXY settings and TLS exactly as configured.
Each SMTP process has its own delivery pipeline and group-commit writer; the store orders
their commits (SQLite's write lock with ``busy_timeout``, PostgreSQL transactions), and
``250`` still follows the commit. IMAP, the web inbox, the outbound queue worker and the
jobs stay in the serving process. ("Worker" is the outbound queue's consumer only.)

What crosses processes, on one pipe from the SMTP processes to the serving process (each
line is written with one ``write`` shorter than ``PIPE_BUF``, so lines from several
processes never mix):

- ``m <mailbox id>``: a delivery committed; the serving process announces it to its
  :class:`~gateway.store.changes.ChangeHub` (IMAP IDLE and the HIGHESTMODSEQ freshness);
- ``c <counter> <label>...`` (tab-separated): a metrics counter to add one to, so that
  ``/metrics`` of the serving process counts every process's SMTP traffic.

SIGHUP to the serving process is passed on to every SMTP process: each re-reads the master
key file (an SMTP process also re-reads it by itself when it meets a data key wrapped with a
version it lacks, like the serving process).

An SMTP process's standard input is a pipe from the serving process: end of file (the
server is stopping, or died) makes it stop accepting and exit. SMTP processes run in a
session of their own, so a terminal's Ctrl-C reaches only the serving process, which then
stops them. One that exits by itself is started again after 1 s (doubling up to 30 s while
it keeps failing quickly).

The serving side is :class:`SmtpProcesses`; an SMTP process's own loop is composed by
``gateway.app.server.serve_smtp_process``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable

from gateway import metrics
from gateway.store.services import Services

log = logging.getLogger("gateway.smtp_processes")

SMTP_LISTENERS = ("mx", "submission", "submissions")
STOP_GRACE_S = 10.0
RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0


# --- the wire format of the notices pipe ---------------------------------------------------------

def mailbox_notice(mailbox_id: int) -> bytes:
    return b"m\t%d\n" % mailbox_id


def counter_notice(name: str, labels: tuple[str, ...]) -> bytes:
    return "\t".join(("c", name, *labels)).replace("\n", " ").encode()[:400] + b"\n"


class NoticeReader:
    """Splits the pipe's bytes into lines and applies each (pure: no I/O of its own)."""

    def __init__(self, on_mailbox: Callable[[int], None], on_counter: Callable[[str, tuple[str, ...]], None]) -> None:
        self.on_mailbox = on_mailbox
        self.on_counter = on_counter
        self._rest = b""

    def feed(self, data: bytes) -> None:
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()[-4096:]  # an unfinished line waits for its end (bounded)
        for line in lines:
            fields = line.decode("utf-8", "replace").split("\t")
            if fields[0] == "m" and len(fields) == 2 and fields[1].isdigit():
                self.on_mailbox(int(fields[1]))
            elif fields[0] == "c" and len(fields) >= 2:
                self.on_counter(fields[1], tuple(fields[2:]))
            else:
                log.warning("unreadable notice from an SMTP process", extra={"length": len(line)})


# --- the serving process's side -----------------------------------------------------------------

class SmtpProcesses:
    """Starts, watches and stops the SMTP processes of one serving process (``count - 1`` of
    them: the serving process is the first)."""

    def __init__(self, services: Services, stopping: asyncio.Event, sockets: dict[str, list[int]],
                 count: int) -> None:
        self.services = services
        self.stopping = stopping
        self.sockets = sockets
        self.count = count
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.starts = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        self._reader = NoticeReader(services.hub.wake_local, metrics.count)

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "gateway", "--config", os.path.abspath(self.services.source), "smtp-process",
                "--notices", str(self._write_fd)]
        for name, fds in self.sockets.items():
            argv += [arg for fd in fds for arg in ("--socket", f"{name}:{fd}")]
        return argv

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self._read_fd, self._read_available)
        self._tasks = [asyncio.create_task(self._keep(i), name=f"smtp-process-{i}") for i in range(1, self.count)]

    def _read_available(self) -> None:
        """Apply every notice the SMTP processes have written so far (the pipe is non-blocking)."""
        while True:
            try:
                data = os.read(self._read_fd, 65536)
            except BlockingIOError:
                return
            if not data:
                return
            self._reader.feed(data)

    async def _keep(self, index: int) -> None:
        """Run SMTP process ``index``; start it again whenever it exits while we are not closing."""
        delay = RESTART_MIN_S
        fds = [self._write_fd] + [fd for fds in self.sockets.values() for fd in fds]
        while not self._closing:
            started = time.monotonic()
            try:
                proc = await asyncio.create_subprocess_exec(*self.argv(), stdin=asyncio.subprocess.PIPE,
                                                            pass_fds=fds, start_new_session=True)
            except OSError as exc:  # out of processes or memory: the others keep serving; try again
                log.error("cannot start an SMTP process", extra={"smtp_process": index, "error": type(exc).__name__})
            else:
                self.procs[index] = proc
                self.starts += 1
                status = await proc.wait()
                if self._closing or self.stopping.is_set():
                    return
                log.error("SMTP process exited; starting it again", extra={"smtp_process": index, "status": status,
                                                                          "pid": proc.pid})
            if time.monotonic() - started > 60:
                delay = RESTART_MIN_S
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_S)

    def send_signal(self, sig: int) -> None:
        """Pass a signal on to every running SMTP process (SIGHUP: re-read the master key file)."""
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    async def close(self) -> None:
        self._closing = True
        for proc in self.procs.values():
            if proc.stdin is not None:
                proc.stdin.close()  # end of file: the SMTP process stops accepting and exits
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._read_fd)
        self._read_available()  # what the SMTP processes wrote before they exited
        os.close(self._read_fd)
        os.close(self._write_fd)


# --- an SMTP process's side ---------------------------------------------------------------------------

def parse_sockets(values: list[str]) -> dict[str, list[int]]:
    """``["mx:5", "mx:6", "submission:7"]`` -> ``{"mx": [5, 6], "submission": [7]}``."""
    out: dict[str, list[int]] = {}
    for value in values:
        name, _, fd = value.partition(":")
        if name not in SMTP_LISTENERS or not fd.isdigit():
            names = ", ".join(SMTP_LISTENERS)
            raise ValueError(f"--socket {value!r}: expected LISTENER:FD with LISTENER one of {names}")
        out.setdefault(name, []).append(int(fd))
    return out


def notice_writer(fd: int) -> Callable[[bytes], None]:
    def write(line: bytes) -> None:
        with contextlib.suppress(OSError):  # the serving process is gone: our stdin ends too
            os.write(fd, line)

    return write
