"""Figures of ``bench/compare.py``: series of measurements per target, and the Markdown table.

Targets: ``gateway`` (one node, embedded SQLite), ``gateway-2pg`` (two nodes on one
PostgreSQL database), ``postfix-maildir``, ``postfix-discard``, ``dovecot``. With both
gateway targets the table gets three more columns: the two-node figure, its ratio to the
reference, and two nodes against one (the scale-out cost on this machine).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

ONE = "gateway"
TWO = "gateway-2pg"
LABELS = {ONE: "gateway, 1 node, SQLite", TWO: "gateway, 2 nodes, PostgreSQL"}
SMTP_MEASURES = (("rate", "msg/s", "{:.1f}", True),
                 ("accept_rate", "msg/s accepted (smtp-source time)", "{:.1f}", True),
                 ("cpu_ms", "CPU ms/msg", "{:.2f}", False),
                 ("rss", "peak memory, sum of RSS, MiB", "{:.0f}", False),
                 ("pss", "peak memory, sum of PSS, MiB", "{:.0f}", False))
BIG_LATENCY = (("big.idle_p50", "10 KiB probe latency idle, p50"),
               ("big.during_p50", "probe latency during 20 MiB, p50"),
               ("big.during_max", "probe latency during 20 MiB, max"),
               ("big.raise", "latency raise (max during − idle p50)"))
IMAP_ROWS = (("imap.headers", "LOGIN+SELECT+UID FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)", "s", "{:.3f}", False),
             ("imap.headers_cpu_ms", "  server CPU for it", "ms", "{:.0f}", False),
             ("imap.bodies", "LOGIN+SELECT+UID FETCH 1:* BODY.PEEK[]", "s", "{:.3f}", False),
             ("imap.search_subject", "UID SEARCH SUBJECT needle (50 hits)", "s", "{:.3f}", False),
             ("imap.search_body", "UID SEARCH BODY marker (50 hits)", "s", "{:.3f}", False),
             ("imap.single", "single UID FETCH BODY.PEEK[], p50 of 200", "ms", "{:.2f}", False),
             ("imap.single_p95", "  p95", "ms", "{:.2f}", False),
             ("imap.clients50", "50 clients × 4 (SELECT + FETCH 100 headers)", "pairs/s", "{:.0f}", True),
             ("imap.clients50_rss", "  peak memory, sum of RSS", "MiB", "{:.0f}", False),
             ("imap.clients50_pss", "  peak memory, sum of PSS", "MiB", "{:.0f}", False),
             ("imap.append", "APPEND 10 KiB, one connection (per batch)", "msg/s", "{:.0f}", True),
             ("imap.append_cpu_ms", "  server CPU per APPEND", "ms", "{:.2f}", False))


@dataclass
class Series:
    values: list[float] = field(default_factory=list)
    error: str | None = None

    def add(self, v: float) -> None:
        self.values.append(v)

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def show(self, fmt: str = "{:.0f}") -> str:
        if self.error and not self.values:
            return f"error: {self.error}"
        if not self.values:
            return "n/a"
        med = fmt.format(statistics.median(self.values))
        if len(self.values) == 1:
            return med
        return f"{med} ({fmt.format(min(self.values))}–{fmt.format(max(self.values))})"


@dataclass
class Results:
    data: dict[str, dict[str, Series]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def series(self, measure: str, target: str) -> Series:
        return self.data.setdefault(measure, {}).setdefault(target, Series())

    def to_json(self) -> dict[str, Any]:
        return {"measures": {m: {t: {"values": s.values, "median": s.median, "error": s.error}
                                 for t, s in targets.items()} for m, targets in self.data.items()},
                "notes": self.notes}


def ratio(a: float | None, b: float | None, *, higher_is_better: bool) -> str:
    if a is None or b is None or a != a or b != b or a == 0 or b == 0:
        return "–"
    return f"{(a / b if higher_is_better else b / a):.2f}"


class _Table:
    """Rows of one target set: the main gateway column (one node if it ran, else two), the
    references with their ratios, then, when both gateway targets ran, the two-node columns."""

    def __init__(self, res: Results, references: list[tuple[str, str]]) -> None:
        self.data = res.data
        ran = {t for targets in res.data.values() for t in targets}
        self.main = ONE if ONE in ran or TWO not in ran else TWO
        self.both = ONE in ran and TWO in ran
        self.references = references

    def get(self, measure: str, target: str) -> Series:
        return self.data.get(measure, {}).get(target, Series())

    def header(self, first: str) -> list[str]:
        cells = [first, "unit", LABELS[self.main]]
        for _, label in self.references:
            cells += [label, "ratio"]
        if self.both:
            cells += [LABELS[TWO], f"ratio to {self.references[0][1]}", "2 nodes / 1 node"]
        return ["| " + " | ".join(cells) + " |", "|" + " --- |" * len(cells)]

    def row(self, label: str, unit: str, measure: str, fmt: str, better: bool | None) -> str:
        """``better``: True when higher is better, False when lower is, None: no ratio."""
        g = self.get(measure, self.main)
        cells = [label, unit, g.show(fmt)]
        for target, _ in self.references:
            r = self.get(measure, target)
            cells += [r.show(fmt), "–" if better is None else ratio(g.median, r.median, higher_is_better=better)]
        if self.both:
            two, ref = self.get(measure, TWO), self.get(measure, self.references[0][0])
            cells += [two.show(fmt)] + (["–", "–"] if better is None else [
                ratio(two.median, ref.median, higher_is_better=better),
                ratio(two.median, g.median, higher_is_better=better)])
        return "| " + " | ".join(cells) + " |"


def table(res: Results, smtp_loads: list[tuple[str, str]], imap_messages: int = 5000) -> str:
    """The Markdown tables; ``smtp_loads``: (key, label) of the SMTP loads in the order run;
    ``imap_messages``: messages in each INBOX (one in 100 carries the search needle)."""
    smtp = _Table(res, [("postfix-maildir", "Postfix → maildir"), ("postfix-discard", "Postfix → discard")])
    out: list[str] = []
    if any(not m.startswith("imap.") for m in res.data):
        out += _smtp(res, smtp, smtp_loads)
    if any(m.startswith("imap.") for m in res.data):
        out += _imap(res, imap_messages)
    if res.notes:
        out += ["Notes:", *[f"- {n}" for n in res.notes]]
    return "\n".join(out)


def _smtp(res: Results, smtp: _Table, smtp_loads: list[tuple[str, str]]) -> list[str]:
    out = ["### SMTP: accepted and stored (smtp-source; gateway: sealed + committed before 250)", "",
           *smtp.header("load")]
    for key, label in [*smtp_loads, ("big", "SMTP 20 MiB, 1 session")]:
        for suffix, unit, fmt, better in SMTP_MEASURES:
            if f"{key}.{suffix}" in res.data:
                out.append(smtp.row(label if suffix == "rate" else "", unit, f"{key}.{suffix}", fmt, better))
    for measure, label in BIG_LATENCY:
        if measure in res.data:
            out.append(smtp.row(label, "ms", measure, "{:.1f}", None))
    out += ["", "Ratios: gateway/reference for msg/s (higher is better); reference/gateway for CPU and memory "
            "(higher is better: above 1 the gateway uses less). \"2 nodes / 1 node\": the same, two nodes "
            "against one (above 1, two nodes do better). Two nodes: each load split in halves, one "
            "smtp-source per node at once; CPU and memory include the PostgreSQL backends of their database; "
            "no 20 MiB row (one session).", ""]
    return out


def _imap(res: Results, imap_messages: int) -> list[str]:
    imap = _Table(res, [("dovecot", "Dovecot")])
    out = [f"### IMAP ({imap_messages:,} × 10 KiB in INBOX; plaintext LOGIN on loopback for both)", "",
            *imap.header("measure")]
    hits = f"({-(-imap_messages // 100)} hits)"
    for measure, label, unit, fmt, better in IMAP_ROWS:
        if measure in res.data:
            out.append(imap.row(label.replace("(50 hits)", hits), unit, measure, fmt, better))
    out += ["", "Ratios: gateway speed / Dovecot speed (for times: Dovecot time / gateway time); for memory and "
            "CPU: Dovecot / gateway. Above 1 the gateway does better. Two nodes: each new IMAP session goes "
            "to the next node in turn.", ""]
    return out
