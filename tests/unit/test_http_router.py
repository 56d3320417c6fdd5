"""Our HTTP router: routes by method and path, validates parameters and body, answers JSON or the error shape."""

import json
from enum import StrEnum
from http import HTTPStatus
from typing import Annotated, Any

import pytest
from adserve.core.errors import NotFoundError
from adserve.http_api.errors import error_doc, install_error_handlers
from adserve.http_api.openapi import openapi_document
from adserve.http_api.router import Path, Query, Response, Router
from pydantic import BaseModel, Field


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Paint(BaseModel):
    colour: Colour
    litres: int = Field(gt=0)


def event(method: str, path: str, body: str | None = None, query: dict[str, str] | None = None) -> dict[str, Any]:
    built: dict[str, Any] = {"rawPath": path, "headers": {}, "requestContext": {"http": {"method": method}}}
    if body is not None:
        built["body"] = body
    if query is not None:
        built["queryStringParameters"] = query
    return built


@pytest.fixture
def app() -> Router:
    router = Router()
    install_error_handlers(router)

    @router.put("/v1/tins/<tin_id>", summary="Fill a tin", responses={422: error_doc("Invalid paint")})
    def fill(tin_id: Annotated[str, Path(description="The tin")], paint: Paint) -> Paint:
        if tin_id == "missing":
            raise NotFoundError("no such tin")
        return paint

    @router.get("/v1/tins", summary="Count tins", status_code=HTTPStatus.ACCEPTED)
    def count(
        colour: Annotated[Colour, Query(description="Which colour")] = Colour.RED,
        at_least: Annotated[int, Query(alias="min")] = 0,
    ) -> Paint:
        return Paint(colour=colour, litres=at_least + 1)

    @router.get("/v1/tins/<tin_id>/fired", summary="Fire a tin's beacon", ignore_unknown_query=True)
    def fired(tin_id: Annotated[str, Path()], t: Annotated[str, Query()]) -> Response:
        return Response(status_code=HTTPStatus.NO_CONTENT)

    @router.delete("/v1/tins/<tin_id>", summary="Empty a tin")
    def empty(tin_id: Annotated[str, Path()]) -> Response:
        if tin_id == "boom":
            raise RuntimeError("unexpected")
        return Response(status_code=HTTPStatus.NO_CONTENT, headers={"Cache-Control": "no-store"})

    return router


def answer(app: Router, *args: Any, **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
    response = app.resolve(event(*args, **kwargs), None)
    assert response["isBase64Encoded"] is False
    assert response["cookies"] == []
    body = json.loads(response["body"]) if response["body"] is not None else None
    return response["statusCode"], body, response["headers"]


def test_a_body_and_a_path_parameter_reach_the_handler_and_the_model_is_answered_as_compact_json(app: Router) -> None:
    response = app.resolve(event("PUT", "/v1/tins/t1", '{"colour": "blue", "litres": 3}'), None)
    assert response["statusCode"] == HTTPStatus.OK
    assert response["body"] == '{"colour":"blue","litres":3}'
    assert response["headers"] == {"Content-Type": "application/json"}


def test_query_parameters_by_alias_with_defaults_and_the_routes_own_status(app: Router) -> None:
    assert answer(app, "GET", "/v1/tins")[:2] == (HTTPStatus.ACCEPTED, {"colour": "red", "litres": 1})
    assert answer(app, "GET", "/v1/tins", query={"colour": "blue", "min": "4"})[:2] == (
        HTTPStatus.ACCEPTED,
        {"colour": "blue", "litres": 5},
    )


def test_every_invalid_parameter_is_reported_at_once_where_it_was_sent(app: Router) -> None:
    status, body, _ = answer(app, "GET", "/v1/tins", query={"colour": "green", "min": "x"})
    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert [detail["field"] for detail in body["error"]["details"]] == ["query.colour", "query.min"]
    assert body["error"]["code"] == "invalid_request"


def test_a_query_parameter_the_route_does_not_define_is_a_422_naming_it(app: Router) -> None:
    # A misspelt parameter read as absent would answer the default (every colour's count, not the one meant)
    status, body, _ = answer(app, "GET", "/v1/tins", query={"colour": "blue", "mn": "4", "x": "1"})
    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert [detail["field"] for detail in body["error"]["details"]] == ["query.mn", "query.x"]


def test_a_route_that_ignores_unknown_query_parameters_still_checks_its_own(app: Router) -> None:
    assert answer(app, "GET", "/v1/tins/t1/fired", query={"t": "token", "cb": "123"})[0] == HTTPStatus.NO_CONTENT
    status, body, _ = answer(app, "GET", "/v1/tins/t1/fired", query={"cb": "123"})
    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert [detail["field"] for detail in body["error"]["details"]] == ["query.t"]


@pytest.mark.parametrize(
    ("body", "status", "fields"),
    [
        (None, HTTPStatus.UNPROCESSABLE_ENTITY, ["body"]),
        ("null", HTTPStatus.UNPROCESSABLE_ENTITY, ["body"]),
        ("[]", HTTPStatus.UNPROCESSABLE_ENTITY, ["body"]),
        ('{"colour": "red", "litres": 0}', HTTPStatus.UNPROCESSABLE_ENTITY, ["litres"]),
        ("{", HTTPStatus.BAD_REQUEST, None),
        ('{"colour": "red", "litres": NaN}', HTTPStatus.BAD_REQUEST, None),  # Python reads these; JSON has none
        ('{"colour": "red", "litres": -Infinity}', HTTPStatus.BAD_REQUEST, None),
        # JSON, with an integer longer than Python converts from text: no field takes it
        ('{"colour": "red", "litres": ' + "7" * 4301 + "}", HTTPStatus.UNPROCESSABLE_ENTITY, ["litres"]),
        ('{"colour": ' + "7" * 5000 + ', "litres": 1}', HTTPStatus.UNPROCESSABLE_ENTITY, ["colour"]),
        ("7" * 4301, HTTPStatus.UNPROCESSABLE_ENTITY, ["body"]),  # where the whole object belongs
        # a later duplicate key replaced it: the repetition is refused, where it stands
        ('{"colour": "red", "litres": ' + "7" * 4301 + ', "litres": 1}', HTTPStatus.UNPROCESSABLE_ENTITY, ["litres"]),
        # a name given twice in one object, at any depth: read as its last value, the first would be dropped unseen
        ('{"colour": "red", "colour": "blue", "litres": 1}', HTTPStatus.UNPROCESSABLE_ENTITY, ["colour"]),
        (
            '{"colour": "red", "litres": 1, "lid": {"on": true, "on": false}}',
            HTTPStatus.UNPROCESSABLE_ENTITY,
            ["lid.on"],
        ),
        ('[{"a": 1}, {"a": 1, "a": 2}]', HTTPStatus.UNPROCESSABLE_ENTITY, ["1.a"]),
    ],
)
def test_a_body_that_is_missing_invalid_or_not_json_gets_its_4xx(
    app: Router, body: str | None, status: int, fields: list[str] | None
) -> None:
    answered, error, _ = answer(app, "PUT", "/v1/tins/t1", body)
    assert answered == status
    if fields is None:
        assert error == {"error": {"code": "malformed_json", "message": "request body is not valid JSON"}}
    else:
        assert [detail["field"] for detail in error["error"]["details"]] == fields


def test_one_trailing_slash_reaches_the_route_as_api_gateway_routes_it(app: Router) -> None:
    # API Gateway sends /v1/tins/ to /v1/tins's function, with rawPath as the client wrote it
    assert answer(app, "GET", "/v1/tins/")[0] == HTTPStatus.ACCEPTED
    assert answer(app, "PUT", "/v1/tins/t1/", '{"colour": "blue", "litres": 3}')[0] == HTTPStatus.OK
    assert answer(app, "GET", "/v1/tins//")[0] == HTTPStatus.NOT_FOUND  # one slash, not any number


def test_a_response_object_is_answered_as_given(app: Router) -> None:
    assert answer(app, "DELETE", "/v1/tins/t1") == (HTTPStatus.NO_CONTENT, None, {"Cache-Control": "no-store"})


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/tins/t1"), ("PUT", "/v1/tins"), ("GET", "/v1/tins/t1/x")])
def test_no_route_for_the_method_and_path_is_a_404(app: Router, method: str, path: str) -> None:
    assert answer(app, method, path)[:2] == (
        HTTPStatus.NOT_FOUND,
        {"error": {"code": "not_found", "message": "no such route"}},
    )


def test_errors_raised_by_a_handler_become_their_responses(app: Router) -> None:
    assert answer(app, "PUT", "/v1/tins/missing", '{"colour": "red", "litres": 1}')[:2] == (
        HTTPStatus.NOT_FOUND,
        {"error": {"code": "not_found", "message": "no such tin"}},
    )
    assert answer(app, "DELETE", "/v1/tins/boom")[:2] == (
        HTTPStatus.INTERNAL_SERVER_ERROR,
        {"error": {"code": "internal_error", "message": "internal error"}},
    )


def test_the_openapi_document_describes_parameters_bodies_and_answers(app: Router) -> None:
    document = openapi_document(app, "tins", "1")
    put = document["paths"]["/v1/tins/{tin_id}"]["put"]
    assert put["operationId"] == "fill_v1_tins__tin_id__put"
    assert put["parameters"] == [
        {
            "in": "path",
            "name": "tin_id",
            "required": True,
            "description": "The tin",
            "schema": {"type": "string", "title": "Tin Id", "description": "The tin"},
        }
    ]
    assert put["requestBody"] == {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Paint"}}},
        "required": True,
    }
    assert put["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Paint"}
    assert put["responses"]["422"]["description"] == "Invalid paint"
    get = document["paths"]["/v1/tins"]["get"]
    assert [(p["name"], p["required"]) for p in get["parameters"]] == [("colour", False), ("min", False)]
    assert set(get["responses"]) == {"202", "422"}
    delete = document["paths"]["/v1/tins/{tin_id}"]["delete"]
    assert delete["responses"]["200"] == {"description": "Successful Response"}
    assert {"Paint", "Colour", "ErrorResponse", "ErrorBody"} <= set(document["components"]["schemas"])


def test_a_named_stage_prefix_is_not_part_of_the_route(app: Router) -> None:
    staged = event("DELETE", "/prod/v1/tins/t1")
    staged["requestContext"]["stage"] = "prod"
    assert app.resolve(staged, None)["statusCode"] == HTTPStatus.NO_CONTENT


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/tins/a%2Fb!", HTTPStatus.NO_CONTENT),
        ('/v1/tins/a"b', HTTPStatus.NO_CONTENT),  # any segment, as API Gateway's {tin_id}: its type judges it
        ("/v1/tins/\u20ac", HTTPStatus.NO_CONTENT),
        ("/v1/tins/a/b", HTTPStatus.NOT_FOUND),  # one segment, never two
    ],
)
def test_a_path_parameter_takes_any_one_segment(app: Router, path: str, status: int) -> None:
    assert answer(app, "DELETE", path)[0] == status


@pytest.mark.parametrize(
    ("segment", "given", "received"),
    [
        ("user%3A42", None, "user:42"),
        ("user%3A42", {"tin_id": "user:42"}, "user:42"),
        ("caf%C3%A9", None, "café"),
        ("bad%FF", None, "bad\ufffd"),
    ],
)
def test_a_path_parameter_reaches_the_handler_percent_decoded(
    segment: str, given: dict[str, str] | None, received: str
) -> None:
    router = Router()
    seen = []

    @router.get("/v1/tins/<tin_id>", summary="Read a tin")
    def read(tin_id: Annotated[str, Path()]) -> Response:
        seen.append(tin_id)
        return Response(status_code=HTTPStatus.NO_CONTENT)

    sent = event("GET", f"/v1/tins/{segment}")
    if given is not None:
        sent["pathParameters"] = given
    assert router.resolve(sent, None)["statusCode"] == HTTPStatus.NO_CONTENT
    assert seen == [received]


def test_a_query_name_that_is_not_utf8_is_a_422_that_escapes_it(app: Router) -> None:
    # A lone surrogate in a parameter's name: echoed as it came, the error body could not be written at all
    response = app.resolve(event("GET", "/v1/tins", query={"\ud800": "x", "a\udcff": "1"}), None)
    assert response["statusCode"] == HTTPStatus.UNPROCESSABLE_ENTITY
    fields = [detail["field"] for detail in json.loads(response["body"])["error"]["details"]]
    assert sorted(fields) == sorted(["query.\\ud800", "query.a\\udcff"])


def test_an_error_raised_while_answering_an_error_gets_the_catch_alls_answer(app: Router) -> None:
    @app.exception_handler(NotFoundError)
    def broken(_: NotFoundError) -> Response:
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    response = app.resolve(event("PUT", "/v1/tins/missing", body='{"colour": "red", "litres": 1}'), None)
    assert response["statusCode"] == HTTPStatus.INTERNAL_SERVER_ERROR
    assert json.loads(response["body"])["error"]["code"] == "internal_error"
