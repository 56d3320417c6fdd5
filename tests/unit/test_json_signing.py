"""adserve's SigV4 signatures (adserve.dal.sigv4) are botocore's, byte for byte: the JSON protocol's POSTs and
S3's calls."""

import hashlib
from typing import Any

import pytest
from adserve.dal.sigv4 import Credentials, SigningKeys, authorization
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials


def botocores_authorization(
    credentials: Credentials, *, scope: tuple[str, str], amz_date: str, host: str, headers: dict[str, str], body: bytes
) -> str:
    """What ``SigV4Auth.add_auth`` computes, at a timestamp of the test's choosing."""
    region, service = scope
    request = AWSRequest(method="POST", url=f"https://{host}/", data=body, headers=headers)
    signer: Any = SigV4Auth(BotocoreCredentials(*credentials), service, region)  # its steps, at a fixed time
    request.context["timestamp"] = amz_date
    signer._modify_request_before_signing(request)
    signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    signer._inject_signature_to_request(request, signature)
    return str(request.headers["Authorization"])


@pytest.mark.parametrize("token", [None, "session-token/with+symbols="])
@pytest.mark.parametrize(
    ("scope", "host", "target", "body"),
    [
        (("us-east-1", "dynamodb"), "dynamodb.us-east-1.amazonaws.com", "DynamoDB_20120810.Query", b'{"TableName":1}'),
        (("eu-west-1", "sqs"), "sqs.eu-west-1.amazonaws.com", "AmazonSQS.SendMessage", '{"MessageBody":"é"}'.encode()),
        (("us-east-1", "dynamodb"), "127.0.0.1:4566", "DynamoDB_20120810.Query", b""),
    ],
)
def test_the_authorization_header_is_botocores(
    token: str | None, scope: tuple[str, str], host: str, target: str, body: bytes
) -> None:
    region, service = scope
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    amz_date = "20261205T013000Z"
    headers = {"content-type": "application/x-amz-json-1.0", "x-amz-target": target}
    signed = {**headers, "host": host, "x-amz-date": amz_date}
    if token:
        signed["x-amz-security-token"] = token
    ours = authorization(
        SigningKeys(), credentials, region=region, service=service, amz_date=amz_date, headers=signed, body=body
    )
    assert ours == botocores_authorization(
        credentials, scope=scope, amz_date=amz_date, host=host, headers=headers, body=body
    )


def test_the_signing_key_is_the_days() -> None:
    credentials = Credentials("AKIDEXAMPLE", "secret", None)
    keys = SigningKeys()
    headers = {"host": "sqs.us-east-1.amazonaws.com", "content-type": "application/x-amz-json-1.0"}
    for amz_date in ("20261205T235959Z", "20261206T000001Z", "20261205T120000Z"):
        signed = {**headers, "x-amz-date": amz_date}
        ours = authorization(
            keys, credentials, region="us-east-1", service="sqs", amz_date=amz_date, headers=signed, body=b"{}"
        )
        assert ours == botocores_authorization(
            credentials,
            scope=("us-east-1", "sqs"),
            amz_date=amz_date,
            host=headers["host"],
            headers={"content-type": headers["content-type"]},
            body=b"{}",
        )
    assert keys.key("secret", "20261205/us-east-1/sqs/aws4_request") != keys.key(
        "secret", "20261206/us-east-1/sqs/aws4_request"
    )


@pytest.mark.parametrize("token", [None, "session-token"])
@pytest.mark.parametrize(
    "case",
    [
        ("GET", "adserve-logs.s3.eu-west-1.amazonaws.com", "/models/active.json", "", {}, b""),
        ("HEAD", "127.0.0.1:4566", "/bucket/with%20space/%C3%BC%2B%2520%23%3F.gz", "", {}, b""),
        (
            "PUT",
            "adserve-logs.s3.eu-west-1.amazonaws.com",
            "/erasures/a~b",
            "",
            {"content-type": "application/gzip", "if-none-match": "*", "x-amz-meta-sha256": "ab12"},
            b"\x1f\x8b gzip bytes",
        ),
        (
            "GET",
            "adserve-logs.s3.eu-west-1.amazonaws.com",
            "/",
            "encoding-type=url&list-type=2&prefix=a%2Fb%20c",
            {},
            b"",
        ),
    ],
)
def test_s3_signatures_are_botocores(token: str | None, case: tuple[str, str, str, str, dict[str, str], bytes]) -> None:
    # S3 signs the path as sent (no second encoding, no normalisation) and the payload's hash header
    method, host, path, query, headers, body = case
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    amz_date = "20261205T013000Z"
    payload_hash = hashlib.sha256(body).hexdigest()
    signed = {**headers, "host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
    if token:
        signed["x-amz-security-token"] = token
    ours = authorization(
        SigningKeys(),
        credentials,
        region="eu-west-1",
        service="s3",
        amz_date=amz_date,
        headers=signed,
        body=body,
        method=method,
        path=path,
        query=query,
        payload_hash=payload_hash,
    )
    url = f"http://{host}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers={**headers, "X-Amz-Content-SHA256": payload_hash})
    signer: Any = S3SigV4Auth(BotocoreCredentials(*credentials), "s3", "eu-west-1")
    request.context["timestamp"] = amz_date
    signer._modify_request_before_signing(request)
    signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    signer._inject_signature_to_request(request, signature)
    assert ours == request.headers["Authorization"]
