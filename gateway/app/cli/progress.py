"""Progress reporting for long admin commands: a bar with rate and ETA on a terminal,
plain periodic lines otherwise (logs, pipes, CI)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """``update(done)`` as work advances, ``finish()`` at the end. ``total`` may be unknown (0)."""

    def __init__(self, stream: TextIO, total: int, *, label: str = "rows", interval: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, tty: bool | None = None, width: int = 30) -> None:
        self.stream = stream
        self.total = total
        self.label = label
        self.interval = interval
        self.clock = clock
        self.tty = stream.isatty() if tty is None else tty
        self.width = width
        self.start = clock()
        self.done = 0
        self._last = self.start if not self.tty else self.start - interval

    def line(self) -> str:
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.done:,}" + (f"/{self.total:,}" if self.total else "") + f" {self.label}",
                 f"{rate:,.0f} {self.label}/s"]
        if self.total and rate > 0:
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        parts.append(f"elapsed {_duration(elapsed)}")
        text = "  ".join(parts)
        if self.tty and self.total:
            ratio = min(self.done / self.total, 1.0)
            filled = int(ratio * self.width)
            text = f"[{'#' * filled}{'.' * (self.width - filled)}] {ratio:4.0%}  " + text
        return text

    def update(self, done: int) -> None:
        self.done = done
        now = self.clock()
        if self.tty:
            if now - self._last >= 0.2:
                self.stream.write("\r" + self.line() + "\x1b[K")
                self.stream.flush()
                self._last = now
        elif now - self._last >= self.interval:
            self.stream.write("progress: " + self.line() + "\n")
            self.stream.flush()
            self._last = now

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K\n")
        else:
            self.stream.write("progress: " + self.line() + "\n")
        self.stream.flush()
