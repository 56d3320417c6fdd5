"""Waiting on progress instead of a fixed deadline.

A fixed deadline that an idle machine meets fails on a loaded one (two busy cores drain a queue several
times slower). So a wait goes on as long as the work keeps getting smaller, fails when it stalls for
``stall_seconds``, and gives up only after a generous ``bound_seconds``. A failure says how far it got.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Reading:
    remaining: int
    """What is left to do (e.g. messages on a queue); progress is a new lowest value."""
    done: bool
    note: str = ""
    """Shown in the history of a failure, e.g. the DLQ's depth."""


def wait_for_progress(
    read: Callable[[], Reading],
    what: str,
    *,
    stall_seconds: float,
    bound_seconds: float,
    poll_seconds: float = 1.0,
    sample_seconds: float = 10.0,
    confirmations: int = 1,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Seconds until ``read`` says done on ``confirmations`` reads in a row; AssertionError on a stall or the bound."""
    started = last_progress = clock()
    lowest: int | None = None
    history: list[tuple[float, Reading]] = []
    settled = 0
    while True:
        reading, now = read(), clock()
        elapsed = now - started
        if not history or (reading != history[-1][1] and elapsed - history[-1][0] >= sample_seconds):
            history.append((elapsed, reading))
        if lowest is None or reading.remaining < lowest:
            lowest, last_progress = reading.remaining, now
        settled = settled + 1 if reading.done else 0
        if settled >= confirmations:
            return elapsed
        stalled = now - last_progress >= stall_seconds
        if stalled or elapsed >= bound_seconds:
            reason = f"no progress for {stall_seconds:.0f} s" if stalled else f"still going after {bound_seconds:.0f} s"
            samples = ", ".join(f"{t:.0f}s: {r.remaining} {r.note}".rstrip() for t, r in [*history, (elapsed, reading)])
            raise AssertionError(f"{what}: {reason} ({elapsed:.0f} s in, lowest {lowest}); remaining: {samples}")
        sleep(poll_seconds)
