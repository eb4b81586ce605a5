"""Outcomes of scripted tests and the report (PASS / FAIL / SKIP / TIMEOUT, imaptest's totals)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum


class Status(Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"
    TIMEOUT = "TIMEOUT"


@dataclass
class Failure:
    where: str  # "command 3/12 (line 25, connection 2): 2 ok noop" or "initialization"
    reason: str
    expected: str = ""
    got: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [self.where, self.reason]
        if self.expected:
            out.append(f"expected: {self.expected}")
        out += [f"got: {g}" if i == 0 else f"     {g}" for i, g in enumerate(self.got)]
        return out


@dataclass
class Result:
    name: str
    status: Status
    seconds: float
    reason: str = ""  # SKIP: what is missing; TIMEOUT: where it stopped
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    groups_done: int = 0  # command groups finished (imaptest's "individual commands")
    extension: bool = False  # the test needs capabilities (imaptest counts it under "extensions")

    def report(self) -> str:
        head = f"{self.status.value:<8} {self.name} ({self.seconds:.2f} s)"
        body: list[str] = []
        if self.reason:
            body.append(self.reason)
        if self.failures:
            body += self.failures[0].lines()
            if len(self.failures) > 1:
                body.append(f"(and {len(self.failures) - 1} more failure(s) later in the test)")
        return "\n".join([head, *("         " + line for line in body)])


def counts(results: Sequence[Result]) -> dict[Status, int]:
    return {s: sum(1 for r in results if r.status is s) for s in Status}


def report(results: Sequence[Result], title: str = "", seconds: float | None = None) -> str:
    c = counts(results)
    total = ", ".join(f"{c[s]} {s.value}" for s in Status)
    took = f", {seconds:.1f} s" if seconds is not None else ""
    lines = [f"imaptest scripted tests{' against ' + title if title else ''}: {total} ({len(results)} tests{took})"]
    for label, ext in (("base protocol", False), ("extensions", True)):
        chosen = [r for r in results if r.extension is ext]
        lines.append(f"  {label}: {sum(len(r.failures) for r in chosen)}/{sum(r.groups_done for r in chosen)} "
                     "individual commands failed (imaptest's count: failures / command groups run)")
    order = {Status.FAIL: 0, Status.TIMEOUT: 1, Status.SKIP: 2, Status.PASS: 3}
    for result in sorted(results, key=lambda r: (order[r.status], r.name)):
        lines.append(result.report())
    return "\n".join(lines)
