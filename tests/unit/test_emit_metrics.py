"""``emit``, Decide's per-decision way to add a metric, leaves what Powertools' ``add_metric`` leaves: the
same metric set and the same EMF documents, flushed at the same calls."""

import contextlib
import io
import json
from collections.abc import Callable
from typing import Any

from adserve.core.observability import MetricName, emit, metrics
from aws_lambda_powertools.metrics import MetricUnit

Adder = Callable[[MetricName, MetricUnit, float], None]


def _sequence() -> list[tuple[MetricName, MetricUnit, float]]:
    """Every name, one of them 250 times (past two 100-value flushes), a unit change, ints and floats."""
    calls: list[tuple[MetricName, MetricUnit, float]] = [(name, MetricUnit.Count, 1) for name in MetricName]
    calls += [(MetricName.DECIDE_LATENCY, MetricUnit.Milliseconds, 0.25 * i) for i in range(250)]
    calls += [(MetricName.DECISIONS, MetricUnit.Count, i) for i in range(120)]
    calls += [
        (MetricName.CATALOG_AGE_SECONDS, MetricUnit.Seconds, 3.5),
        (MetricName.CATALOG_AGE_SECONDS, MetricUnit.Count, 2),
    ]
    return calls


def _run(add: Adder) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The EMF documents printed while adding (their timestamps dropped) and the metric set left after."""
    metrics.clear_metrics()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for name, unit, value in _sequence():
            add(name, unit, value)
    documents = [json.loads(line) for line in printed.getvalue().splitlines()]
    for document in documents:
        del document["_aws"]["Timestamp"]
    left = json.loads(json.dumps(metrics.metric_set))
    metrics.clear_metrics()
    return documents, left


def test_emit_leaves_what_add_metric_leaves() -> None:
    # Given the same calls through Powertools and through emit
    expected_documents, expected_left = _run(metrics.add_metric)
    documents, left = _run(emit)
    # Then both flushed the same documents at the same points and left the same set
    assert len(expected_documents) == 3, "two flushes of DecideLatency, one of Decisions"
    assert documents == expected_documents
    assert left == expected_left
    assert list(left) == list(expected_left), "the same order of names: the same EMF bytes"
