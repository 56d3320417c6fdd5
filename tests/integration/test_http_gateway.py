"""The local HTTP gateway in process, in front of the real handlers: what it answers when no route matches.

API Gateway HTTP APIs answer a request no route has, whatever its method, with their own JSON 404
`{"message": "Not Found"}`; the local gateway must too, never Python's HTML 501 page.
"""

import http.client
import json
import logging
import time
from collections.abc import Iterator

import pytest

from devstack.http_gateway import HttpGateway
from devstack.stack import LocalStack


@pytest.fixture(scope="module")
def gateway(local_stack: LocalStack) -> Iterator[HttpGateway]:
    served = HttpGateway(local_stack, port=0)
    served.start()
    yield served
    served.stop()


def request(gateway: HttpGateway, method: str, path: str) -> tuple[int, str, bytes]:
    """Status, Content-Type and body of one request on its own connection."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.getheader("content-type") or "", response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("method", ["TRACE", "PATCH", "OPTIONS", "PROPFIND", "CONNECT", "BREW", "X-ANY"])
def test_a_method_no_route_has_is_api_gateways_json_404(gateway: HttpGateway, method: str) -> None:
    status, content_type, body = request(gateway, method, "/v1/campaigns")
    assert (status, content_type, json.loads(body)) == (404, "application/json", {"message": "Not Found"})


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/nothing-here"), ("POST", "/"), ("TRACE", "/nope")])
def test_an_unknown_path_is_the_same_404(gateway: HttpGateway, method: str, path: str) -> None:
    status, content_type, body = request(gateway, method, path)
    assert (status, content_type, json.loads(body)) == (404, "application/json", {"message": "Not Found"})


def test_a_head_without_a_route_is_a_404_without_a_body(gateway: HttpGateway) -> None:
    status, _, body = request(gateway, "HEAD", "/v1/campaigns")
    assert (status, body) == (404, b"")


def test_known_routes_still_reach_their_function(gateway: HttpGateway) -> None:
    status, content_type, body = request(gateway, "GET", "/v1/campaigns")
    assert (status, content_type) == (200, "application/json")
    assert "campaigns" in json.loads(body)


def test_the_access_log_names_the_route_never_the_path_or_query_values(
    gateway: HttpGateway, caplog: pytest.LogCaptureFixture
) -> None:
    # A path parameter is an id a caller chose, a query value a token: the log keeps the route key, as the
    # template's API access log does ($context.routeKey), and the query's names only.
    caplog.set_level(logging.INFO, logger="devstack.http_gateway")
    request(gateway, "GET", "/v1/campaigns/secret-path-value-1?t=secret-query-value")
    request(gateway, "GET", "/v1/no-such-route/secret-path-value-2")
    # The gateway logs a request once it has answered it, on its own thread, and an earlier test's request
    # may be logged late: wait for both of these requests' lines, not for any two lines.
    expected = ("GET /v1/campaigns/{campaign_id}?t=... 422", "GET (no route) 404")  # t: not its parameter
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        logged = gateway_lines(caplog)
        if all(any(line.startswith(start) for line in logged) for start in expected):
            break
        time.sleep(0.05)
    for start in expected:
        assert any(line.startswith(start) for line in logged), logged
    assert not [line for line in logged if "secret-" in line]


def gateway_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "devstack.http_gateway"]
