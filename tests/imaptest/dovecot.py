"""A private Debian Dovecot (``dovecot-imapd``) on loopback: imaptest's reference server.

``dovecot -c FILE`` with its own configuration, run and state folders under a temporary
folder, one IMAP listener on a free 127.0.0.1 port, no TLS, plaintext LOGIN allowed; the
machine's own ``/etc/dovecot`` and any system instance are left alone. Users come from a
passwd-file; each has its own home, so a user per test is a fresh Maildir per test, the
clean state imaptest's scripts assume.

Settings, as imaptest's own runs against Dovecot assume:

- ``mail_location = maildir:~/Maildir`` (hierarchy separator ``.``);
- ``mailbox_list_index = yes``: Dovecot 2.3 offers NOTIFY only with it (the ``notify`` test);
- everything else Debian's defaults, which offer the extensions the tests need (BINARY,
  CATENATE, CONTEXT=SEARCH, ESEARCH, ESORT, LIST-EXTENDED, MOVE, MULTIAPPEND, QRESYNC, SORT,
  SORT=DISPLAY, THREAD=..., UIDPLUS, ID) and not URLAUTH (needs an imap-urlauth service) nor
  CONTEXT=SORT (Dovecot never offers it): the reference's four skips.

Mail processes run as ``nobody``; the folder is made traversable for it.
"""



from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from gateway.testing.ports import free_port


def available() -> str | None:
    """None when ``dovecot`` can run here, else why not."""
    if shutil.which("dovecot") is None:
        return "dovecot not installed (scripts/system-deps installs dovecot-imapd)"
    if os.geteuid() != 0:
        return "a private Dovecot instance needs root (it drops to nobody for mail)"
    return None


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class PrivateDovecot:
    def __init__(self, root: Path, users: Sequence[str], password: str, port: int | None = None) -> None:
        self.root = root
        self.users = list(users)
        self.password = password
        self.port = port or free_port()
        self.file = root / "dovecot.conf"
        nobody = pwd.getpwnam("nobody")
        self.uid, self.gid = nobody.pw_uid, nobody.pw_gid

    def write_config(self) -> None:
        r = self.root
        r.chmod(0o755)  # mail processes (nobody) reach the homes through it
        for sub in ("run", "state", "home"):
            (r / sub).mkdir()
        os.chown(r / "home", self.uid, self.gid)
        (r / "passwd").write_text("".join(
            f"{u}:{{PLAIN}}{self.password}:{self.uid}:{self.gid}::{r}/home/{u}\n" for u in self.users))
        self.file.write_text(f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
info_log_path = {r}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
mailbox_list_index = yes
mail_max_userip_connections = 100
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = {r}/passwd
}}
userdb {{
  driver = passwd-file
  args = {r}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""")

    def start(self) -> None:
        self.write_config()
        with (self.root / "start.log").open("wb") as log:
            subprocess.run(["dovecot", "-c", str(self.file)], check=True, stdin=subprocess.DEVNULL, stdout=log,
                           stderr=subprocess.STDOUT, timeout=30)
        if not _wait_port(self.port, 20):
            raise RuntimeError(f"dovecot did not listen on 127.0.0.1:{self.port}; see {self.log_tail()}")

    def stop(self) -> None:
        pid_file = self.root / "run" / "master.pid"
        subprocess.run(["dovecot", "-c", str(self.file), "stop"], check=False, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and pid_file.exists():
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.root / "dovecot.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no dovecot.log)"


@contextmanager
def private_dovecot(users: Sequence[str], password: str) -> Iterator[PrivateDovecot]:
    """A running private instance with these users, stopped and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="imaptest-dovecot-"))
    server = PrivateDovecot(root, users, password)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
