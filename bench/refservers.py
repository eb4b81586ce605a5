"""Reference servers for the side-by-side benchmark: Postfix and Dovecot, private instances.

Each runs from its own configuration in a temporary folder, listens on one loopback port,
and leaves the machine's own mail setup (/etc/postfix, /etc/dovecot, system services)
alone. Postfix: one instance, ``postfix -c DIR start``; recipients in ``maildir.test`` go
to one Maildir through the ``virtual`` delivery agent, recipients in ``discard.test`` are
discarded once queued (both after the queue file is fsync'd, as Postfix always does).
Dovecot: ``dovecot -c FILE``, plaintext LOGIN allowed (loopback only, no TLS), one user
from a passwd-file (password hashed ``{ARGON2ID}`` like the gateway's), Maildir under the temporary folder.
"""

# ruff: noqa: S603, S607 - fixed programs (smtp-source, postfix, dovecot, our venv) with arguments we build

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

POSTFIX_SERVICES = """\
{port} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def _wait_port(port: int, timeout: float = 20.0) -> bool:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Postfix:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.conf = root / "conf"
        self.mail = root / "mail"
        nobody = pwd.getpwnam("nobody")
        self.uid, self.gid = nobody.pw_uid, nobody.pw_gid

    def write_config(self) -> None:
        self.conf.mkdir(parents=True)
        (self.root / "queue").mkdir(mode=0o755)
        self.mail.mkdir()
        os.chown(self.mail, self.uid, self.gid)
        r = self.root
        (self.conf / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {r}/queue
data_directory = {r}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = ref.bench.test
mydomain = bench.test
myorigin = bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
relay_domains = discard.test
relay_recipient_maps =
transport_maps = inline:{{discard.test=discard:}}
virtual_mailbox_domains = maildir.test
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:{self.uid}
virtual_gid_maps = static:{self.gid}
virtual_mailbox_limit = 0
message_size_limit = 41943040
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtputf8_enable = no
maillog_file_prefixes = {r}
maillog_file = {r}/maillog
default_process_limit = 100
""")
        (self.conf / "master.cf").write_text(POSTFIX_SERVICES.format(port=f"127.0.0.1:{self.port}"))

    def start(self) -> None:
        self.write_config()
        env = {**os.environ, "MAIL_CONFIG": str(self.conf)}
        subprocess.run(["postfix", "-c", str(self.conf), "check"], check=True, env=env, capture_output=True)
        with (self.root / "start.log").open("wb") as log:
            subprocess.run(["postfix", "-c", str(self.conf), "start"], check=True, env=env, stdin=subprocess.DEVNULL,
                           stdout=log, stderr=subprocess.STDOUT, timeout=60)
        if not _wait_port(self.port):
            raise RuntimeError(f"postfix did not listen on 127.0.0.1:{self.port}; see {self.root}/maillog")

    @property
    def pid(self) -> int:
        return int((self.root / "queue" / "pid" / "master.pid").read_text().split()[0])

    def maildir_count(self) -> int:
        total = 0
        for sub in ("new", "cur"):
            d = self.mail / "box" / sub
            if d.exists():
                total += sum(1 for _ in d.iterdir())
        return total

    def queue_empty(self) -> bool:
        for sub in ("incoming", "active", "deferred", "maildrop"):
            d = self.root / "queue" / sub
            if d.exists() and any(p.is_file() for p in d.rglob("*")):
                return False
        return True

    def wait_drained(self, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queue_empty():
                return True
            time.sleep(0.2)
        return False

    def clear_maildir(self) -> None:
        for sub in ("new", "cur"):
            d = self.mail / "box" / sub
            if d.exists():
                for p in d.iterdir():
                    p.unlink()

    def stop(self) -> None:
        subprocess.run(["postfix", "-c", str(self.conf), "stop"], check=False, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "MAIL_CONFIG": str(self.conf)}, timeout=60)
        deadline = time.monotonic() + 20
        pidfile = self.root / "queue" / "pid" / "master.pid"
        while time.monotonic() < deadline and pidfile.exists():
            time.sleep(0.2)


class Dovecot:
    USER = "bench"
    PASSWORD = "bench-password"  # noqa: S105 - synthetic local account for the benchmark

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.file = root / "dovecot.conf"
        nobody = pwd.getpwnam("nobody")
        self.uid, self.gid = nobody.pw_uid, nobody.pw_gid

    def write_config(self) -> None:
        r = self.root
        (r / "run").mkdir(parents=True)
        (r / "mail").mkdir()
        os.chown(r / "mail", self.uid, self.gid)
        # ARGON2ID like the gateway's accounts (64 MiB, 3 passes, one lane, and libsodium computes
        # it on both sides since the gateway moved to PyNaCl), so LOGIN costs compare.
        hashed = subprocess.run(["doveadm", "pw", "-s", "ARGON2ID", "-p", self.PASSWORD], check=True,
                                capture_output=True, text=True, timeout=60).stdout.strip()
        (r / "passwd").write_text(f"{self.USER}:{hashed}:{self.uid}:{self.gid}::{r}/mail/%u\n")
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
mail_location = maildir:{r}/mail/%u/Maildir
mail_max_userip_connections = 200
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/passwd
}}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={r}/mail/%u
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
        (r / "state").mkdir()

    def start(self) -> None:
        self.write_config()
        with (self.root / "start.log").open("wb") as log:
            subprocess.run(["dovecot", "-c", str(self.file)], check=True, stdin=subprocess.DEVNULL, stdout=log,
                           stderr=subprocess.STDOUT, timeout=30)
        if not _wait_port(self.port):
            raise RuntimeError(f"dovecot did not listen on 127.0.0.1:{self.port}; see {self.root}/dovecot.log")
        deadline = time.monotonic() + 20
        while not (self.root / "run" / "master.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        return int((self.root / "run" / "master.pid").read_text().split()[0])

    def stop(self) -> None:
        subprocess.run(["dovecot", "-c", str(self.file), "stop"], check=False, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (self.root / "run" / "master.pid").exists():
            time.sleep(0.2)


def have(program: str) -> bool:
    return shutil.which(program) is not None
