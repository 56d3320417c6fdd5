"""Figure 8: the Track beacon (GET /v1/events/impression?t=TOKEN) in-process, the SQS call left out.

The real ``functions/track/app.py`` handler with an API Gateway v2 event, its ``service()`` returning a
``TrackingService`` wired to ``InMemoryOutcomeQueue`` and a real ``TokenSigner``: token verification (HMAC,
expiry, type), the router and validation, the event built and "queued", the 204 and the EMF
metrics flush. *service* times ``TrackingService.record_beacon`` alone. Every call verifies a different,
genuine token, as a stream of listeners' beacons would.
"""

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from adserve.core.vocabulary import EventType
from adserve.outcomes.key_cache import SigningKeyCache
from adserve.outcomes.tokens import TokenSigner, TrackingClaims
from adserve.outcomes.tracking import TrackingService

from bench import catalogs
from bench.decide_latency import quiet_stdout
from bench.handler import load_module
from bench.handler_errors import counting_errors
from bench.stats import measure
from devstack.api_events import http_api_event
from devstack.fakes import InMemoryOutcomeQueue
from devstack.lambda_runtime import LocalLambdaContext

TRACK_APP = catalogs.REPO_ROOT / "functions" / "track" / "app.py"
TOKENS = 512


def tokens(signer: TokenSigner, count: int, rng: random.Random) -> list[str]:
    expires = int((datetime.now(UTC) + timedelta(days=1)).timestamp())
    return [
        signer.sign(
            TrackingClaims(
                decision_id=f"d-{rng.getrandbits(64):016x}",
                ad_id=f"ad-{rng.randrange(1000)}",
                campaign_id=f"cmp-{rng.randrange(1000)}",
                advertiser_id=f"adv-{rng.randrange(1000)}",
                listener=f"{rng.getrandbits(128):032x}",
                session=f"s:{rng.getrandbits(32):08x}",
                event_type=EventType.IMPRESSION.value,
                expires_at=expires,
            )
        )
        for _ in range(count)
    ]


def beacon_event(token: str) -> dict[str, Any]:
    return http_api_event(
        method="GET",
        raw_path="/v1/events/impression",
        route_key="GET /v1/events/{event_type}",
        raw_query_string=f"t={token}",
        path_parameters={"event_type": "impression"},
        domain_name="abc123.execute-api.us-east-1.amazonaws.com",
    )


class _Cycle:
    def __init__(self, items: list[Any]) -> None:
        self._items = items
        self._next = 0

    def take(self) -> Any:
        item = self._items[self._next % len(self._items)]
        self._next += 1
        return item


def run(quick: bool = False) -> dict[str, Any]:
    rng = random.Random(11)
    signer = TokenSigner(rng.randbytes(64))
    queue = InMemoryOutcomeQueue()
    service = TrackingService(queue=queue, keys=SigningKeyCache(lambda: signer))
    module = load_module(TRACK_APP, "bench_track_app")
    setattr(module, "service", lambda: service)  # noqa: B010 - the handler's one seam, as bench/handler.py does
    context = LocalLambdaContext(
        function_name="bench-track",
        memory_limit_in_mb=512,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:bench-track",
        timeout_seconds=3,
    )
    genuine = tokens(signer, TOKENS, rng)
    events = _Cycle([beacon_event(token) for token in genuine])
    iterations = 300 if quick else 3000
    warmup = max(iterations // 10, 50)
    with quiet_stdout(), counting_errors() as errors:
        first = module.lambda_handler(events.take(), context)
        if first.get("statusCode") != 204:
            raise RuntimeError(f"track handler answered {first.get('statusCode')}: {first!r:.300}")
        token_cycle = _Cycle(genuine)
        service_summary = measure(
            lambda: service.record_beacon(EventType.IMPRESSION, token_cycle.take()),
            iterations,
            warmup,
            queue.events.clear,
        )
        handler_summary = measure(
            lambda: module.lambda_handler(events.take(), context), iterations, warmup, queue.events.clear
        )
        check = module.lambda_handler(events.take(), context)
    if check.get("statusCode") != 204 or len(queue.events) != 1:
        raise RuntimeError("the beacon was not queued: the benchmark timed an error path")
    return {
        "service_record_beacon": service_summary.to_dict(),
        "full_handler": handler_summary.to_dict(),
        "handler_errors": errors.to_dict(),
    }
