"""Reading and writing the master key file (kept outside the database, mode 0600).

A key file that group or others may access is refused (:class:`InsecureKeyFile`) unless
``keys.allow_insecure_key_file`` is set for development; then a loud warning is printed
once per process and file.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import threading
from pathlib import Path

from crypto.keyring import KeyfileError, MasterKeyring, format_keyfile, parse_keyfile

log = logging.getLogger("gateway.keys")


class MasterKeyFileError(Exception):
    """The master key file is missing, unreadable or malformed (operator-facing text)."""


class InsecureKeyFile(MasterKeyFileError):
    """Group or others may access the key file."""


_warned: set[str] = set()
_warned_lock = threading.Lock()


def insecure_mode(path: Path) -> bool:
    """True when group or others have any permission on the key file."""
    return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def check_mode(path: Path, *, allow_insecure: bool = False) -> None:
    """Refuse (or, when allowed, warn loudly once) a key file that group or others may access."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise MasterKeyFileError(f"{path}: master key file not found") from None
    except OSError as exc:
        raise MasterKeyFileError(f"{path}: cannot read master key file ({exc.__class__.__name__})") from None
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return
    if not allow_insecure:
        raise InsecureKeyFile(
            f"{path}: master key file has mode {mode:04o}: group or others can access it; "
            f"run 'chmod 600 {path}' (keys.allow_insecure_key_file = true allows it in development only)"
        )
    with _warned_lock:
        if str(path) in _warned:
            return
        _warned.add(str(path))
    text = (f"WARNING: {path}: master key file has mode {mode:04o} (group or others can access it); "
            "accepted only because keys.allow_insecure_key_file = true: NEVER in production")
    if logging.getLogger().handlers:  # serving: in the log
        log.warning(text)
    else:
        print(text, file=sys.stderr, flush=True)


def load_keyring(path: Path, *, allow_insecure: bool = False) -> MasterKeyring:
    check_mode(path, allow_insecure=allow_insecure)
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise MasterKeyFileError(f"{path}: master key file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MasterKeyFileError(f"{path}: cannot read master key file ({exc.__class__.__name__})") from None
    try:
        return parse_keyfile(text)
    except KeyfileError as exc:
        raise MasterKeyFileError(f"{path}: {exc}") from None


def write_keyring(path: Path, ring: MasterKeyring) -> None:
    """Atomically replace the key file (0600), fsyncing file and folder before returning."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, format_keyfile(ring).encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
