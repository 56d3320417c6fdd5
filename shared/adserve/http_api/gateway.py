"""What every HTTP function needs from the API Gateway event beyond routing: body screening, its own URL."""

import base64
import functools
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast

from aws_lambda_powertools.middleware_factory import lambda_handler_decorator

from adserve.core.observability import logger
from adserve.http_api.errors import error_body

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects a body may have; our deepest model needs 5 levels."""
JSON_MEDIA_TYPE = "application/json"

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)
"""A JSON string (to the end of the text if it is never closed, so the scan stays linear) or a bracket."""


def correlate_request(handler: Handler) -> Handler:
    """Log under API Gateway's request id (``requestContext.requestId``), the correlation id Decide and Track
    pass on to Record; under ``logger.inject_lambda_context``, in place of its ``correlation_id_path``.

    That parameter's JMESPath query costs ~6 us a request and leaves six objects in reference cycles behind
    (its interpreter, options and functions table): the only garbage a decision made, so the cyclic collector
    ran every ~100 requests, each time for ~170 us on the bench, inside a request: the p99.
    """

    @functools.wraps(handler)
    def correlated(event: dict[str, Any], context: Any) -> dict[str, Any]:
        logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
        return handler(event, context)

    return correlated


class _RefusedBodyError(Exception):
    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@lambda_handler_decorator
def screen_body(
    handler: Handler, event: dict[str, Any], context: Any, max_body_bytes: int = MAX_BODY_BYTES
) -> dict[str, Any]:
    """Hand the router only bodies it can parse: JSON text, UTF-8, at most ``max_body_bytes`` (64 KiB unless a
    function's largest valid request needs more) and 32 levels deep.

    Anything else gets its 4xx here, before validation parses it: 413 `payload_too_large`, 415
    `unsupported_media_type` (a Content-Type other than application/json; none at all counts as JSON,
    for clients that send none), 400 `malformed_json` (not UTF-8, or nested too deep for the parsers' stacks).
    The body is passed on decoded, with the canonical Content-Type (whatever an empty body was labelled).
    """
    try:
        text = _json_text(event, max_body_bytes) if event.get("body") else ""
    except _RefusedBodyError as refusal:
        return {
            "statusCode": refusal.status,
            "headers": {"Content-Type": JSON_MEDIA_TYPE},
            "body": error_body(refusal.code, str(refusal)),
            "isBase64Encoded": False,
        }
    headers = {name: value for name, value in (event.get("headers") or {}).items() if name.lower() != "content-type"}
    screened = {**event, "body": text, "isBase64Encoded": False, "headers": headers | {"content-type": JSON_MEDIA_TYPE}}
    return handler(screened, context)


def screen_body_up_to(max_body_bytes: int) -> Callable[[Handler], Handler]:
    """``screen_body`` with another body limit, for a function whose largest valid request needs more."""
    return cast("Callable[[Handler], Handler]", screen_body(max_body_bytes=max_body_bytes))


def _json_text(event: dict[str, Any], max_body_bytes: int) -> str:
    body: str = event["body"]
    encoded = event.get("isBase64Encoded")
    # base64's 4 characters hold 3 bytes, less one for each padding "=" (65,536 bytes must not read as 65,538)
    size = len(body) * 3 // 4 - body[-2:].count("=") if encoded else len(body.encode(errors="surrogatepass"))
    if size > max_body_bytes:
        raise _RefusedBodyError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "payload_too_large",
            f"request body is {size} bytes; the limit is {max_body_bytes}",
        )
    headers = event.get("headers") or {}
    content_type = next((value for name, value in headers.items() if name.lower() == "content-type"), "")
    if content_type.partition(";")[0].strip().lower() not in ("", JSON_MEDIA_TYPE):
        raise _RefusedBodyError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", f"request body must be {JSON_MEDIA_TYPE}"
        )
    try:
        text = base64.b64decode(body, validate=True).decode() if encoded else body.encode().decode()
    except ValueError:  # binascii.Error, UnicodeError, and b64decode's own for non-ASCII text: all ValueErrors
        raise _RefusedBodyError(HTTPStatus.BAD_REQUEST, "malformed_json", "request body is not UTF-8") from None
    if _nests_too_deep(text):
        raise _RefusedBodyError(
            HTTPStatus.BAD_REQUEST, "malformed_json", f"request body nests deeper than {MAX_JSON_DEPTH} levels"
        )
    return text


def _nests_too_deep(text: str) -> bool:
    """Whether arrays and objects nest deeper than MAX_JSON_DEPTH (brackets in strings aside), before parsing.

    json and pydantic recurse per level and overflow the stack at about a thousand; a body with few
    brackets is not scanned at all.
    """
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    for token in _STRING_OR_BRACKET.findall(text):
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def public_base_url(event: dict[str, Any]) -> str:
    """The URL clients reached this API at, so tracking links come back to the same API and stage.

    The host is API Gateway's own (``requestContext.domainName``); the scheme is https unless the forwarded one
    is exactly ``http`` (the local stack's gateway). A request header is the caller's to write: taken as it came,
    ``X-Forwarded-Proto: https://elsewhere/?`` pointed every signed tracking URL at another host."""
    forwarded = (event.get("headers") or {}).get("x-forwarded-proto")
    scheme = "http" if forwarded == "http" else "https"
    context = event["requestContext"]
    stage = context.get("stage")
    prefix = "" if stage in ("$default", "", None) else f"/{stage}"
    return f"{scheme}://{context['domainName']}{prefix}"
