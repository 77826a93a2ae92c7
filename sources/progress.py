"""A dependency-free progress line on stderr: done, rate, ETA and the current data time.

On a terminal it redraws one line; otherwise (CI logs, pipes) it prints a line every 10 s.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from udfs.timeutil import format_ts


def _hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(
        self,
        start_ms: int | None,
        end_ms: int | None,
        speed: float | None,
        enabled: bool = True,
        stream: TextIO = sys.stderr,
        label: str = "replay",
    ):
        self.start_ms, self.end_ms, self.speed = start_ms, end_ms, speed
        self.enabled = enabled
        self.stream = stream
        self.label = label
        self.tty = stream.isatty()
        self.every = 0.25 if self.tty else 10.0
        self.t0 = time.monotonic()
        self._next = self.t0 + self.every
        self.count = 0
        self.data_ms: int | None = None

    def update(self, count: int, data_ms: int) -> None:
        self.count, self.data_ms = count, data_ms
        if self.enabled and time.monotonic() >= self._next:
            self.draw()

    def draw(self, final: bool = False) -> None:
        now = time.monotonic()
        self._next = now + self.every
        elapsed = max(now - self.t0, 1e-9)
        rate = self.count / elapsed
        frac = None
        if (
            self.start_ms is not None
            and self.end_ms is not None
            and self.data_ms is not None
            and self.end_ms > self.start_ms
        ):
            frac = min(1.0, max(0.0, (self.data_ms - self.start_ms) / (self.end_ms - self.start_ms)))
        if final:
            frac = 1.0 if frac is not None else None
        parts = [f"{self.label}"]
        if frac is not None:
            filled = int(frac * 24)
            parts.append(f"[{'#' * filled}{'.' * (24 - filled)}] {frac * 100:5.1f}%")
        parts.append(f"{self.count:,} rec")
        parts.append(f"{rate:,.0f} rec/s")
        if frac is not None and not final:
            if self.speed and self.end_ms is not None and self.data_ms is not None:
                eta = (self.end_ms - self.data_ms) / 1000 / self.speed
            else:
                eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
            parts.append(f"ETA {_hms(eta) if eta == eta else '?'}")
        elif final:
            parts.append(f"in {_hms(elapsed)}")
        if self.data_ms is not None:
            parts.append(f"@ {format_ts(self.data_ms)}")
        line = "  ".join(parts)
        if self.tty:
            self.stream.write("\r" + line.ljust(100) + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and (self.tty or self.count):
            self.draw(final=True)
