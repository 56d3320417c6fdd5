"""A real HTTP proxy in front of moto that counts AWS API calls and can inject faults.

Tests point one service's endpoint (AWS_ENDPOINT_URL_<SERVICE>) at it: the code under test talks HTTP to
it exactly as it would to AWS, nothing in boto3 or in adserve is patched.
"""

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

THROTTLED_BODY = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}'
)
SQS_THROTTLED_BODY = b'{"__type":"com.amazonaws.sqs#RequestThrottled","message":"slow down"}'
"""What SQS's JSON protocol answers (x-amz-target: AmazonSQS.<Operation>) when it throttles."""
S3_THROTTLED_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)
"""What S3's REST API answers (with 503) when it throttles."""


def classify(method: str, raw_path: str, headers: dict[str, str]) -> tuple[str, str]:
    """(service, operation): JSON protocols name both in x-amz-target; the rest is taken for S3's REST API."""
    target = next((value for name, value in headers.items() if name.lower() == "x-amz-target"), None)
    if target:
        service, _, operation = target.rpartition(".")
        return service, operation
    if method == "POST" and "?" not in raw_path:
        return "", "unknown"
    return "s3", s3_operation(method, raw_path, headers)


def throttled_reply(service: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the service's own throttling error."""
    if service == "s3":
        return 503, {"content-type": "application/xml"}, S3_THROTTLED_BODY
    throttled = SQS_THROTTLED_BODY if service == "AmazonSQS" else THROTTLED_BODY
    return 400, {"content-type": "application/x-amz-json-1.0"}, throttled


def s3_operation(method: str, raw_path: str, headers: dict[str, str]) -> str:
    """The S3 REST operation a path-style request is (GetObject, PutObject, ListObjectsV2, ...), roughly."""
    target = urlparse(raw_path)
    bucket, _, key = target.path.lstrip("/").partition("/")
    query = parse_qs(target.query, keep_blank_values=True)
    if method == "POST":
        return "DeleteObjects" if "delete" in query else "PostObject"
    if not bucket:
        return "ListBuckets"
    if key:
        copy = method == "PUT" and any(name.lower() == "x-amz-copy-source" for name in headers)
        return (
            "CopyObject"
            if copy
            else {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, "PutObject")
        )
    if method == "GET":
        return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
    return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, method)


class AwsProxy:
    def __init__(self, upstream: str) -> None:
        target = urlparse(upstream)
        self._upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.calls: Counter[str] = Counter()
        self.throttle: set[str] = set()
        self.delay: dict[str, float] = {}
        self.throttle_after: dict[str, int] = {}
        """Operation -> how many calls pass before every further call is throttled (a fault mid-batch)."""
        self.unreachable = False
        """While set, every connection is closed unanswered, as if the service had gone away."""
        self.refused = 0
        """Requests closed unanswered while ``unreachable``."""
        self.drop_response: set[str] = set()
        """Operations forwarded upstream whose answer is then dropped: applied, yet the client sees a failure."""
        self.observers: dict[str, Callable[[], None]] = {}
        """Operation -> called in the proxy's thread as each call of it arrives, before it is forwarded."""
        self.traffic: list[tuple[str, bytes, bytes]] | None = None
        """When a list (``keep_traffic``): every forwarded call as (operation, request target and body, answer)."""
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "AwsProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.throttle.clear()
            self.delay.clear()
            self.throttle_after.clear()
            self.drop_response.clear()
            self.observers.clear()
            self.unreachable = False
            self.refused = 0

    def _over_quota(self, operation: str) -> bool:
        with self._lock:
            quota = self.throttle_after.get(operation)
            return quota is not None and self.calls[operation] > quota

    def json_requests(self, operation: str) -> list[dict[str, Any]]:
        """The JSON bodies of the *operation* calls kept so far (``keep_traffic``; DynamoDB's JSON protocol)."""
        if self.traffic is None:
            raise ValueError("the proxy keeps no traffic: start it with keep_traffic=True")
        return [json.loads(request.split(b"\n", 1)[1]) for name, request, _ in self.traffic if name == operation]

    def _record(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1
        observer = self.observers.get(operation)
        if observer is not None:
            observer()

    def _keep(self, operation: str, request: bytes, answer: bytes) -> None:
        if self.traffic is not None:
            with self._lock:
                self.traffic.append((operation, request, answer))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet: tests read the counters, not an access log."""

            def do_POST(self) -> None:
                """Every method: JSON protocols (DynamoDB, SQS, ...) POST; S3's REST API uses them all."""
                if proxy.unreachable:
                    with proxy._lock:
                        proxy.refused += 1
                    self.close_connection = True
                    return
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                service, operation = classify(self.command, self.path, dict(self.headers))
                proxy._record(operation)
                time.sleep(proxy.delay.get(operation, 0.0))
                if operation in proxy.throttle or proxy._over_quota(operation):
                    self._reply(*throttled_reply(service))
                    return
                upstream = http.client.HTTPConnection(*proxy._upstream, timeout=30)
                upstream.request(self.command, self.path, body, dict(self.headers))
                answer = upstream.getresponse()
                status, headers, payload = answer.status, dict(answer.getheaders()), answer.read()
                upstream.close()
                proxy._keep(operation, self.path.encode() + b"\n" + body, payload)
                if operation in proxy.drop_response:
                    self.close_connection = True  # applied upstream, but the client never hears of it
                    return
                self._reply(status, headers, payload)

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST  # noqa: N815 (http.server names them so)

            def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                            self.send_header(name, value)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up waiting, which is what a delay test wants

        return Handler


@contextmanager
def aws_proxy(upstream: str, *, keep_traffic: bool = False) -> Iterator[AwsProxy]:
    """A started proxy to *upstream*; with *keep_traffic* it records every request and answer (``traffic``)."""
    proxy = AwsProxy(upstream)
    if keep_traffic:
        proxy.traffic = []
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
