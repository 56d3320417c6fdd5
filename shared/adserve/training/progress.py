"""A one-line progress display on stderr, drawn only when stderr is a terminal (never in Lambda or CI logs)."""

import sys
import time
from typing import TextIO


class Progress:
    """``step(label, done, total)`` redraws one line, at most ten times a second; ``finish`` ends it."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None, width: int = 30) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = self._stream.isatty() if enabled is None else enabled
        self._width = width
        self._last_draw = 0.0
        self._drawn = False

    def step(self, label: str, done: float, total: float | None = None, detail: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last_draw < 0.1 and (total is None or done < total):
            return
        self._last_draw = now
        if total:
            filled = int(self._width * min(done / total, 1.0))
            bar = f"[{'#' * filled}{'.' * (self._width - filled)}] {done:,.0f}/{total:,.0f}"
        else:
            bar = f"{done:,.0f}"
        self._stream.write(f"\r\x1b[2K{label}: {bar} {detail}".rstrip())
        self._stream.flush()
        self._drawn = True

    def finish(self, message: str = "") -> None:
        if self.enabled and self._drawn:
            self._stream.write(f"\r\x1b[2K{message}\n" if message else "\n")
            self._stream.flush()
        self._drawn = False


SILENT = Progress(enabled=False)
