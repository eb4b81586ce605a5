"""Debian's IMAP clients against the live server on loopback (issue 4 "Done when"):
mbsync (isync) into a Maildir, offlineimap, fetchmail with an MDA writing files, and mutt
driven non-interactively. Each must store the delivered messages byte for byte.

Maildir and MDA programs write Unix line endings (RFC 5322 CRLF becomes LF on disk);
where a client does that, the comparison is on the LF form, and said so in the test.
In CI a missing program fails the test (tests/conftest.py ``require``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.imap_server.kit import MESSAGES, MUTT_UNATTENDED, PASSWORD, ImapEnv, program

TIMEOUT = 90


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                            env={**os.environ, "HOME": str(cwd), **(env or {})}, check=False)
    assert result.returncode == 0, f"{args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def _maildir_messages(folder: Path) -> list[bytes]:
    files = sorted((folder / "cur").iterdir()) + sorted((folder / "new").iterdir())
    return [f.read_bytes() for f in files]


def _lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def _without_header(data: bytes, *names: bytes) -> bytes:
    """Drop headers a client adds itself (mbsync's ``X-TUID``, mutt's ``Lines``...)."""
    wanted = tuple(n.lower() + b":" for n in names)
    end = data.find(b"\n\n")
    head, rest = data[: end + 1], data[end + 1 :]
    lines = [line for line in head.splitlines(keepends=True) if not line.lower().startswith(wanted)]
    return b"".join(lines) + rest


def _same(stored: list[bytes], *, lf: bool) -> None:
    """Exact bytes; ``lf``: the client writes Unix line endings, otherwise identical."""
    expected = sorted(_lf(m) if lf else m for m in MESSAGES)
    assert sorted(stored) == expected


@pytest.mark.parametrize("tls", ["IMAPS", "STARTTLS"])
def test_mbsync_pulls_into_a_maildir(env: ImapEnv, filled: str, tmp_path: Path, tls: str) -> None:
    mbsync = program("mbsync")
    port = env.imaps_port if tls == "IMAPS" else env.imap_port
    (tmp_path / "mail").mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(f"""IMAPAccount gw
Host localhost
Port {port}
User {filled}
Pass "{PASSWORD}"
SSLType {tls}
CertificateFile {env.live.ca_file}
AuthMechs PLAIN LOGIN

IMAPStore remote
Account gw

MaildirStore local
Path {tmp_path}/mail/
Inbox {tmp_path}/mail/INBOX

Channel gw
Far :remote:
Near :local:
Patterns INBOX
Create Near
Sync Pull
SyncState *
""")
    _run([mbsync, "-c", str(config), "-a"], tmp_path)
    stored = _maildir_messages(tmp_path / "mail" / "INBOX")
    assert len(stored) == 3
    # mbsync writes LF line endings and its own X-TUID header (isync's documented behaviour).
    _same([_without_header(m, b"X-TUID") for m in stored], lf=True)


def test_offlineimap_syncs_into_a_maildir(env: ImapEnv, filled: str, tmp_path: Path) -> None:
    offlineimap = program("offlineimap")
    config = tmp_path / "offlineimaprc"
    config.write_text(f"""[general]
accounts = gw
metadata = {tmp_path}/meta
ui = basic

[Account gw]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {tmp_path}/mail

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = {env.imaps_port}
ssl = yes
sslcacertfile = {env.live.ca_file}
remoteuser = {filled}
remotepass = {PASSWORD}
folderfilter = lambda name: name == "INBOX"
readonly = True
""")
    _run([offlineimap, "-c", str(config), "-o", "-u", "basic"], tmp_path)
    stored = _maildir_messages(tmp_path / "mail" / "INBOX")
    assert len(stored) == 3
    _same(stored, lf=True)  # offlineimap writes Maildir files with LF line endings


def test_fetchmail_delivers_through_an_mda(env: ImapEnv, filled: str, tmp_path: Path) -> None:
    fetchmail = program("fetchmail")
    out = tmp_path / "out"
    out.mkdir()
    mda = tmp_path / "mda.sh"
    mda.write_text(f'#!/bin/sh\nexec cat > "{out}/$(date +%s%N).eml"\n')
    mda.chmod(0o755)
    rc = tmp_path / "fetchmailrc"
    rc.write_text(f"""set no syslog
set invisible
poll localhost protocol IMAP port {env.imaps_port}
  user "{filled}" password "{PASSWORD}" is "tester" here
  ssl sslcertck sslcertfile "{env.live.ca_file}"
  keep fetchall no rewrite no stripcr mda "{mda}"
""")
    rc.chmod(0o600)
    _run([fetchmail, "-f", str(rc), "--nodetach", "-v"], tmp_path, env={"FETCHMAILHOME": str(tmp_path)})
    stored = [f.read_bytes() for f in sorted(out.iterdir())]
    assert len(stored) == 3
    _same(stored, lf=False)


def test_mutt_copies_every_message_to_a_maildir(env: ImapEnv, filled: str, tmp_path: Path) -> None:
    """mutt scripted without a person: ``push`` tags all, copies them, quits (under ``script``
    for the terminal mutt needs)."""
    mutt = program("mutt")
    script = program("script")
    target = tmp_path / "saved"
    muttrc = tmp_path / "muttrc"
    muttrc.write_text(f"""set imap_user = "{filled}"
set imap_pass = "{PASSWORD}"
set folder = "imaps://localhost:{env.imaps_port}/"
set spoolfile = "+INBOX"
set ssl_ca_certificates_file = "{env.live.ca_file}"
set ssl_force_tls = yes
{MUTT_UNATTENDED}push "<tag-pattern>~A<enter><tag-prefix><copy-message>{target}<enter><exit>"
""")
    command = f"{mutt} -n -F {muttrc}"
    _run([script, "-q", "-e", "-c", command, "/dev/null"], tmp_path, env={"TERM": "xterm"})
    stored = _maildir_messages(target)
    assert len(stored) == 3
    # mutt writes LF line endings and adds Content-Length / Lines (and Status) headers of its own.
    _same([_without_header(m, b"Content-Length", b"Lines", b"Status", b"X-Status") for m in stored], lf=True)
