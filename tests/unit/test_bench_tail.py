"""The bench's Decide figures time what a deployment's decisions pay, not costs of how the bench calls them."""

import contextlib
import io
import time

from adserve.decisions.api import DecisionRequest
from adserve.models.features import FeatureEncoder

from bench import catalogs
from bench.decide_latency import BASE_URL, MAX_ADS, fake_service, load_model
from bench.stats import measure, measure_interleaved

SLOW_SECONDS = 0.05


class _Switching:
    """Operations whose first call after the other one's is slow, as a cache-cold call is."""

    def __init__(self) -> None:
        self.last = ""

    def operation(self, name: str) -> None:
        if self.last != name:
            time.sleep(SLOW_SECONDS)
        self.last = name


def test_an_interleaved_figure_times_each_blocks_first_call_apart() -> None:
    # Given two operations whose first call after the other one's is slow
    calls = _Switching()
    # When they are timed interleaved, 100 calls each in blocks of 25
    summaries = measure_interleaved(
        {"a": lambda: calls.operation("a"), "b": lambda: calls.operation("b")}, 100, 0, block=25
    )
    for summary in summaries.values():
        # Then the percentiles are the calls that follow the operation's own, and the first calls are shown apart
        assert summary.iterations == 100
        assert summary.p99_ms < SLOW_SECONDS * 1000
        assert summary.after_switch_p50_ms is not None
        assert summary.after_switch_p50_ms >= SLOW_SECONDS * 1000


def test_decide_timed_on_its_own_never_pays_a_metrics_flush() -> None:
    # Given the bench's in-memory Decide, timed alone (no handler to flush its metrics after each decision)
    encoder = FeatureEncoder()
    wiring = fake_service(10, load_model(encoder), encoder)
    request = DecisionRequest.model_validate(catalogs.decision_request_document(MAX_ADS))
    printed = io.StringIO()
    # When it decides 250 times, past Powertools' 100 values a metric
    with contextlib.redirect_stdout(printed):
        summary = measure(lambda: wiring.service.decide(request, BASE_URL), 250, 0, wiring.after_decision)
    # Then no decision flushed metrics (the handler's figure times the flush; this one times the decision)
    assert summary.iterations == 250
    assert printed.getvalue() == ""
