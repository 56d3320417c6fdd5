"""Listener erasure: `DELETE /v1/listeners/{listener_id}` (IAM). Parses, calls the erasure service, answers."""

from functools import cache
from typing import Annotated, Any

from adserve.core.identifiers import Identifier
from adserve.core.observability import MetricName, logger, metrics, tracer
from adserve.http_api.errors import error_doc, install_error_handlers
from adserve.http_api.gateway import correlate_request, screen_body
from adserve.http_api.router import Path, Router
from adserve.privacy.erasure import ErasureResponse, ErasureService
from adserve.wiring.listeners import erasure_service
from adserve.wiring.settings import ListenersSettings
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

app = Router()
install_error_handlers(app)

ListenerId = Annotated[Identifier, Path(description="The listener's id, as apps send it in POST /v1/decisions")]


@cache
def service() -> ErasureService:
    settings = ListenersSettings.from_env()
    return erasure_service(
        settings.frequency_caps_table_name, settings.logs_bucket_name, settings.pseudonym_key_secret_id
    )


@app.delete(
    "/v1/listeners/<listener_id>",
    summary="Erase a listener: its counters now, its logged rows from every later training run",
    responses={
        200: {"description": "Erased (or already erased): what was deleted, by kind"},
        422: error_doc("The id is not a listener id (1-64 of A-Z a-z 0-9 _ . : -)"),
        503: error_doc("A store could not be reached; retry (erasure is idempotent)"),
    },
)
@tracer.capture_method(capture_response=False)
def erase_listener(listener_id: ListenerId) -> ErasureResponse:
    response = service().erase(listener_id)
    metrics.add_metric(MetricName.LISTENERS_ERASED, MetricUnit.Count, 1)
    return response


@logger.inject_lambda_context
@correlate_request
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@screen_body
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
