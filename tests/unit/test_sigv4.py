"""The local stack's SigV4 verifier against requests signed by botocore, the signer AWS's own SDK uses."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from adserve.dal.sigv4 import canonical_query_string, canonical_uri
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devstack.sigv4 import Caller, SignatureError, SigV4Verifier

HOST = "127.0.0.1:3000"
REGION = "eu-north-1"
ACCOUNT = "123456789012"
KEYS = {"testing": "testing-secret", "other": "other-secret"}


@dataclass(frozen=True)
class Sent:
    """What the gateway sees of a signed request."""

    method: str
    raw_path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes


def signed(
    method: str,
    path_and_query: str,
    *,
    body: bytes = b"",
    params: dict[str, Any] | None = None,
    access_key: str = "testing",
    secret: str | None = None,
    region: str = REGION,
    service: str = "execute-api",
    token: str | None = "session-token",
) -> Sent:
    request = AWSRequest(method=method, url=f"http://{HOST}{path_and_query}", data=body, params=params or {})
    credentials = Credentials(access_key, secret or KEYS.get(access_key, "x"), token)
    SigV4Auth(credentials, service, region).add_auth(request)
    prepared = request.prepare()
    url = urlsplit(prepared.url)
    headers = {name.lower(): str(value) for name, value in prepared.headers.items()}
    headers["host"] = HOST
    sent_body = prepared.body or b""
    assert isinstance(sent_body, bytes)
    return Sent(method, url.path, url.query, headers, sent_body)


def verify(sent: Sent, **options: Any) -> Caller:
    verifier = SigV4Verifier(KEYS, region=REGION, account_id=ACCOUNT, **options)
    return verifier.verify(sent.method, sent.raw_path, sent.raw_query, sent.headers, sent.body)


def test_a_signed_post_with_a_body_is_accepted_and_names_its_caller() -> None:
    caller = verify(signed("POST", "/v1/decisions", body=b'{"placement":"audio_midroll"}'))
    assert caller.access_key == "testing"
    iam = caller.authorizer_context()["iam"]
    assert iam["accessKey"] == "testing"
    assert iam["accountId"] == ACCOUNT
    assert iam["userArn"].startswith(f"arn:aws:iam::{ACCOUNT}:user/")
    assert set(iam) == {"accessKey", "accountId", "callerId", "cognitoIdentity", "principalOrgId", "userArn", "userId"}


@pytest.mark.parametrize(
    "path_and_query",
    [
        "/v1/campaigns?b=2&a=3&a=1&a=2",  # repeated names sort by value
        "/v1/campaigns?q=%2F%20slash%26amp&empty=&x=~",  # encoded reserved characters, an empty value
        "/v1/campaigns?flag",  # a name without '='
        "/v1/campaigns/a%20b",  # an encoded path segment is encoded again in the canonical URI
        "/v1/campaigns/caf%C3%A9/",  # UTF-8 and a trailing slash
        "/v1/campaigns/x%2Fy",  # an encoded slash stays one segment
    ],
)
def test_paths_and_query_strings_are_canonicalised_as_botocore_signs_them(path_and_query: str) -> None:
    assert verify(signed("GET", path_and_query)).access_key == "testing"


def test_query_parameters_botocore_encodes_itself_are_accepted() -> None:
    # botocore sends spaces as '+' here but signs them as %20.
    sent = signed("GET", "/v1/campaigns", params={"name": "winter sale", "tag": "a/b", "n": "1"})
    assert "+" in sent.raw_query
    assert verify(sent).access_key == "testing"


def test_another_known_key_is_accepted_and_a_request_without_a_session_token_too() -> None:
    assert verify(signed("GET", "/v1/campaigns", access_key="other", token=None)).access_key == "other"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda s: Sent(s.method, s.raw_path, s.raw_query, s.headers, b'{"max_ads":10}'), "signature"),
        (lambda s: Sent("PUT", s.raw_path, s.raw_query, s.headers, s.body), "signature"),
        (lambda s: Sent(s.method, "/v1/campaigns/other", s.raw_query, s.headers, s.body), "signature"),
        (lambda s: Sent(s.method, s.raw_path, "max_ads=9", s.headers, s.body), "signature"),
        (lambda s: Sent(s.method, s.raw_path, s.raw_query, {**s.headers, "host": "evil:1"}, s.body), "signature"),
        (lambda s: Sent(s.method, s.raw_path, s.raw_query, _without(s.headers, "authorization"), s.body), "no Auth"),
        (lambda s: Sent(s.method, s.raw_path, s.raw_query, _without(s.headers, "x-amz-date"), s.body), "X-Amz-Date"),
        (
            lambda s: Sent(s.method, s.raw_path, s.raw_query, _without(s.headers, "x-amz-security-token"), s.body),
            "present",
        ),
        (lambda s: Sent(s.method, s.raw_path, "X-Amz-Signature=00", s.headers, s.body), "presigned"),
    ],
)
def test_a_tampered_request_is_refused(tamper: Any, reason: str) -> None:
    sent = signed("POST", "/v1/decisions", body=b'{"max_ads":1}')
    with pytest.raises(SignatureError, match=reason):
        verify(tamper(sent))


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"access_key": "stranger"}, "unknown access key"),
        ({"secret": "wrong-secret"}, "signature"),
        ({"region": "us-east-1"}, "region"),
        ({"service": "s3"}, "service"),
    ],
)
def test_wrong_credentials_or_scope_are_refused(options: dict[str, Any], reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify(signed("GET", "/v1/campaigns", **options))


@pytest.mark.parametrize("offset", [timedelta(minutes=6), -timedelta(minutes=6)])
def test_a_request_more_than_five_minutes_off_is_refused(offset: timedelta) -> None:
    sent = signed("GET", "/v1/campaigns")
    with pytest.raises(SignatureError, match="5 minutes"):
        verify(sent, clock=lambda: datetime.now(UTC) + offset)


def test_a_request_four_minutes_off_is_still_accepted() -> None:
    assert verify(signed("GET", "/v1/campaigns"), clock=lambda: datetime.now(UTC) + timedelta(minutes=4))


def test_a_malformed_authorization_header_is_refused() -> None:
    sent = signed("GET", "/v1/campaigns")
    headers = {**sent.headers, "authorization": "Bearer abc"}
    with pytest.raises(SignatureError, match="AWS4-HMAC-SHA256"):
        verify(Sent(sent.method, sent.raw_path, sent.raw_query, headers, sent.body))


@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [("/", "/"), ("/a/./b/../c", "/a/c"), ("/a%20b", "/a%2520b"), ("/a//b/", "/a/b/"), ("/~user", "/~user")],
)
def test_canonical_uri(raw_path: str, expected: str) -> None:
    assert canonical_uri(raw_path) == expected


def test_canonical_query_string_decodes_then_encodes_and_sorts() -> None:
    assert canonical_query_string("b=2&a=%7e&a=1&c=x+y&d") == "a=1&a=~&b=2&c=x%20y&d="


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {key: value for key, value in headers.items() if key != name}
