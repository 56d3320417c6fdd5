"""Listener erasure: `POST /v1/erasures` (IAM). Parses, calls the erasure service, answers."""

from functools import cache
from typing import Any

from adserve.core.observability import MetricName, logger, metrics, tracer
from adserve.http_api.errors import body_refusals, error_doc, install_error_handlers
from adserve.http_api.gateway import correlate_request, screen_body
from adserve.http_api.router import Router
from adserve.privacy.erasure import ErasureRequest, ErasureResponse, ErasureService
from adserve.wiring.listeners import erasure_service
from adserve.wiring.settings import ListenersSettings
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

app = Router()
install_error_handlers(app)


@cache
def service() -> ErasureService:
    settings = ListenersSettings.from_env()
    return erasure_service(
        settings.frequency_caps_table_name,
        settings.logs_bucket_name,
        settings.pseudonym_key_secret_id,
        pre_pseudonym_logs=settings.pre_pseudonym_logs,
    )


@app.post(
    "/v1/erasures",
    summary="Erase a listener: its counters now, its logged rows from every later training run",
    responses={
        200: {"description": "Erased (or already erased): what was deleted, by kind"},
        **body_refusals(),
        422: error_doc("Not a listener id (1-64 of A-Z a-z 0-9 _ . : -), or a field other than listener_id"),
        503: error_doc("A store could not be reached; retry (erasure is idempotent)"),
    },
)
@tracer.capture_method(capture_response=False)
def erase_listener(request: ErasureRequest) -> ErasureResponse:
    response = service().erase(request.listener_id)
    metrics.add_metric(MetricName.LISTENERS_ERASED, MetricUnit.Count, 1)
    return response


@logger.inject_lambda_context
@correlate_request
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@screen_body
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
