"""The zip reader's limits, byte by byte (PKWARE APPNOTE 6.3): every refusal is a FormatError
with its reason code, and no entry's bytes are believed from its declared size."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from healthdocs import errors
from healthdocs.errors import FormatError
from healthdocs.safezip import DEFAULT_LIMITS, SafeZip, ZipLimits, declared_entries, safe_name


def _zip(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def _reason(data: bytes, limits: ZipLimits = DEFAULT_LIMITS, read: str | None = None) -> str:
    with pytest.raises(FormatError) as caught:
        archive = SafeZip(data, limits)
        if read is not None:
            archive.read(read)
    return caught.value.reason


def test_reads_entries_case_insensitively_and_counts_what_it_hands_out() -> None:
    archive = SafeZip(_zip([("IHE_XDM/SUBSET01/METADATA.XML", b"<a/>"), ("README.TXT", b"hello")]))
    assert archive.find("ihe_xdm/subset01/metadata.xml") == "IHE_XDM/SUBSET01/METADATA.XML"
    assert archive.read("readme.txt") == b"hello"
    assert archive.read_total == 5


def test_not_a_zip() -> None:
    assert _reason(b"%PDF-1.4 hello") == errors.NOT_ZIP
    assert _reason(b"PK\x03\x04 truncated") == errors.CORRUPT


def test_too_many_entries() -> None:
    data = _zip([(f"F{i}.TXT", b"x") for i in range(5)])
    assert _reason(data, ZipLimits(max_entries=4)) == errors.TOO_MANY_ENTRIES
    SafeZip(data, ZipLimits(max_entries=5))


def test_entry_and_total_sizes_from_the_directory() -> None:
    assert _reason(_zip([("A.TXT", b"a" * 2000)]), ZipLimits(max_entry_size=1000)) == errors.ENTRY_TOO_LARGE
    two = _zip([("A.TXT", b"a" * 800), ("B.TXT", b"b" * 800)])
    assert _reason(two, ZipLimits(max_total_size=1000)) == errors.TOTAL_TOO_LARGE


def test_compression_ratio_above_the_floor_only() -> None:
    zeros = _zip([("Z.BIN", bytes(200_000))])
    assert _reason(zeros, ZipLimits(ratio_floor=64 * 1024)) == errors.RATIO
    SafeZip(_zip([("SMALL.XML", bytes(60_000))]), ZipLimits(ratio_floor=64 * 1024))  # below the floor


def _patch_sizes(data: bytes, name: bytes, size: int) -> bytes:
    """Rewrite the declared uncompressed size of ``name`` in both its local and central headers."""
    out = bytearray(data)
    local = out.find(b"PK\x03\x04")
    while local != -1:
        n = struct.unpack_from("<H", out, local + 26)[0]
        if out[local + 30:local + 30 + n] == name:
            struct.pack_into("<I", out, local + 22, size)
        local = out.find(b"PK\x03\x04", local + 4)
    central = out.find(b"PK\x01\x02")
    while central != -1:
        n = struct.unpack_from("<H", out, central + 28)[0]
        if out[central + 46:central + 46 + n] == name:
            struct.pack_into("<I", out, central + 24, size)
        central = out.find(b"PK\x01\x02", central + 4)
    return bytes(out)


def test_a_lying_declared_size_is_not_believed() -> None:
    """The directory says 10 bytes; the stream inflates to 100 000: never more than 10 are returned."""
    data = _patch_sizes(_zip([("DOC.XML", b"<a>" + b"x" * 100_000 + b"</a>")]), b"DOC.XML", 10)
    archive = SafeZip(data)
    with pytest.raises(FormatError) as caught:
        archive.read("DOC.XML")
    assert caught.value.reason in (errors.CORRUPT, errors.ENTRY_TOO_LARGE)
    assert archive.read_total == 0


@pytest.mark.parametrize("name", ["../evil.xml", "IHE_XDM/../../evil.xml", "/etc/passwd", "C:/x.xml",
                                  "IHE_XDM\\SUBSET01\\DOC.XML", "a//b.xml", "./a.xml"])
def test_unsafe_names(name: str) -> None:
    assert not safe_name(name)
    assert _reason(_zip([(name, b"x")])) == errors.PATH


def test_safe_names() -> None:
    assert safe_name("IHE_XDM/SUBSET01/DOC0001.XML") and safe_name("INDEX.HTM")
    assert not safe_name("a/\x00.xml") and not safe_name("")  # zipfile cuts a name at NUL itself


def test_symbolic_link_entry() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("IHE_XDM/SUBSET01/DOC0001.XML")
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    assert _reason(buf.getvalue()) == errors.PATH


def test_encrypted_entry() -> None:
    data = bytearray(_zip([("DOC.XML", b"<a/>")], zipfile.ZIP_STORED))
    for sig, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # general purpose flag, bit 0
        at = data.find(sig)
        data[at + offset] |= 1
    assert _reason(bytes(data)) == errors.ENCRYPTED


def test_unsupported_compression() -> None:
    assert _reason(_zip([("DOC.XML", b"<a/>")], zipfile.ZIP_BZIP2)) == errors.COMPRESSION


def test_nested_archives_by_name_and_by_content() -> None:
    inner = _zip([("A.TXT", b"a")])
    assert _reason(_zip([("IHE_XDM/SUBSET01/INNER.ZIP", inner)])) == errors.NESTED
    assert _reason(_zip([("IHE_XDM/SUBSET01/DOC.XML", inner)]), read="IHE_XDM/SUBSET01/DOC.XML") == errors.NESTED


def test_duplicate_names_differing_in_case() -> None:
    assert _reason(_zip([("DOC.XML", b"a"), ("doc.xml", b"b")])) == errors.DUPLICATE


def test_total_counted_across_reads() -> None:
    archive = SafeZip(_zip([("A.TXT", b"a" * 700), ("B.TXT", b"b" * 700)]), ZipLimits(max_total_size=1400))
    archive.read("A.TXT")
    archive.read("B.TXT")
    assert archive.read_total == 1400
    with pytest.raises(FormatError):
        archive.read("A.TXT")  # a second read counts again: nothing remains


def test_a_streamed_entry_is_held_to_its_declared_size_too() -> None:
    data = _patch_sizes(_zip([("DOC.XML", b"<a>" + b"x" * 100_000 + b"</a>")]), b"DOC.XML", 1000)
    archive = SafeZip(data)
    stream = archive.open("DOC.XML")
    with pytest.raises(FormatError):
        while stream.read(64 * 1024):
            pass
    assert stream.given <= 1001 and archive.read_total == stream.given


def test_the_entry_count_is_read_before_the_directory_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _zip([(f"F{i}.TXT", b"x") for i in range(70)])
    assert declared_entries(data) == 70
    monkeypatch.setattr(zipfile, "ZipFile", lambda *a, **k: pytest.fail("directory parsed"))
    assert _reason(data) == errors.TOO_MANY_ENTRIES
    assert declared_entries(b"PK\x03\x04 no end record") is None
