"""Track: GET /v1/events/{event_type} (beacon) and POST /v1/events (batch). Parses, calls the domain, shapes.

Tokens are credentials of a sort: nothing here logs the event, the query string or a token.
"""

from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from adserve.core.observability import counting_degraded_invocations, logger, metrics, tracer
from adserve.core.vocabulary import EventType
from adserve.http_api.errors import body_refusals, error_doc, install_error_handlers
from adserve.http_api.gateway import correlate_request, screen_body_up_to
from adserve.http_api.router import Path, Query, Response, Router
from adserve.outcomes.api import MAX_BATCH_BODY_BYTES, EventBatchRequest, EventBatchResponse, TrackingToken
from adserve.outcomes.tracking import TrackingService
from adserve.wiring.settings import TrackSettings
from adserve.wiring.track import tracking_service
from aws_lambda_powertools.utilities.typing import LambdaContext

app = Router()
install_error_handlers(app)


@cache
def service() -> TrackingService:
    """Built on the first request of an execution environment, then reused."""
    return tracking_service(TrackSettings.from_env())


@app.get(
    "/v1/events/<event_type>",
    summary="Report one event by firing an ad's tracking URL (beacon)",
    responses={
        204: {"description": "Queued; no body", "content": {}},
        403: error_doc("Forged, tampered, expired or wrong-type token"),
        422: error_doc("Unknown event type or missing token"),
        503: error_doc("Not queued; retry (a repeated beacon is the same event)"),
        **body_refusals(f"{MAX_BATCH_BODY_BYTES // 1024} KiB", takes_body=False),
    },
    ignore_unknown_query=True,  # a player may append its own (a cache-buster): the beacon still counts
)
@tracer.capture_method(capture_response=False)
def fire_beacon(
    event_type: Annotated[EventType, Path(description="The event the tracking URL reports")],
    t: Annotated[TrackingToken, Query()],
) -> Response:
    service().record_beacon(event_type, t)
    return Response(status_code=HTTPStatus.NO_CONTENT, headers={"Cache-Control": "no-store"})


@app.post(
    "/v1/events",
    summary="Report up to 100 events at once",
    status_code=HTTPStatus.ACCEPTED,
    responses={
        202: {
            "description": "Each event's result: accepted (queued), rejected (never retry) or failed (retry)",
            "content": {"application/json": {"model": EventBatchResponse}},
        },
        **body_refusals(f"{MAX_BATCH_BODY_BYTES // 1024} KiB"),
        422: error_doc("Invalid request, e.g. more than 100 events"),
    },
)
@tracer.capture_method(capture_response=False)
def record_events(request: EventBatchRequest) -> EventBatchResponse:
    return service().record_batch(request)


@logger.inject_lambda_context
@correlate_request
@metrics.log_metrics
@counting_degraded_invocations  # the canary's share (template.yaml, *CanaryDegradedAlarm)
@tracer.capture_lambda_handler(capture_response=False)
@screen_body_up_to(MAX_BATCH_BODY_BYTES)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
