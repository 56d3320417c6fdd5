"""What every HTTP function needs from the API Gateway event beyond routing: size limits, its own URL."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from adserve.errors import PayloadTooLargeError

MAX_BODY_BYTES = 64 * 1024


def enforce_body_limit(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
    """Middleware: refuse bodies over MAX_BODY_BYTES before anything parses them."""
    body = app.current_event.body or ""
    size = len(body) * 3 // 4 if app.current_event.is_base64_encoded else len(body.encode())
    if size > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"request body is {size} bytes; the limit is {MAX_BODY_BYTES}")
    return next_middleware(app)


def public_base_url(event: APIGatewayProxyEventV2) -> str:
    """The URL clients reached this API at, so tracking links come back to the same API and stage."""
    scheme = event.headers.get("x-forwarded-proto", "https")
    stage = event.request_context.stage
    prefix = "" if stage in ("$default", "", None) else f"/{stage}"
    return f"{scheme}://{event.request_context.domain_name}{prefix}"
