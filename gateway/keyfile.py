"""Reading and writing the master key file (kept outside the database, mode 0600)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from crypto.keyring import KeyfileError, MasterKeyring, format_keyfile, parse_keyfile


class MasterKeyFileError(Exception):
    """The master key file is missing, unreadable or malformed (operator-facing text)."""


def load_keyring(path: Path) -> MasterKeyring:
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


def insecure_mode(path: Path) -> bool:
    """True when group or others may read the key file."""
    return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


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
