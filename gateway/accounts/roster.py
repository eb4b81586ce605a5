"""Reading a patient roster (CSV: ``ins,email``; ``;`` accepted) as a stream of checked rows (SPEC §5).

Constant memory: rows are read one by one and handed out in batches; a bad row
becomes a :class:`BadRow` with its line number and a reason that never repeats the
INS (logs and terminals must not show a full INS, SPEC §3).
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from routing.address import InvalidAddress, parse_address
from routing.ins import InvalidINS, normalise_ins

T = TypeVar("T")


@dataclass(frozen=True)
class RosterRow:
    line: int
    ins: str
    email: str | None


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


class RosterError(Exception):
    """The roster as a whole is unusable (unreadable, unknown columns)."""


def count_lines(path: Path) -> int:
    """Number of lines (for the progress ETA), counted in 1 MiB chunks."""
    total = 0
    last = b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            total += chunk.count(b"\n")
            last = chunk[-1:]
    return total + (0 if last == b"\n" else 1)


def _delimiter(first_line: str) -> str:
    return ";" if first_line.count(";") > first_line.count(",") else ","


def _columns(header: list[str]) -> tuple[int, int | None]:
    names = [h.strip().lower() for h in header]
    if "ins" not in names:
        raise RosterError("header row has no 'ins' column (expected: ins,email)")
    unknown = [n for n in names if n not in ("ins", "email", "")]
    if unknown:
        raise RosterError(f"unknown column(s) {', '.join(unknown)} (expected: ins,email)")
    return names.index("ins"), names.index("email") if "email" in names else None


def check_row(line: int, cells: list[str], ins_col: int, email_col: int | None) -> RosterRow | BadRow:
    if not any(c.strip() for c in cells):
        return BadRow(line, "empty row")
    if len(cells) <= ins_col:
        return BadRow(line, "missing INS column")
    try:
        ins = normalise_ins(cells[ins_col])
    except InvalidINS as exc:
        return BadRow(line, str(exc))
    email: str | None = None
    raw_email = cells[email_col].strip() if email_col is not None and len(cells) > email_col else ""
    if raw_email:
        try:
            email = str(parse_address(raw_email))
        except InvalidAddress as exc:
            return BadRow(line, f"bad e-mail ({exc})")
    extra = [c for i, c in enumerate(cells) if i not in (ins_col, email_col) and c.strip()]
    if extra:
        return BadRow(line, "too many columns")
    return RosterRow(line, ins, email)


RawRow = tuple[int, list[str]]


def read_raw(handle: IO[str]) -> tuple[tuple[int, int | None], Iterator[RawRow]]:
    """The column positions and the unchecked ``(line, cells)`` rows (checked later, maybe elsewhere).

    Without a header the columns are ``ins[,email]``."""
    first = handle.readline()
    reader = csv.reader(itertools.chain([first], handle), delimiter=_delimiter(first))
    head = next(reader, [])
    has_header = bool(head) and head[0].strip().lstrip("\ufeff").lower() in ("ins", "email")
    cols = _columns([head[0].lstrip("\ufeff"), *head[1:]]) if has_header else (0, 1)

    def rows() -> Iterator[RawRow]:
        if head and not has_header:
            yield reader.line_num, head
        for cells in reader:
            yield reader.line_num, cells

    return cols, rows()


def read_rows(handle: IO[str]) -> Iterator[RosterRow | BadRow]:
    """Checked rows in file order."""
    (ins_col, email_col), rows = read_raw(handle)
    for line, cells in rows:
        yield check_row(line, cells, ins_col, email_col)


def batches(rows: Iterator[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
