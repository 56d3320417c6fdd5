"""The one place where errors become HTTP responses: `{"error": {"code", "message", "details"?}}`."""

from functools import partial
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel

from adserve.core.errors import (
    AdserveError,
    CampaignStoreUnavailableError,
    ConflictError,
    DeliveryStoreUnavailableError,
    ErasureUnavailableError,
    InvalidInputError,
    NotFoundError,
    OutcomeQueueUnavailableError,
    SecretKeysUnavailableError,
    TokenError,
)
from adserve.core.observability import MetricName, count_by_version, count_degraded, logger
from adserve.http_api.router import (
    JSON_CONTENT,
    MalformedJsonError,
    OpenAPIResponse,
    RequestValidationError,
    Response,
    RouteNotFoundError,
    Router,
)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_doc(description: str) -> OpenAPIResponse:
    """An OpenAPI response entry for an error status: the description and the error body's schema."""
    return {"description": description, "content": {"application/json": {"model": ErrorResponse}}}


def body_refusals(max_body: str = "64 KiB", *, takes_body: bool = True) -> dict[int, OpenAPIResponse]:
    """The OpenAPI responses for what ``screen_body``, around every route, refuses before the route sees a body; a
    route that takes none (a GET, a DELETE) ignores a body that passes it, so only JSON text is refused on one
    that does."""
    malformed = "not UTF-8, not JSON" if takes_body else "a body (ignored here) not UTF-8"
    return {
        400: error_doc(f"Malformed JSON: {malformed} or nested over 32 levels"),
        413: error_doc(f"Body over {max_body}"),
        415: error_doc("A Content-Type other than application/json"),
    }


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> str:
    return ErrorResponse(error=ErrorBody(code=code, message=message, details=details)).model_dump_json(
        exclude_none=True
    )


def error_response(
    status: HTTPStatus, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> Response:
    return Response(status_code=status, content_type=JSON_CONTENT, body=error_body(code, message, details))


def _said(status: HTTPStatus, code: str, error: AdserveError) -> Response:
    return error_response(status, code, str(error))


def _unavailable(code: str, message: str, retry_after: str, error: AdserveError) -> Response:
    logger.warning("store unavailable", extra={"code": code, "error": str(error)})
    count_degraded(MetricName.SERVICE_UNAVAILABLE)
    response = error_response(HTTPStatus.SERVICE_UNAVAILABLE, code, message)
    response.headers["Retry-After"] = retry_after
    return response


def _validation_details(error: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    for problem in error.errors():
        # A location may echo a caller's name (an unknown query parameter's): escaped, so no lone surrogate can
        # stop the error body from being written
        location = [_printable(str(part)) for part in problem.get("loc", ()) if part != "body"]
        details.append({"field": ".".join(location) or "body", "problem": problem.get("msg", "invalid")})
    return "; ".join(f"{d['field']}: {d['problem']}" for d in details[:5]), details[:50]


def _printable(text: str) -> str:
    """*text* as UTF-8 can carry it: what it cannot (a lone surrogate) as a backslash escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


_SAID: dict[type[AdserveError], tuple[HTTPStatus, str]] = {
    NotFoundError: (HTTPStatus.NOT_FOUND, "not_found"),
    ConflictError: (HTTPStatus.CONFLICT, "conflict"),
}
"""Errors whose message is the caller's answer: status and code."""

_UNAVAILABLE: dict[type[AdserveError], tuple[str, str, str]] = {
    OutcomeQueueUnavailableError: ("queue_unavailable", "the event could not be queued; retry it", "1"),
    ErasureUnavailableError: ("erasure_unavailable", "the erasure did not complete; retry it", "5"),
    CampaignStoreUnavailableError: ("campaigns_unavailable", "the campaigns could not be read or written; retry", "1"),
    DeliveryStoreUnavailableError: ("delivery_unavailable", "delivery could not be read or kept; retry it", "1"),
    SecretKeysUnavailableError: ("keys_unavailable", "the signing or pseudonym keys could not be read; retry it", "1"),
}
"""A store that could not be reached: 503 with its code, message and ``Retry-After`` seconds. Nothing was lost: the
caller's retry does it again."""


def install_error_handlers(app: Router) -> None:
    """Map domain errors to status codes; nothing a caller sends can produce a 500."""

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response:
        message, details = _validation_details(error)
        return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_request", message, details)

    @app.exception_handler(InvalidInputError)
    def _breaks_a_rule(error: InvalidInputError) -> Response:
        details = [{"field": error.field, "problem": str(error)}]
        return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_request", str(error), details)

    for said, (status, code) in _SAID.items():
        app.exception_handler(said)(partial(_said, status, code))

    @app.exception_handler(TokenError)
    def _bad_token(error: TokenError) -> Response:
        return error_response(HTTPStatus.FORBIDDEN, error.code, str(error))

    for unavailable, answer in _UNAVAILABLE.items():
        app.exception_handler(unavailable)(partial(_unavailable, *answer))

    @app.exception_handler(MalformedJsonError)
    def _malformed(_: MalformedJsonError) -> Response:
        return error_response(HTTPStatus.BAD_REQUEST, "malformed_json", "request body is not valid JSON")

    @app.exception_handler(RouteNotFoundError)
    def _no_route(_: RouteNotFoundError) -> Response:
        return error_response(HTTPStatus.NOT_FOUND, "not_found", "no such route")

    @app.exception_handler(Exception)
    def _unexpected(_: Exception) -> Response:
        logger.exception("unhandled error")
        count_by_version(MetricName.UNHANDLED_ERRORS)
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error")
