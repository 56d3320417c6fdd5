"""The EMF metrics a local invocation prints, collected per invocation and shown as one readable line.

Powertools writes each EMF document to stdout with ``print`` (it has no output hook), from whichever thread
runs the handler; the local stack runs handlers on the gateway's and the SQS pollers' threads at once. So
instead of redirecting stdout around a call (which would swallow other threads' output), ``sys.stdout`` is
wrapped once by a :class:`ThreadRoutedStdout`: a thread inside :meth:`ThreadRoutedStdout.collecting` has its
complete EMF lines kept aside; every other line, and every line of other threads, goes through at once.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["ThreadRoutedStdout", "emf_documents", "readable_metrics"]

_UNIT_SUFFIXES = {"Count": "", "Milliseconds": "ms", "Seconds": "s", "Microseconds": "us", "Bytes": "B", "Percent": "%"}


class ThreadRoutedStdout(io.TextIOBase):
    """Stands in for ``sys.stdout``; lines that are EMF documents are collected by threads that ask for them."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self.target = target
        self._local = threading.local()
        self._lock = threading.Lock()

    @classmethod
    def install(cls) -> ThreadRoutedStdout:
        """Wrap ``sys.stdout`` (once: a second call returns the wrapper already there)."""
        if not isinstance(sys.stdout, cls):
            sys.stdout = cls(sys.stdout)
        router: ThreadRoutedStdout = sys.stdout
        return router

    @contextmanager
    def collecting(self) -> Iterator[list[str]]:
        """EMF lines this thread writes meanwhile are appended to the yielded list instead of being written."""
        collected: list[str] = []
        previous = getattr(self._local, "collected", None)
        self._local.collected = collected
        try:
            yield collected
        finally:
            self._flush_partial()
            self._local.collected = previous

    def write(self, text: str) -> int:
        collected: list[str] | None = getattr(self._local, "collected", None)
        if collected is None:
            return self._forward(text)
        pending = getattr(self._local, "partial", "") + text
        *lines, self._local.partial = pending.split("\n")
        for line in lines:
            if _is_emf(line):
                collected.append(line)
            else:
                self._forward(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.target, "encoding", "utf-8"))

    def _flush_partial(self) -> None:
        partial = getattr(self._local, "partial", "")
        self._local.partial = ""
        if partial:
            self._forward(partial)

    def _forward(self, text: str) -> int:
        with self._lock:
            return self.target.write(text)


def _is_emf(line: str) -> bool:
    if not line.startswith("{") or '"_aws"' not in line:
        return False
    try:
        document = json.loads(line)
    except ValueError:
        return False
    return isinstance(document, dict) and isinstance(document.get("_aws"), dict)


def emf_documents(lines: Sequence[str]) -> list[dict[str, Any]]:
    """The EMF documents among *lines* (anything else is skipped)."""
    documents = []
    for line in lines:
        if _is_emf(line):
            documents.append(json.loads(line))
    return documents


def metric_total(documents: Sequence[Mapping[str, Any]], name: str) -> float:
    """The sum of every value of metric *name* in *documents* (0 when none holds it)."""
    return sum(sum(_values(document, name)) for document in documents)


def _values(document: Mapping[str, Any], name: str) -> list[float]:
    raw = document.get(name)
    return [float(value) for value in (raw if isinstance(raw, list) else [raw]) if value is not None]


def readable_metrics(service: str, documents: Sequence[Mapping[str, Any]]) -> str:
    """``metrics decide: Decisions=1 AdsReturned=3 DecideLatency=1.8ms``, one line for an invocation.

    Dimensions other than ``service`` follow the name in braces: ``EventsRejected{reason=expired_token}=1``.
    A Count is summed; other units list every value.
    """
    parts: list[str] = []
    for document in documents:
        for directive in document["_aws"].get("CloudWatchMetrics", []):
            dimension_names = {name for dimension_set in directive.get("Dimensions", []) for name in dimension_set}
            extra = ",".join(f"{name}={document.get(name)}" for name in sorted(dimension_names) if name != "service")
            for metric in directive.get("Metrics", []):
                name, unit = metric["Name"], metric.get("Unit", "None")
                values = _values(document, name)
                label = f"{name}{{{extra}}}" if extra else name
                parts.append(f"{label}={_format_values(values, unit)}")
    return f"metrics {service}: " + (" ".join(parts) if parts else "(none)")


def _format_values(values: list[float], unit: str) -> str:
    suffix = _UNIT_SUFFIXES.get(unit, f" {unit}")
    if unit == "Count":
        return _number(sum(values))
    return ",".join(f"{_number(value)}{suffix}" for value in values)


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else f"{value:.1f}"
