"""Our HTTP API routing: routes, path and query parameters, JSON bodies validated by pydantic, JSON answers.

In place of Powertools' event handler, whose import (its resolvers for every event source, their data classes,
asyncio, the OpenAPI machinery) was ~50 ms of CPU of each cold start, for what five routes need. A route's
parameters come from its handler's signature: ``Annotated[T, Path(...)]``, ``Annotated[T, Query(...)]``, and
one pydantic model, the JSON body; its validators are built on the route's first request. Validation problems
are reported as Powertools reported them (location ``path.<name>``, ``query.<alias>`` or the body's fields),
and the same routes, parameters and models describe the API in its OpenAPI document (``openapi``).
"""

import inspect
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from http import HTTPStatus
from typing import Annotated, Any, Final, Literal, TypedDict, get_args, get_type_hints
from urllib.parse import unquote

from pydantic import BaseModel, BeforeValidator, Field, TypeAdapter, ValidationError

JSON_CONTENT = "application/json"
_PATH_PARAMETER = re.compile(r"<(\w+)>")
_SEGMENT = r"[^/]+"
"""What a path parameter matches: any segment, as API Gateway's ``{name}`` does (which may hand ``rawPath`` over
percent-decoded); the parameter's own type refuses what it does not take, a 422 that names it rather than a 404
"no such route". ``%`` escapes are decoded after the match (``_path_values``)."""


@dataclass(frozen=True)
class Path:
    """Marks a handler parameter as the path segment of the same name."""

    description: str | None = None


@dataclass(frozen=True)
class Query:
    """Marks a handler parameter as a query string parameter (named *alias* in the URL when given)."""

    description: str | None = None
    alias: str | None = None


def _decimal_digits(value: object) -> object:
    """A query or path integer as it must be written, in digits 0-9 alone: lax validation of the text also reads
    ``1_0`` as 10, ``5.0`` and ``+5`` as 5, and other scripts' digits."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number written in the digits 0-9")
    return value


DecimalDigits: Final = BeforeValidator(_decimal_digits)
"""Annotate an ``int`` query or path parameter with it."""


class OpenAPIResponse(TypedDict, total=False):
    """A route's documented response: its description and, for a JSON body, ``{"application/json": {"model": M}}``."""

    description: str
    content: dict[str, Any]


@dataclass
class Response:
    """What a handler returns when a model is not the whole answer: a status, headers, and a body if any."""

    status_code: int
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


class RequestValidationError(Exception):
    """The request's parameters or body do not validate; *errors* are pydantic's, located as in the request."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self._errors = errors

    def errors(self) -> list[dict[str, Any]]:
        return self._errors


class MalformedJsonError(Exception):
    """The body is not JSON."""


@dataclass(frozen=True)
class _Parameter:
    name: str
    kind: Literal["path", "query", "body"]
    annotation: Any
    marker: Path | Query | None
    default: Any

    @property
    def key(self) -> str:
        """Its name in the request: the query alias, else the parameter's own name."""
        return self.marker.alias or self.name if isinstance(self.marker, Query) else self.name

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    @cached_property
    def adapter(self) -> TypeAdapter[Any]:
        """Built on first use: a route's validators cost nothing until it is first called."""
        return TypeAdapter(self.annotation)

    def schema_adapter(self) -> TypeAdapter[Any]:
        """For the OpenAPI document: titled after the parameter as it appears in the request, with its description
        (a body or a parameter of a named schema, e.g. an enum, is described by that schema alone)."""
        if self.kind == "body":
            return self.adapter
        description = self.marker.description if self.marker else None
        named = isinstance(self.annotation, type) and issubclass(self.annotation, Enum | BaseModel)
        title = None if named else self.key.replace("_", " ").title()
        documented = Field(title=title, description=description)
        if not self.required:
            documented = Field(self.default, title=title, description=description)
        annotated: Any = Annotated[self.annotation, documented]
        return TypeAdapter(annotated)


@dataclass
class Route:
    method: str
    path: str
    handler: Callable[..., Any]
    summary: str
    responses: Mapping[int, OpenAPIResponse]
    status_code: int
    include_in_schema: bool
    ignore_unknown_query: bool = False
    """Accept query parameters the handler does not name (the beacon: a player may append a cache-buster);
    elsewhere one is a 422, as an unknown body field is, so a misspelt ``?frm=`` is not read as absent."""

    @cached_property
    def known_query(self) -> frozenset[str]:
        return frozenset(parameter.key for parameter in self.parameters if parameter.kind == "query")

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        parts = _PATH_PARAMETER.split(self.path)  # literal, name, literal, name, ..., literal
        return re.compile(
            "^" + "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>{_SEGMENT})" for i, p in enumerate(parts)) + "$"
        )

    @cached_property
    def parameters(self) -> list[_Parameter]:
        hints = get_type_hints(inspect.unwrap(self.handler), include_extras=True)
        found = []
        for name, parameter in inspect.signature(inspect.unwrap(self.handler)).parameters.items():
            annotation = hints[name]
            marker = next((m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, (Path, Query))), None)
            if marker is not None:
                annotation = _without(annotation, marker)
            kind: Literal["path", "query", "body"] = (
                "path" if isinstance(marker, Path) else "query" if isinstance(marker, Query) else "body"
            )
            found.append(_Parameter(name, kind, annotation, marker, parameter.default))
        return found

    @cached_property
    def returns(self) -> Any:
        return get_type_hints(inspect.unwrap(self.handler)).get("return")

    @property
    def operation_id(self) -> str:
        return re.sub(r"\W", "_", f"{self.handler.__name__}{self.openapi_path}") + f"_{self.method.lower()}"

    @property
    def openapi_path(self) -> str:
        return _PATH_PARAMETER.sub(r"{\1}", self.path)


def _without(annotation: Any, marker: object) -> Any:
    """``Annotated[T, ..., marker, ...]`` without *marker* (T alone when nothing else annotates it)."""
    rest = tuple(m for m in annotation.__metadata__ if m is not marker)
    base = get_args(annotation)[0]
    return Annotated[(base, *rest)] if rest else base


class Router:
    """Routes API Gateway HTTP API (payload 2.0) events to handlers; exceptions become responses by their class."""

    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._exception_handlers: dict[type[Exception], Callable[[Any], Response]] = {}
        self.current_event: dict[str, Any] = {}

    def get(self, path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("GET", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("PUT", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("POST", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("DELETE", path, **options)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        responses: Mapping[int, OpenAPIResponse] | None = None,
        status_code: int = HTTPStatus.OK,
        include_in_schema: bool = True,
        ignore_unknown_query: bool = False,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            self._routes.append(
                Route(
                    method,
                    path,
                    handler,
                    summary,
                    responses or {},
                    int(status_code),
                    include_in_schema,
                    ignore_unknown_query,
                )
            )
            return handler

        return register

    def exception_handler(
        self, exception: type[Exception]
    ) -> Callable[[Callable[[Any], Response]], Callable[[Any], Response]]:
        def register(handler: Callable[[Any], Response]) -> Callable[[Any], Response]:
            self._exception_handlers[exception] = handler
            return handler

        return register

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:  # noqa: ARG002 - Lambda's signature
        """The HTTP API's response to *event*: the handler's answer, or the error response of what it raised."""
        self.current_event = event
        try:
            response = self._call(event["requestContext"]["http"]["method"].upper(), _path(event), event)
        except Exception as error:  # noqa: BLE001 - every error becomes its response; the catch-all one logs
            try:
                response = self._handle(error)
            except Exception as failure:  # an error answering the error: the catch-all's answer, never none at all
                catch_all = self._exception_handlers.get(Exception)
                if catch_all is None:
                    raise
                response = catch_all(failure)
        return _gateway_response(response)

    def _call(self, method: str, path: str, event: dict[str, Any]) -> Response:
        for route in self._routes:
            match = route.pattern.match(path) if route.method == method else None
            if match:
                arguments = _arguments(route, _path_values(match, event), event)
                return self._answer(route, route.handler(**arguments))
        raise RouteNotFoundError(path)

    @staticmethod
    def _answer(route: Route, result: Any) -> Response:
        if isinstance(result, Response):
            return result
        document = result.model_dump(mode="json", by_alias=True) if isinstance(result, BaseModel) else result
        return Response(route.status_code, json.dumps(document, separators=(",", ":")), content_type=JSON_CONTENT)

    def _handle(self, error: Exception) -> Response:
        for kind in type(error).__mro__:
            handler = self._exception_handlers.get(kind)
            if handler is not None:
                return handler(error)
        raise error


class RouteNotFoundError(Exception):
    """No route has this method and path."""


def _arguments(route: Route, path_values: dict[str, str], event: dict[str, Any]) -> dict[str, Any]:
    """The handler's arguments, validated; every problem found is reported at once, as Powertools did."""
    query = event.get("queryStringParameters") or {}
    values: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    body = [parameter for parameter in route.parameters if parameter.kind == "body"]
    if query and not route.ignore_unknown_query:  # Decide's POST has none: nothing to build per decision
        errors.extend(
            {"type": "extra_forbidden", "loc": ("query", name), "msg": "Extra inputs are not permitted", "input": None}
            for name in sorted(set(query) - route.known_query)
        )
    for parameter in route.parameters:
        if parameter.kind == "body":
            continue
        received = (path_values if parameter.kind == "path" else query).get(parameter.key)
        location: tuple[str | int, ...] = (parameter.kind, parameter.key)
        if received is None:
            if parameter.required:
                errors.append({"type": "missing", "loc": location, "msg": "Field required", "input": None})
            else:
                values[parameter.name] = parameter.default
            continue
        values[parameter.name] = _validated(parameter, received, location, errors)
    for parameter in body:
        received = _json_body(event)
        if received is None:
            errors.append({"type": "missing", "loc": ("body",), "msg": "Field required", "input": None})
            continue
        values[parameter.name] = _validated(parameter, received, ("body",), errors)
    if errors:
        raise RequestValidationError(errors)
    return values


def _path_values(match: re.Match[str], event: dict[str, Any]) -> dict[str, str]:
    """Each path parameter as the client meant it: API Gateway's ``pathParameters`` (percent-decoded), else the
    matched segment percent-decoded here. The segment as matched keeps its escapes, so ``user%3A42`` (what
    ``encodeURIComponent`` sends for ``user:42``) would be refused as an id. An escape that is not UTF-8 decodes
    to U+FFFD, which no parameter's pattern admits: a 422, like any invalid value."""
    given = event.get("pathParameters") or {}
    return {name: given.get(name, unquote(segment)) for name, segment in match.groupdict().items()}


def _validated(parameter: _Parameter, value: Any, location: tuple[str | int, ...], errors: list[dict[str, Any]]) -> Any:
    try:
        return parameter.adapter.validate_python(value, from_attributes=True)
    except ValidationError as invalid:
        errors.extend({**problem, "loc": (*location, *problem["loc"])} for problem in invalid.errors())
        return None


def _path(event: dict[str, Any]) -> str:
    """The path under the API's stage: a named stage's own prefix (``/prod``) is not part of the route, nor is one
    trailing slash (API Gateway routes ``/v1/campaigns/`` to ``/v1/campaigns``'s function, ``rawPath`` as sent)."""
    path: str = event["rawPath"]
    stage = event["requestContext"].get("stage", "$default")
    under = path if stage == "$default" else path[len(stage) + 1 :]
    return under[:-1] if len(under) > 1 and under.endswith("/") else under


def _json_body(event: dict[str, Any]) -> Any:
    """The body's JSON value (None for no body); bodies arrive screened (``gateway.screen_body``): UTF-8 text.

    Valid JSON that no request can mean is refused here, naming where it stands (422), rather than read one way:
    an integer longer than Python reads from text (``sys.get_int_max_str_digits``, 4,300 digits), which the parser
    would call not JSON (400); and a name given twice in one object, which the parser would read as its last
    value (a batch's first ``events``, or the first listener of an erasure, dropped unanswered), where another
    reader of the same bytes (a gateway, a log) may keep the first.
    """
    text = event.get("body")
    if not text:
        return None
    refused = False

    def integer(digits: str) -> object:
        nonlocal refused
        try:
            return int(digits)
        except ValueError:
            refused = True
            return _TOO_LONG

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal refused
        built = dict(pairs)
        if len(built) < len(pairs):
            refused = True
            seen: set[str] = set()
            for name, _ in pairs:
                if name in seen:
                    built[name] = _REPEATED
                seen.add(name)
        return built

    try:
        value = json.loads(text, parse_constant=_not_json, parse_int=integer, object_pairs_hook=unique)
    except ValueError:
        raise MalformedJsonError from None
    if refused:
        raise RequestValidationError(
            [{**_REFUSALS[marker], "loc": ("body", *at), "input": None} for marker, at in _refused(value)]
        )
    return value


_TOO_LONG: Final = object()
_REPEATED: Final = object()
_REFUSALS: Final = {
    _TOO_LONG: {"type": "int_too_long", "msg": f"Integer longer than {sys.get_int_max_str_digits()} digits"},
    _REPEATED: {"type": "duplicate_name", "msg": "Name given more than once in its object"},
}


def _refused(value: Any, at: tuple[str | int, ...] = ()) -> Iterator[tuple[object, tuple[str | int, ...]]]:
    """Where a refused value (``_REFUSALS``) stands in a parsed body (32 levels deep at most: screened). A too-long
    integer that a repeated name replaced is not found, but the repetition is."""
    if value is _TOO_LONG or value is _REPEATED:
        yield value, at
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from _refused(inner, (*at, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _refused(inner, (*at, index))


def _not_json(constant: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity``, which Python's parser reads but JSON (RFC 8259) does not have."""
    raise ValueError(f"{constant} is not JSON")


def _gateway_response(response: Response) -> dict[str, Any]:
    headers = dict(response.headers)
    if response.content_type is not None:
        headers = {"Content-Type": response.content_type, **headers}
    return {
        "statusCode": response.status_code,
        "body": response.body,
        "isBase64Encoded": False,
        "headers": headers,
        "cookies": [],
    }
