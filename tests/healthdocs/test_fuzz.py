"""A bounded fuzz of the archive reader (deterministic seeds, a few hundred cases).

Invariant: whatever the bytes, :func:`healthdocs.xdm.read` returns an Archive (it never
raises), :class:`healthdocs.safezip.SafeZip` raises nothing but ``FormatError``, and no
read hands out more than the limits allow (per entry, and in total)."""

from __future__ import annotations

import random

from healthdocs import testing, xdm
from healthdocs.errors import FormatError
from healthdocs.safezip import SafeZip, ZipLimits
from routing.ins import synthetic_ins

LIMITS = ZipLimits(max_entries=16, max_entry_size=256 * 1024, max_total_size=512 * 1024, max_ratio=50,
                   ratio_floor=16 * 1024)
CASES = 1500


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        kind = rng.random()
        at = rng.randrange(max(len(out), 1))
        if kind < 0.5 and out:
            out[at] = rng.randrange(256)
        elif kind < 0.7:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind < 0.85:
            del out[at:at + rng.randint(1, 64)]
        else:  # a plausible size or count field
            value = rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF, rng.randrange(1 << 32)])
            out[at:at + 4] = value.to_bytes(4, "little")
    return bytes(out)


def _seeds() -> list[bytes]:
    rng = random.Random(5)
    ins = synthetic_ins(rng)
    return [testing.level1(ins), testing.level3(ins), testing.several(ins), testing.invisible(ins),
            testing.traversal(ins), testing.xxe(ins), testing.zip_bomb(ins, size=2 * 1024 * 1024)]


def test_reader_never_raises_and_never_reads_beyond_limits() -> None:
    rng = random.Random(2026)
    seeds = _seeds()
    statuses: set[str] = set()
    for case in range(CASES):
        data = _mutate(rng, rng.choice(seeds))
        archive = xdm.read(data, part="1", filename="IHE_XDM.ZIP", limits=LIMITS)
        statuses.add(archive.status)
        try:
            zf = SafeZip(data, LIMITS)
        except FormatError:
            continue
        for name in zf.names():
            before = zf.read_total
            try:
                got = zf.read(name)
            except FormatError:
                continue
            assert len(got) <= LIMITS.max_entry_size, case
            assert zf.read_total == before + len(got)
        assert zf.read_total <= LIMITS.max_total_size, case
        streamed = SafeZip(data, LIMITS)  # the same through the streams the CDA reader uses
        for name in streamed.names():
            try:
                stream = streamed.open(name)
                while stream.read(4096):
                    assert stream.given <= LIMITS.max_entry_size, case
            except FormatError:
                continue
        assert streamed.read_total <= LIMITS.max_total_size + 1, case
    assert statuses == {"read", "damaged"}  # the mutations reach both outcomes: the fuzz is not blind


def test_mutated_xml_inside_well_formed_archives_never_raises() -> None:
    """Structure-aware: the zip stays valid and the mutations land in METADATA.XML or the CDA,
    so the metadata and CDA readers (not only the zip reader) meet the damage."""
    rng = random.Random(2027)
    ins = synthetic_ins(rng)
    cda_bytes = testing.cda_level3(ins)
    doc = testing.Doc("DOC0001.XML", cda_bytes, ins)
    meta = testing.metadata(ins, [doc])
    outcomes: set[tuple[str, int]] = set()
    for _ in range(CASES // 3):
        if rng.random() < 0.5:
            archive = testing.archive(ins, [doc], meta=_mutate(rng, meta))
        else:
            archive = testing.archive(ins, [testing.Doc("DOC0001.XML", _mutate(rng, cda_bytes), ins)], meta=meta)
        read = xdm.read(archive, part="1", filename="IHE_XDM.ZIP", limits=LIMITS)
        outcomes.add((read.status, len(read.documents)))
    assert ("read", 1) in outcomes and any(status == "damaged" for status, _ in outcomes)
