"""What every HTTP function needs from the API Gateway event beyond routing: size limits, its own URL."""

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.middleware_factory import lambda_handler_decorator
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from adserve.http_api.errors import error_body

MAX_BODY_BYTES = 64 * 1024

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@lambda_handler_decorator
def limit_body_size(handler: Handler, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Refuse bodies over MAX_BODY_BYTES with a 413 before anything (validation included) parses them."""
    body = event.get("body") or ""
    size = len(body) * 3 // 4 if event.get("isBase64Encoded") else len(body.encode())
    if size <= MAX_BODY_BYTES:
        return handler(event, context)
    return {
        "statusCode": HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        "headers": {"Content-Type": "application/json"},
        "body": error_body("payload_too_large", f"request body is {size} bytes; the limit is {MAX_BODY_BYTES}"),
        "isBase64Encoded": False,
    }


def public_base_url(event: APIGatewayProxyEventV2) -> str:
    """The URL clients reached this API at, so tracking links come back to the same API and stage."""
    scheme = event.headers.get("x-forwarded-proto", "https")
    stage = event.request_context.stage
    prefix = "" if stage in ("$default", "", None) else f"/{stage}"
    return f"{scheme}://{event.request_context.domain_name}{prefix}"
