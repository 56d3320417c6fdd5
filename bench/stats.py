"""Timing primitives: run a callable many times with ``perf_counter_ns`` (and, on request, the thread's own CPU
clock) and summarise the samples."""

import gc
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Summary:
    """Latency of one measured operation, in milliseconds."""

    iterations: int
    mean_ms: float
    p50_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    full_gcs: int = 0
    """Full (generation 2) garbage collections during the timed calls: the usual cause of a p99 far above p50."""
    after_switch_p50_ms: float | None = None
    """Interleaved figures only: the median first call of a block, right after another operation's block (kept
    out of the percentiles above, see ``measure_interleaved``)."""
    cpu: "Summary | None" = None
    """``measure(..., own_cpu=True)`` only: the same calls timed by the thread's CPU clock (``thread_time_ns``),
    which counts what this thread ran and not the time another process held the core (a loaded host's steal)."""

    def to_dict(self) -> dict[str, Any]:
        values = {
            key: round(value, 4) if isinstance(value, float) else value
            for key, value in asdict(self).items()
            if value is not None and key != "cpu"
        }
        return values if self.cpu is None else {**values, "cpu": self.cpu.to_dict()}


def percentile(sorted_samples: list[int], fraction: float) -> float:
    """Nearest-rank percentile of already sorted samples (no interpolation: a p99 is a real observation)."""
    if not sorted_samples:
        raise ValueError("no samples")
    rank = max(1, math.ceil(fraction * len(sorted_samples)))
    return float(sorted_samples[rank - 1])


def summarize(samples_ns: list[int], full_gcs: int = 0, after_switch_ns: list[int] | None = None) -> Summary:
    ordered = sorted(samples_ns)
    to_ms = 1e-6
    return Summary(
        iterations=len(ordered),
        mean_ms=sum(ordered) / len(ordered) * to_ms,
        p50_ms=percentile(ordered, 0.50) * to_ms,
        p99_ms=percentile(ordered, 0.99) * to_ms,
        min_ms=ordered[0] * to_ms,
        max_ms=ordered[-1] * to_ms,
        full_gcs=full_gcs,
        after_switch_p50_ms=percentile(sorted(after_switch_ns), 0.50) * to_ms if after_switch_ns else None,
    )


class FullCollections:
    """Counts generation-2 collections while registered in ``gc.callbacks``."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            self.count += 1


def measure(
    operation: Callable[[], object],
    iterations: int,
    warmup: int,
    between: Callable[[], None] | None = None,
    *,
    own_cpu: bool = False,
) -> Summary:
    """Time ``operation`` ``iterations`` times after ``warmup`` untimed calls; ``between`` runs untimed.

    ``own_cpu`` also reads the thread's CPU clock around each call (``Summary.cpu``); off by default, as its
    two reads (~1 us) would count in the wall time of sub-millisecond operations.
    """
    for _ in range(warmup):
        operation()
        if between is not None:
            between()
    samples: list[int] = []
    cpu_samples: list[int] = []
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    collections = FullCollections()
    gc.callbacks.append(collections)
    try:
        for _ in range(iterations):
            if own_cpu:
                cpu_started = cpu_clock()
            started = clock()
            operation()
            samples.append(clock() - started)
            if own_cpu:
                cpu_samples.append(cpu_clock() - cpu_started)
            if between is not None:
                between()
    finally:
        gc.callbacks.remove(collections)
    wall = summarize(samples, collections.count)
    return replace(wall, cpu=summarize(cpu_samples, collections.count)) if own_cpu else wall


def iterations_for(size: int, base: int, quick: bool) -> int:
    """Fewer iterations for large candidate sets, where one call costs more and p99 is stable sooner."""
    count = base if size <= 200 else max(base // 5, 100)
    return max(count // 10, 50) if quick else count


def measure_interleaved(
    operations: dict[str, Callable[[], object]],
    iterations: int,
    warmup: int,
    between: dict[str, Callable[[], None]] | None = None,
    block: int = 25,
) -> dict[str, Summary]:
    """Time several operations in alternating blocks, so a change in the machine's load hits them alike.

    On shared cores a figure measured a minute after another can see a different machine; ratios of
    interleaved samples compare the operations, not the moments. ``between`` runs untimed after a call.

    Each block starts with one more call, timed apart (``after_switch_p50_ms``): it runs right after another
    operation's block, with the caches that one evicted, often slower than the next calls. Counted in, that one
    call of every ``block`` (4%) could set an operation's p99: a cost of interleaving them in one process, which
    a process serving one operation back to back does not pay.
    """
    after = between or {}
    for name, operation in operations.items():
        for _ in range(warmup):
            operation()
            if name in after:
                after[name]()
    samples: dict[str, list[int]] = {name: [] for name in operations}
    switched: dict[str, list[int]] = {name: [] for name in operations}
    full: dict[str, int] = dict.fromkeys(operations, 0)
    clock = time.perf_counter_ns
    collections = FullCollections()
    gc.callbacks.append(collections)
    try:
        while len(samples[next(iter(operations))]) < iterations:
            for name, operation in operations.items():
                tidy = after.get(name)
                before = collections.count
                for call in range(min(block, iterations - len(samples[name])) + 1):
                    started = clock()
                    operation()
                    (samples if call else switched)[name].append(clock() - started)
                    if tidy is not None:
                        tidy()
                full[name] += collections.count - before
    finally:
        gc.callbacks.remove(collections)
    return {name: summarize(samples[name], full[name], switched[name]) for name in operations}
