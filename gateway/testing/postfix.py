"""Debian's Postfix as a trusted operator's MTA, for interoperability tests (issue 17).

A private instance: its own ``config_directory``, ``queue_directory``, ``data_directory`` and
log file in a temporary folder, one ``smtpd`` on a loopback port, started as root with
``postfix -c DIR start`` (the master then runs its daemons as the ``postfix`` user); the
machine's own mail setup is left alone (``/etc/postfix/main.cf`` is not read, a system Postfix
on port 25 is neither needed nor disturbed). Everything is Postfix's default except what makes it this operator:

- its names (``myhostname``, ``mydomain``; ``myorigin`` stays its default, the host name, so
  its bounces come from ``MAILER-DAEMON@<host name>``);
- its users: virtual mailboxes in Maildirs (``raw_messages(user)``), unknown users refused at
  ``RCPT``; mail from loopback (``mynetworks``) is its own users' submission (``send``);
- relaying to the gateway: ``transport_maps`` sends the gateway's domains to its MX (any other
  destination fails at once: nothing leaves loopback, no DNS is asked), with
  ``smtp_tls_security_level = verify`` against the gateway's CA and a client certificate;
  a TLS policy entry names the certificate's host name (the gateway's MX is reached by IP);
- ``smtpd`` offers STARTTLS with the operator's certificate (the gateway verifies it);
- ``check_recipient_access`` from a file the test may fill (``defer``), e.g. with a
  ``451`` for one address, then ``reload``.

Concurrency, retry, bounce and DSN settings are Postfix's defaults, untouched.
"""

# ruff: noqa: S603, S607 - fixed programs (postfix, postqueue) with arguments we build

from __future__ import annotations

import json
import os
import pwd
import shutil
import smtplib
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from gateway.testing.ports import free_port, wait_port

# master.cf: the daemons this instance needs, with Postfix's own defaults for process limits
# (``-``); no chroot (the queue is a temporary folder).
MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def problem() -> str | None:
    """Why a private Postfix cannot run here, or None."""
    if shutil.which("postfix") is None or not Path("/usr/lib/postfix/sbin/master").exists():
        return "Debian's postfix is not installed (scripts/system-deps installs it)"
    if os.geteuid() != 0:
        return "a private Postfix starts as root (its master switches to the postfix user)"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "no postfix user (install Debian's postfix package)"
    return None


@dataclass(frozen=True)
class Relay:
    """Where Postfix sends a domain: the gateway's MX at ``host:port``, its certificate's name."""

    domains: tuple[str, ...]
    host: str
    port: int
    cert_name: str  # a DNS name in the gateway's MX certificate (TLS "verify" matches it)


@dataclass
class PostfixPeer:
    root: Path
    hostname: str  # myhostname, e.g. mx.hopital.test
    domain: str  # the operator's mail domain (virtual mailboxes)
    users: tuple[str, ...]  # local parts with a Maildir
    relay: Relay
    cert_file: Path  # the operator's certificate: STARTTLS in smtpd, client certificate in smtp
    key_file: Path
    ca_file: Path  # verifies the gateway's MX certificate
    port: int = field(default_factory=free_port)

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def mail(self) -> Path:
        return self.root / "mail"

    @property
    def log_file(self) -> Path:
        return self.root / "maillog"

    @property
    def route(self) -> str:
        """The gateway trust entry's route to this Postfix's smtpd."""
        return f"127.0.0.1:{self.port}"

    def address(self, user: str) -> str:
        return f"{user}@{self.domain}"

    # -- configuration ------------------------------------------------------------------

    def main_cf(self) -> str:
        r, c = self.root, self.conf
        nobody = pwd.getpwnam("nobody")
        return f"""\
compatibility_level = 3.6
queue_directory = {r}/queue
data_directory = {r}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {self.hostname}
mydomain = {self.domain}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
biff = no
virtual_mailbox_domains = {self.domain}, {self.hostname}
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = texthash:{c}/mailboxes
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
transport_maps = texthash:{c}/transport
default_transport = error:5.7.1 this test's Postfix sends only to the gateway on loopback
smtpd_recipient_restrictions = check_recipient_access texthash:{c}/recipient_access
smtpd_tls_security_level = may
smtpd_tls_cert_file = {c}/operator.pem
smtpd_tls_key_file = {c}/operator.key
smtpd_tls_loglevel = 1
smtp_tls_security_level = verify
smtp_tls_CAfile = {c}/gateway-ca.pem
smtp_tls_cert_file = {c}/operator.pem
smtp_tls_key_file = {c}/operator.key
smtp_tls_policy_maps = texthash:{c}/tls_policy
smtp_tls_loglevel = 1
maillog_file_prefixes = {r}
maillog_file = {self.log_file}
"""

    def write_config(self) -> None:
        c = self.conf
        c.mkdir(parents=True)
        (self.root / "queue").mkdir(mode=0o755)
        self.mail.mkdir()
        nobody = pwd.getpwnam("nobody")
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        shutil.copyfile(self.cert_file, c / "operator.pem")
        shutil.copyfile(self.key_file, c / "operator.key")
        os.chmod(c / "operator.key", 0o600)
        shutil.copyfile(self.ca_file, c / "gateway-ca.pem")
        # The postmaster (double bounces, notices) has a mailbox too: a test can check it stays empty.
        boxes = [(self.address(u), u) for u in self.users] + [(f"postmaster@{self.hostname}", "postmaster"),
                                                              (f"postmaster@{self.domain}", "postmaster")]
        (c / "mailboxes").write_text("".join(f"{a} {u}/\n" for a, u in boxes))
        nexthop = f"smtp:[{self.relay.host}]:{self.relay.port}"
        (c / "transport").write_text("".join(f"{d} {nexthop}\n" for d in self.relay.domains))
        (c / "tls_policy").write_text(f"[{self.relay.host}]:{self.relay.port} verify match={self.relay.cert_name}\n")
        (c / "recipient_access").write_text("")
        (c / "main.cf").write_text(self.main_cf())
        (c / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))

    # -- running ------------------------------------------------------------------------

    def _postfix(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["postfix", "-c", str(self.conf), *args], check=False, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "MAIL_CONFIG": str(self.conf)})

    def start(self) -> None:
        if not self.conf.exists():
            self.write_config()
        for step in ("check", "start"):
            done = self._postfix(step)
            if done.returncode != 0:
                raise RuntimeError(f"postfix {step} failed: {done.stdout}{done.stderr}{self.log_tail()}")
        if not wait_port("127.0.0.1", self.port):
            raise RuntimeError(f"postfix did not listen on 127.0.0.1:{self.port}{self.log_tail()}")

    def running(self) -> bool:
        return self._postfix("status").returncode == 0

    def reload(self) -> None:
        """Re-read main.cf and the lookup tables (texthash tables are read at process start)."""
        done = self._postfix("reload")
        if done.returncode != 0:
            raise RuntimeError(f"postfix reload failed: {done.stdout}{done.stderr}")

    def stop(self) -> None:
        """``postfix stop``: its master (this instance's, by its pid file) ends its daemons; the
        script waits up to 5 s, then forces."""
        if self.running():
            self._postfix("stop")

    def defer(self, rules: Mapping[str, str], timeout: float = 15.0) -> None:
        """Set the ``check_recipient_access`` entries (address -> action, e.g. ``451 4.3.0 text``),
        reload, and wait until Postfix answers by them (and no longer by the previous ones: a
        reload lets running daemons finish first)."""
        table = self.conf / "recipient_access"
        previous = [line.split()[0] for line in table.read_text().splitlines() if line.strip()]
        table.write_text("".join(f"{a} {v}\n" for a, v in rules.items()))
        self.reload()
        expected = {a: 250 for a in previous} | {a: int(v.split()[0]) for a, v in rules.items()}
        deadline = time.monotonic() + timeout
        while {a: self.rcpt_reply(a)[0] for a in expected} != expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"postfix does not apply its new recipient checks{self.log_tail()}")
            time.sleep(0.2)

    def rcpt_reply(self, address: str) -> tuple[int, str]:
        """What Postfix's smtpd answers to ``RCPT TO:<address>`` now (the transaction is reset)."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            client.ehlo(f"probe.{self.domain}")
            client.mail(f"probe@{self.domain}")
            code, text = client.rcpt(address)
            client.rset()
        return code, text.decode(errors="replace")

    # -- observing ----------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n--- postfix log (tail) ---\n" + "\n".join(self.log().splitlines()[-lines:])

    def queue(self) -> list[dict[str, object]]:
        """``postqueue -j``: one JSON object per queued message (queue_name, recipients...)."""
        done = subprocess.run(["postqueue", "-c", str(self.conf), "-j"], check=True, capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def maildir(self, user: str) -> list[Path]:
        files: list[Path] = []
        for sub in ("new", "cur"):
            folder = self.mail / user / sub
            if folder.exists():
                files.extend(p for p in folder.iterdir() if p.is_file())
        return sorted(files, key=lambda p: p.name)

    def raw_messages(self, user: str) -> list[bytes]:
        return [p.read_bytes() for p in self.maildir(user)]

    def wait_message(self, user: str, match: Callable[[bytes], bool], timeout: float = 30.0) -> bytes:
        """The first message of ``user``'s Maildir that ``match`` accepts, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for raw in self.raw_messages(user):
                if match(raw):
                    return raw
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching message in {user}'s Maildir after {timeout} s{self.log_tail()}")
            time.sleep(0.1)

    # -- its users' mail client -----------------------------------------------------------

    def send(self, mail_from: str, rcpts: Sequence[str], message: bytes, *,
             mail_options: Sequence[str] = (), rcpt_options: Sequence[str] = ()) -> str:
        """Submit as the operator's users' mail client does (SMTP from loopback); returns
        Postfix's queue id (its DATA reply: ``250 2.0.0 Ok: queued as ID``)."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            client.ehlo(f"poste.{self.domain}")
            return submit(client, mail_from, rcpts, message, mail_options=mail_options, rcpt_options=rcpt_options)


def submit(client: smtplib.SMTP, mail_from: str, rcpts: Sequence[str], message: bytes, *,
           mail_options: Sequence[str] = (), rcpt_options: Sequence[str] = ()) -> str:
    """One transaction on an open connection to Postfix; its queue id."""
    code, text = client.mail(mail_from, list(mail_options))
    assert code == 250, (code, text)
    for rcpt in rcpts:
        code, text = client.rcpt(rcpt, list(rcpt_options))
        assert code == 250, (rcpt, code, text)
    code, text = client.data(message)
    assert code == 250, (code, text)
    return text.decode().rsplit(" ", 1)[-1]


@contextmanager
def running_postfix(*, hostname: str, domain: str, users: tuple[str, ...], relay: Relay, cert_file: Path,
                    key_file: Path, ca_file: Path) -> Iterator[PostfixPeer]:
    """A started :class:`PostfixPeer` in a fresh folder (readable by the ``nobody`` delivery
    user, which pytest's own 0700 temporary folders are not); stopped and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="gw-postfix-"))
    root.chmod(0o755)
    peer = PostfixPeer(root=root, hostname=hostname, domain=domain, users=users, relay=relay, cert_file=cert_file,
                       key_file=key_file, ca_file=ca_file)
    try:
        peer.start()
        yield peer
    finally:
        peer.stop()
        shutil.rmtree(root, ignore_errors=True)
