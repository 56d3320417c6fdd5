"""The base of Decide's tracking URLs: API Gateway's host and stage, never a caller's header beyond http/https."""

from typing import Any

import pytest
from adserve.http_api.gateway import public_base_url

DOMAIN = "abc123.execute-api.us-east-1.amazonaws.com"


def event(proto: str | None, stage: str = "$default") -> dict[str, Any]:
    headers = {} if proto is None else {"x-forwarded-proto": proto}
    return {"headers": headers, "requestContext": {"domainName": DOMAIN, "stage": stage}}


@pytest.mark.parametrize(
    "forged",
    [
        "https://evil.example/collect?x=",
        "javascript:fetch('//evil.example/'+location)//",
        "http,https",
        "HTTP",
        "ftp",
        "",
    ],
)
def test_a_forwarded_proto_other_than_http_or_https_is_https(forged: str) -> None:
    assert public_base_url(event(forged)) == f"https://{DOMAIN}"


def test_the_scheme_is_https_by_default_http_when_forwarded_so_and_the_stage_is_kept() -> None:
    assert public_base_url(event(None)) == f"https://{DOMAIN}"
    assert public_base_url(event("http")) == f"http://{DOMAIN}"  # the local stack's gateway
    assert public_base_url(event("https", stage="prod")) == f"https://{DOMAIN}/prod"
