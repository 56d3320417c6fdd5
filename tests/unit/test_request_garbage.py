"""A warm request leaves nothing for the cyclic collector, which would otherwise run inside some request.

The collector runs when tracked allocations outnumber deallocations by 700; a request whose garbage is all
freed by reference counting never triggers it, however many requests run. Six objects left in cycles per
request made it run every ~100 decisions, for ~170 us on the bench: Decide's p99 (issue 13).
"""

import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from adserve.core.observability import logger
from adserve.decisions.api import DecisionRequest
from adserve.http_api.gateway import correlate_request
from adserve.models.features import FeatureEncoder

from bench import catalogs
from bench.decide_latency import MAX_ADS, fake_service, load_model, quiet_stdout
from bench.handler import check_response, inject_service, lambda_context, load_module

REQUESTS = 200


@pytest.fixture
def collector_off() -> Iterator[None]:
    """Keep the collector off until the test has counted."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _cyclic_garbage(request: Callable[[], object], warm: int = 20) -> int:
    """Objects in unreachable cycles after ``REQUESTS`` calls of ``request`` (after ``warm`` untimed ones)."""
    for _ in range(warm):
        request()
    gc.collect()
    for _ in range(REQUESTS):
        request()
    return gc.collect()


@pytest.fixture
def decide_handler() -> Callable[[], object]:
    """The real Decide handler over the bench's in-memory service at 10 candidates, each request checked."""
    encoder = FeatureEncoder()
    document = catalogs.decision_request_document(MAX_ADS)
    wiring = fake_service(10, load_model(encoder), encoder)
    module = load_module(name="test_garbage_decide_app")
    inject_service(module, wiring.service)
    event, context = catalogs.api_gateway_event(document), lambda_context()

    def request() -> object:
        response = module.lambda_handler(event, context)
        check_response(response, MAX_ADS)
        wiring.log.records.clear()
        return response

    assert DecisionRequest.model_validate(document).max_ads == MAX_ADS
    return request


@pytest.mark.usefixtures("collector_off")
def test_a_decide_request_leaves_no_cyclic_garbage(decide_handler: Callable[[], object]) -> None:
    # Given the warm Decide handler, When it serves 200 requests with the collector off
    with quiet_stdout():
        left = _cyclic_garbage(decide_handler)
    # Then reference counting freed everything they allocated
    assert left == 0, f"{left} objects in cycles after {REQUESTS} requests"


def test_a_request_is_logged_under_api_gateways_request_id() -> None:
    # Given a handler that reads the logger's correlation id, behind correlate_request
    seen: list[object] = []

    def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
        seen.append(logger.get_correlation_id())
        return {}

    correlated = correlate_request(handler)
    # When it serves a request with API Gateway's request id, and one without a request context
    correlated({"requestContext": {"requestId": "req-garbage-1"}}, None)
    correlated({}, None)
    # Then the first is logged under that id and the second under none, as correlation_id_path did
    assert seen == ["req-garbage-1", None]
