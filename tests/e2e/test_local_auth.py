"""`adserve-local run --auth`: SigV4 (AWS_IAM) where the template puts it, as API Gateway enforces it.

The stack runs in a clean environment, so it signs with the local dummy credentials; the tests sign with them
too, with botocore's own SigV4 signer, and send the exact bytes it signed.
"""

import json
from collections.abc import Iterator

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devstack.__main__ import SAMPLE_DECISION
from tests.support.stack_process import running_stack

STACK_CREDENTIALS = Credentials("testing", "testing", "testing")
"""The dummy credentials the local stack runs with on its embedded moto (devstack.aws_endpoint)."""
REGION = "us-east-1"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_stack(tmp_path_factory.mktemp("adserve-local-auth"), "--auth") as (_, url):
        yield url


def signed_request(method: str, url: str, body: bytes = b"") -> httpx.Request:
    """The request botocore signs, as httpx will send it (the Host header is the URL's, as botocore signed)."""
    request = AWSRequest(method=method, url=url, data=body, headers={"content-type": "application/json"})
    SigV4Auth(STACK_CREDENTIALS, "execute-api", REGION).add_auth(request)
    prepared = request.prepare()
    return httpx.Request(method, prepared.url, headers=dict(prepared.headers.items()), content=body)


def decision_body() -> bytes:
    return json.dumps(SAMPLE_DECISION).encode()


def test_an_unsigned_decision_is_forbidden(base_url: str) -> None:
    response = httpx.post(f"{base_url}/v1/decisions", content=decision_body(), timeout=10)
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}


def test_a_decision_signed_with_the_stack_credentials_is_served(base_url: str) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.send(signed_request("POST", f"{base_url}/v1/decisions", decision_body()))
    assert response.status_code == 200, response.text
    assert response.json()["ads"]


def test_a_signed_admin_read_with_a_query_string_is_served(base_url: str) -> None:
    # The routes refuse parameters they do not define, so the query is a real one: the second page, its two
    # parameters out of the canonical (sorted) order the signature is computed in
    with httpx.Client(timeout=10) as client:
        first = client.send(signed_request("GET", f"{base_url}/v1/campaigns?limit=2"))
        assert first.status_code == 200, first.text
        cursor = first.json()["next_cursor"]
        response = client.send(signed_request("GET", f"{base_url}/v1/campaigns?limit=2&cursor={cursor}"))
    assert response.status_code == 200, response.text
    assert len(response.json()["campaigns"]) == 2


def test_a_tampered_signed_request_is_forbidden(base_url: str) -> None:
    # Given a request signed for one body
    request = signed_request("POST", f"{base_url}/v1/decisions", decision_body())
    # When another body is sent under the same signature
    tampered_body = json.dumps({**SAMPLE_DECISION, "max_ads": 10}).encode()
    headers = {name: value for name, value in request.headers.items() if name.lower() != "content-length"}
    with httpx.Client(timeout=10) as client:
        response = client.post(str(request.url), headers=headers, content=tampered_body)
    # Then the gateway refuses it
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}


def test_a_signature_from_unknown_credentials_is_forbidden(base_url: str) -> None:
    request = AWSRequest(method="GET", url=f"{base_url}/v1/campaigns")
    SigV4Auth(Credentials("AKIDSOMEONEELSE", "their-secret"), "execute-api", REGION).add_auth(request)
    prepared = request.prepare()
    response = httpx.get(prepared.url, headers=dict(prepared.headers.items()), timeout=10)
    assert response.status_code == 403


def test_the_beacon_route_needs_no_signature(base_url: str) -> None:
    # The beacon is public: it reaches the handler, which answers on the token (422 missing, 403 forged).
    missing = httpx.get(f"{base_url}/v1/events/impression", timeout=10)
    forged = httpx.get(f"{base_url}/v1/events/impression", params={"t": "not-a-token"}, timeout=10)
    assert missing.status_code == 422
    assert forged.status_code == 403
    assert forged.json() != {"message": "Forbidden"}  # the handler's error document, not the gateway's


def test_a_signed_beacon_from_a_real_decision_is_accepted_unsigned(base_url: str) -> None:
    with httpx.Client(timeout=10) as client:
        decision = client.send(signed_request("POST", f"{base_url}/v1/decisions", decision_body())).json()
        impression_url = decision["ads"][0]["tracking"]["impression"]
        response = client.get(impression_url)
    assert response.status_code == 204
