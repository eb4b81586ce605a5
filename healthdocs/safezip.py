"""A zip archive (PKWARE APPNOTE 6.3) read within limits, before anything in it is trusted.

The central directory is checked as a whole when the archive is opened (entry count,
declared sizes, compression ratio, names, encryption, compression methods), and every
entry's bytes are counted again as they are inflated (:meth:`SafeZip.read`): a declared size
is never believed. A name is safe when it is relative, has no ``..``, empty, drive or
backslash component, no NUL, and is not a symbolic link; an entry holding another archive
(by name or by its first bytes) is refused. Whatever goes wrong is a
:class:`~healthdocs.errors.FormatError` with its reason code: nothing else escapes.
"""

from __future__ import annotations

import io
import lzma
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from healthdocs import errors
from healthdocs.errors import FormatError


@dataclass(frozen=True)
class ZipLimits:
    """Bounds on one archive (``[health_documents]`` in the gateway config)."""

    max_entries: int = 64
    max_entry_size: int = 16 * 1024 * 1024  # uncompressed bytes of one entry
    max_total_size: int = 64 * 1024 * 1024  # uncompressed bytes read from one archive
    max_ratio: int = 100  # uncompressed / compressed, for entries above ratio_floor
    ratio_floor: int = 64 * 1024  # small entries (XML) may compress better: their size is bounded anyway


DEFAULT_LIMITS = ZipLimits()
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_NESTED_SUFFIXES = (".zip", ".jar", ".7z", ".rar", ".gz", ".tgz", ".bz2", ".xz", ".tar", ".cab")
_NESTED_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"BZh", b"\xfd7zXZ")
READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, ValueError,
                EOFError, OSError, zlib.error, struct.error, lzma.LZMAError, UnicodeError, KeyError,
                IndexError, OverflowError)


def looks_like_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def declared_entries(data: bytes) -> int | None:
    """The entry count the end of central directory record declares (APPNOTE 4.3.16), read
    before :mod:`zipfile` parses a directory that could hold millions of entries; None when
    there is no such record, 0xFFFF for a ZIP64 archive (not needed for an XDM medium)."""
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    if at < 0 or at + 22 > len(data):
        return None
    return int(struct.unpack_from("<H", data, at + 10)[0])


def safe_name(name: str) -> bool:
    if not name or "\x00" in name or "\\" in name or name.startswith("/"):
        return False
    parts = name.rstrip("/").split("/")
    return all(p not in ("", ".", "..") and ":" not in p for p in parts)


def _is_link(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


@contextmanager
def _errors(reason: str = errors.CORRUPT) -> Iterator[None]:
    try:
        yield
    except FormatError:
        raise
    except READ_ERRORS as exc:
        raise FormatError(reason, type(exc).__name__) from None


class SafeZip:
    """An archive whose directory passed the checks; entries read with :meth:`read`."""

    def __init__(self, data: bytes, limits: ZipLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.read_total = 0  # uncompressed bytes handed out so far
        if not looks_like_zip(data):
            raise FormatError(errors.NOT_ZIP)
        declared = declared_entries(data)
        if declared is not None and declared > limits.max_entries:
            raise FormatError(errors.TOO_MANY_ENTRIES, str(declared))
        with _errors():
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self._zip.infolist()
        if len(infos) > limits.max_entries:
            raise FormatError(errors.TOO_MANY_ENTRIES, str(len(infos)))
        self._by_key: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            self._check(info)
            key = info.filename.upper()
            if key in self._by_key:
                raise FormatError(errors.DUPLICATE)
            self._by_key[key] = info
            total += info.file_size
        if total > limits.max_total_size:
            raise FormatError(errors.TOTAL_TOO_LARGE)

    def _check(self, info: zipfile.ZipInfo) -> None:
        limits = self.limits
        if not safe_name(info.filename) or _is_link(info):
            raise FormatError(errors.PATH)
        if info.flag_bits & 0x1:
            raise FormatError(errors.ENCRYPTED)
        if info.compress_type not in _METHODS:
            raise FormatError(errors.COMPRESSION, str(info.compress_type))
        if info.is_dir():
            return
        if info.filename.lower().endswith(_NESTED_SUFFIXES):
            raise FormatError(errors.NESTED)
        if info.file_size > limits.max_entry_size:
            raise FormatError(errors.ENTRY_TOO_LARGE)
        if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise FormatError(errors.RATIO)

    def names(self) -> list[str]:
        return [i.filename for i in self._by_key.values() if not i.is_dir()]

    def find(self, name: str) -> str | None:
        """The entry's name as stored, looked up case-insensitively (XDM names are upper case,
        IHE ITI TF-1 §16.1, but not every writer keeps them so)."""
        info = self._by_key.get(name.upper())
        return info.filename if info is not None and not info.is_dir() else None

    def open(self, name: str) -> CountedEntry:
        """An entry as a stream (``read(n)``), counted like :meth:`read`: for a reader that
        stops early (a CDA's header), so the rest is never inflated."""
        info = self._by_key.get(name.upper())
        if info is None or info.is_dir():
            raise FormatError(errors.MISSING_DOCUMENT)
        cap = min(info.file_size, self.limits.max_entry_size, self.limits.max_total_size - self.read_total)
        with _errors():
            stream = self._zip.open(info)
        return CountedEntry(self, stream, cap, cap < info.file_size)

    def read(self, name: str) -> bytes:
        """An entry's bytes, counted as inflated: never more than its own declared size, the
        per-entry limit or what remains of the archive's total."""
        info = self._by_key.get(name.upper())
        if info is None or info.is_dir():
            raise FormatError(errors.MISSING_DOCUMENT)
        limits = self.limits
        cap = min(info.file_size, limits.max_entry_size, limits.max_total_size - self.read_total)
        out = bytearray()
        with _errors(), self._zip.open(info) as stream:
            while True:
                chunk = stream.read(min(64 * 1024, cap - len(out) + 1))
                if not chunk:
                    break
                out += chunk
                if len(out) > cap:
                    reason = errors.TOTAL_TOO_LARGE if cap < info.file_size else errors.ENTRY_TOO_LARGE
                    raise FormatError(reason)
        self.read_total += len(out)
        if bytes(out[:4]).startswith(_NESTED_MAGIC):
            raise FormatError(errors.NESTED)
        return bytes(out)


class CountedEntry:
    """An entry's stream whose bytes count against the archive's limits as they are read."""

    def __init__(self, archive: SafeZip, stream: IO[bytes], cap: int, total_bound: bool) -> None:
        self.archive = archive
        self.stream = stream
        self.cap = cap
        self.total_bound = total_bound
        self.given = 0

    def read(self, size: int = -1) -> bytes:
        want = self.cap - self.given + 1 if size < 0 else min(size, self.cap - self.given + 1)
        with _errors():
            chunk = self.stream.read(max(want, 0))
        self.given += len(chunk)
        self.archive.read_total += len(chunk)
        if self.given > self.cap:
            raise FormatError(errors.TOTAL_TOO_LARGE if self.total_bound else errors.ENTRY_TOO_LARGE)
        if self.given == len(chunk) and chunk[:4].startswith(_NESTED_MAGIC):
            raise FormatError(errors.NESTED)
        return chunk

    def close(self) -> None:
        with _errors():
            self.stream.close()
