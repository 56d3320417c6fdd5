"""Calls to adserve's own HTTP API, SigV4-signed as its AWS_IAM routes require (operator commands).

Signed with the caller's AWS credentials (boto3's chain) for service ``execute-api``; without credentials the
request goes unsigned, which only a local stack without ``--auth`` accepts.
"""

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

DEFAULT_REGION = "us-east-1"


def post_json(url: str, document: Any, *, timeout: float = 10.0) -> tuple[int, Any]:
    """POST *document* as JSON; (status, parsed JSON body, or an error document saying the body was not JSON).
    Raises OSError when the API cannot be reached, ValueError for a URL that names no place to reach."""
    urllib.parse.urlsplit(url).port  # noqa: B018 - a port that is no number: ValueError, signed or not, before any I/O
    body = json.dumps(document).encode()
    request = AWSRequest(method="POST", url=url, data=body, headers={"content-type": "application/json"})
    session = boto3.session.Session()
    credentials = session.get_credentials()
    if credentials is not None:
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", session.region_name or DEFAULT_REGION).add_auth(
            request
        )
    prepared = urllib.request.Request(url, data=body, headers=dict(request.headers.items()), method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(prepared, timeout=timeout) as response:  # noqa: S310 - an operator-given API URL
            return response.status, _parsed(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _parsed(error.read())
    except http.client.InvalidURL as error:  # a host or path http.client refuses to send
        raise ValueError(str(error)) from None


def _parsed(text: bytes) -> Any:
    """The answer's JSON; a body that is not (a proxy's HTML page, bytes that are not UTF-8) as an error document
    saying so, with its start."""
    try:
        return json.loads(text or b"null")
    except ValueError:
        return {"error": {"code": "not_json", "message": text[:500].decode(errors="replace")}}
