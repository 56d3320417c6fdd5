"""Build API Gateway HTTP API (payload format 2.0) events, as the gateway would hand them to a function.

Shared by the local HTTP gateway and the tests' in-process calls, so both exercise the handlers with the
same event shape.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["http_api_event", "is_text_content"]

_TEXT_TYPES = (
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "application/yaml",
)


def is_text_content(content_type: str | None) -> bool:
    """Whether API Gateway passes a body with this Content-Type as text rather than base64."""
    if not content_type:
        return True
    media_type = content_type.split(";")[0].strip().lower()
    return media_type.startswith("text/") or media_type in _TEXT_TYPES or media_type.endswith(("+json", "+xml"))


def http_api_event(
    *,
    method: str,
    raw_path: str,
    route_key: str,
    raw_query_string: str = "",
    headers: Mapping[str, str] | None = None,
    path_parameters: Mapping[str, str] | None = None,
    body: bytes | str | None = None,
    domain_name: str = "127.0.0.1:3000",
    source_ip: str = "127.0.0.1",
    stage: str = "$default",
) -> dict[str, Any]:
    """One v2.0 event. *headers* may use any case; a ``cookie`` header becomes the ``cookies`` list."""
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    cookie_header = lowered.pop("cookie", "")
    lowered.setdefault("host", domain_name)
    lowered.setdefault("x-forwarded-for", source_ip)
    lowered.setdefault("x-forwarded-proto", "http")
    lowered.setdefault("x-forwarded-port", domain_name.rpartition(":")[2] if ":" in domain_name else "80")
    now = datetime.now(tz=UTC)
    request_id = str(uuid.uuid4())
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query_string,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".", maxsplit=1)[0].split(":", maxsplit=1)[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": stage,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
    }
    cookies = [cookie.strip() for cookie in cookie_header.split(";") if cookie.strip()]
    if cookies:
        event["cookies"] = cookies
    query = _query_parameters(raw_query_string)
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        _attach_body(event, body, lowered.get("content-type"))
    return event


def _query_parameters(raw_query_string: str) -> dict[str, str]:
    """Repeated names are joined with commas, as in payload format 2.0."""
    values: dict[str, list[str]] = {}
    for name, value in parse_qsl(raw_query_string, keep_blank_values=True):
        values.setdefault(name, []).append(value)
    return {name: ",".join(items) for name, items in values.items()}


def _attach_body(event: dict[str, Any], body: bytes | str, content_type: str | None) -> None:
    raw = body.encode() if isinstance(body, str) else body
    if is_text_content(content_type):
        try:
            event["body"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return
    event["body"] = base64.b64encode(raw).decode("ascii")
    event["isBase64Encoded"] = True
