"""Bodies no route can use, sent to every route's handler the way API Gateway delivers them.

Bytes that are not UTF-8 arrive base64-encoded (`isBase64Encoded: true`); a body of a non-text Content-Type
too. Each must get a 4xx in the documented error shape, and a refused request must not reach AWS at all:
every AWS call of the API functions goes through a counting proxy. The hypothesis test then throws
arbitrary bytes, JSON and Content-Types at every route and asserts the same: never a 5xx, always the shape.
"""

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from adserve.outcomes.api import MAX_BATCH_BODY_BYTES, MAX_EVENTS_PER_BATCH
from adserve.outcomes.tokens import MAX_TOKEN_LENGTH
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.stack import LocalStack
from tests.support.aws_proxy import AwsProxy, aws_proxy

API_FUNCTIONS = ("DecideFunction", "CampaignsFunction", "TrackFunction", "ListenersFunction")
ROUTES = [
    ("POST", "/v1/decisions"),
    ("PUT", "/v1/campaigns/cmp-fuzz"),
    ("GET", "/v1/campaigns/cmp-fuzz"),
    ("DELETE", "/v1/campaigns/cmp-fuzz"),
    ("GET", "/v1/campaigns"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/events/impression"),
    ("POST", "/v1/events"),
    ("POST", "/v1/erasures"),
]
NOT_UTF8 = bytes([0x2A, 0xC7, 0x1E])
"""The body the fuzzer found: `*`, then a UTF-8 lead byte without its continuation."""


@pytest.fixture(scope="module")
def proxy(local_stack: LocalStack) -> Iterator[AwsProxy]:
    """Every AWS call of the API functions, counted; fresh execution environments see the proxy."""
    with aws_proxy(local_stack.endpoint_url) as counting, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", counting.url)
        for function in API_FUNCTIONS:
            local_stack.reset_function(function)
        yield counting
    for function in API_FUNCTIONS:
        local_stack.reset_function(function)


def send(local_stack: LocalStack, method: str, path: str, body: bytes, content_type: str | None) -> dict[str, Any]:
    """The route's handler invoked with the event API Gateway would build (base64 for non-text bodies)."""
    headers = {"content-type": content_type} if content_type is not None else {}
    function, event = local_stack.http_event(method, path, body=body, headers=headers)
    if content_type is None:
        del event["headers"]["content-type"]  # http_event defaults it; this request sent none
    response: dict[str, Any] = local_stack.invoke(function, event)
    return response


def error_of(response: dict[str, Any]) -> dict[str, Any]:
    """The error object, after checking the documented shape: `{"error": {"code", "message", "details"?}}`."""
    assert response["headers"]["Content-Type"] == "application/json"
    document = json.loads(response["body"])
    assert set(document) == {"error"}
    error: dict[str, Any] = document["error"]
    assert set(error) <= {"code", "message", "details"}
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    return error


def assert_refused(response: dict[str, Any], status: int, code: str, proxy: AwsProxy) -> None:
    assert response["statusCode"] == status, response
    assert error_of(response)["code"] == code
    assert sum(proxy.calls.values()) == 0, dict(proxy.calls)


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "refusal",
    [
        (NOT_UTF8, "application/json", 400, "malformed_json"),
        (NOT_UTF8, None, 400, "malformed_json"),
        (b'{"a": "caf\xe9"}', "application/json; charset=utf-8", 400, "malformed_json"),
        (b"[" * 60_000, "application/json", 400, "malformed_json"),
        (b'{"a":' * 10_000, "application/json", 400, "malformed_json"),
        (b"[" * 33 + b"]" * 33, "application/json", 400, "malformed_json"),
        (b"{}", "text/plain", 415, "unsupported_media_type"),
        (b"a=b", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"--x\r\n\r\n--x--\r\n", "multipart/form-data; boundary=x", 415, "unsupported_media_type"),
        (b"\x00\xff\x10", "application/octet-stream", 415, "unsupported_media_type"),
        (b"<a/>", "application/xml", 415, "unsupported_media_type"),
        (b"{}", "application/jsonp", 415, "unsupported_media_type"),
    ],
    ids=[
        "not-utf8",
        "not-utf8-no-content-type",
        "latin1",
        "deep-lists",
        "deep-objects",
        "33-levels",
        "text-plain",
        "form",
        "multipart",
        "octet-stream",
        "xml",
        "jsonp",
    ],
)
def test_a_body_no_route_can_use_is_refused_before_anything_runs(
    local_stack: LocalStack, proxy: AwsProxy, method: str, path: str, refusal: tuple[bytes, str | None, int, str]
) -> None:
    body, content_type, status, code = refusal
    proxy.reset()
    assert_refused(send(local_stack, method, path, body, content_type), status, code, proxy)


@pytest.mark.parametrize(
    "content_type", [None, "", "application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_is_accepted_with_or_without_a_json_content_type(
    local_stack: LocalStack, proxy: AwsProxy, content_type: str | None
) -> None:
    # A body 32 levels deep (the limit) of valid JSON reaches validation: 422 for its shape, not 400 or 415
    body = '{"events": [{"token": ' + "[" * 29 + "1" + "]" * 29 + "}]}"
    response = send(local_stack, "POST", "/v1/events", body.encode(), content_type)
    assert response["statusCode"] == 422, response
    assert error_of(response)["code"] == "invalid_request"


@pytest.mark.parametrize("content_type", ["text/plain", "Application/JSON", "application/x-www-form-urlencoded"])
def test_no_body_is_no_json_whatever_its_content_type_says(
    local_stack: LocalStack, proxy: AwsProxy, content_type: str
) -> None:
    # Powertools refuses a Content-Type it does not know even when there is no body at all, with a 500
    response = send(local_stack, "POST", "/v1/events", b"", content_type)
    assert response["statusCode"] == 422, response
    assert [detail["field"] for detail in error_of(response)["details"]] == ["body"]


def test_a_base64_body_that_is_utf8_json_is_read_as_json(local_stack: LocalStack, proxy: AwsProxy) -> None:
    # API Gateway base64-encodes a body whose Content-Type it does not take for text, e.g. no content type
    # at all from some clients; what matters is the bytes: UTF-8 JSON is JSON.
    function, event = local_stack.http_event("POST", "/v1/events", body="{}")
    event["headers"].pop("content-type")
    event["body"], event["isBase64Encoded"] = "e30=", True
    response = local_stack.invoke(function, event)
    assert response["statusCode"] == 422, response
    assert "events" in [detail["field"] for detail in error_of(response)["details"]]


def test_a_base64_body_of_non_ascii_text_is_a_400_not_a_500(local_stack: LocalStack, proxy: AwsProxy) -> None:
    function, event = local_stack.http_event("POST", "/v1/events", body="{}")
    event["body"], event["isBase64Encoded"] = "e30\u00e9", True
    response = local_stack.invoke(function, event)
    assert response["statusCode"] == 400, response
    assert error_of(response)["code"] == "malformed_json"


def test_a_base64_body_of_exactly_the_limit_is_not_too_large(local_stack: LocalStack, proxy: AwsProxy) -> None:
    # 64 KiB of JSON, sent base64-encoded with padding: its size is its bytes, as when it arrives as text
    document = '{"events": [], "x": "' + "a" * (65_536 - 23) + '"}'
    assert len(document) == 65_536
    function, event = local_stack.http_event("POST", "/v1/decisions", body="{}")
    event["body"], event["isBase64Encoded"] = base64.b64encode(document.encode()).decode(), True
    assert event["body"].endswith("=")
    response = local_stack.invoke(function, event)
    assert response["statusCode"] == 422, response  # read as JSON and refused for its shape, not a 413


def test_the_largest_valid_event_batch_is_read_and_one_byte_past_tracks_limit_is_a_413(
    local_stack: LocalStack, proxy: AwsProxy
) -> None:
    # 100 events at their longest: a 1,024-character token and a 64-character id each (these tokens are forged)
    events = [
        {"event_id": f"{i:064d}", "type": "click", "token": "k" * MAX_TOKEN_LENGTH, "occurred_at": "2026-11-25T13:00Z"}
        for i in range(MAX_EVENTS_PER_BATCH)
    ]
    body = json.dumps({"events": events}, indent=2)
    assert 64 * 1024 < len(body) <= MAX_BATCH_BODY_BYTES
    response = send(local_stack, "POST", "/v1/events", body.encode(), "application/json")
    assert response["statusCode"] == 202, response  # each event answered on its own (refused: its token is forged)
    assert {result["status"] for result in json.loads(response["body"])["results"]} == {"rejected"}
    too_large = body[:-1] + " " * (MAX_BATCH_BODY_BYTES - len(body) + 1) + "}"
    assert error_of(send(local_stack, "POST", "/v1/events", too_large.encode(), None))["code"] == "payload_too_large"


CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "text/plain",
            "text/html; charset=latin-1",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "multipart/form-data",
            "application/octet-stream",
            "application/xml",
            "application/vnd.api+json",
            "image/png",
            "",
            ";",
        ]
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.integers()
    | st.text(st.characters(exclude_categories=()), max_size=20),  # lone surrogates too, as \udXXX escapes
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=30,
)
BODIES = st.one_of(
    st.binary(max_size=300),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.integers(min_value=1, max_value=3000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.text(max_size=200).map(str.encode),
)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples on every run, so CI is reproducible; raise max_examples to dig deeper
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(route=st.sampled_from(ROUTES), body=BODIES, content_type=CONTENT_TYPES)
def test_no_body_or_content_type_gets_a_5xx(
    local_stack: LocalStack, proxy: AwsProxy, route: tuple[str, str], body: bytes, content_type: str | None
) -> None:
    method, path = route
    response = send(local_stack, method, path, body, content_type)
    assert response["statusCode"] < 500, response
    if response["statusCode"] >= 400:
        error_of(response)


@pytest.mark.parametrize(("method", "path"), [(method, path) for method, path in ROUTES if method in ("POST", "PUT")])
def test_a_name_given_twice_in_one_object_is_a_422_naming_it_not_read_as_its_last_value(
    local_stack: LocalStack, proxy: AwsProxy, method: str, path: str
) -> None:
    # Read as its last value, a batch's first "events" (or an erasure's first listener) was dropped unanswered
    body = b'{"events": [], "listener_id": "a", "events": [], "listener_id": "b"}'
    response = send(local_stack, method, path, body, "application/json")
    assert response["statusCode"] == 422, response
    assert error_of(response)["code"] == "invalid_request"
    assert [detail["field"] for detail in error_of(response)["details"]] == ["events", "listener_id"]


@pytest.mark.parametrize(("method", "path"), [(method, path) for method, path in ROUTES if method in ("POST", "PUT")])
def test_an_integer_longer_than_python_reads_from_text_is_a_422_not_malformed_json(
    local_stack: LocalStack, proxy: AwsProxy, method: str, path: str
) -> None:
    # Valid JSON (RFC 8259 sets no limit on a number's digits) that no field of any route takes, even where an
    # object whose fields all have defaults belongs
    long = "7" * 4301
    body = f'{{"listener_id": {long}, "targeting": {long}, "listener": {{"context": {long}}}}}'
    response = send(local_stack, method, path, body.encode(), "application/json")
    assert response["statusCode"] == 422, response
    assert error_of(response)["code"] == "invalid_request"
    fields = [detail["field"] for detail in error_of(response)["details"]]
    assert fields == ["listener_id", "targeting", "listener.context"]
