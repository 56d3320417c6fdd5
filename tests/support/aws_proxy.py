"""A real HTTP proxy in front of moto that counts AWS API calls and can inject faults.

Tests point one service's endpoint (AWS_ENDPOINT_URL_<SERVICE>) at it: the code under test talks HTTP to
it exactly as it would to AWS, nothing in boto3 or in adserve is patched.
"""

import http.client
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

THROTTLED_BODY = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}'
)
SQS_THROTTLED_BODY = b'{"__type":"com.amazonaws.sqs#RequestThrottled","message":"slow down"}'
"""What SQS's JSON protocol answers (x-amz-target: AmazonSQS.<Operation>) when it throttles."""


class AwsProxy:
    def __init__(self, upstream: str) -> None:
        target = urlparse(upstream)
        self._upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.calls: Counter[str] = Counter()
        self.throttle: set[str] = set()
        self.delay: dict[str, float] = {}
        self.throttle_after: dict[str, int] = {}
        """Operation -> how many calls pass before every further call is throttled (a fault mid-batch)."""
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

    def _over_quota(self, operation: str) -> bool:
        with self._lock:
            quota = self.throttle_after.get(operation)
            return quota is not None and self.calls[operation] > quota

    def _record(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet: tests read the counters, not an access log."""

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                service, _, operation = (self.headers.get("x-amz-target") or "unknown").rpartition(".")
                proxy._record(operation)
                time.sleep(proxy.delay.get(operation, 0.0))
                if operation in proxy.throttle or proxy._over_quota(operation):
                    throttled = SQS_THROTTLED_BODY if service == "AmazonSQS" else THROTTLED_BODY
                    self._reply(400, {"content-type": "application/x-amz-json-1.0"}, throttled)
                    return
                upstream = http.client.HTTPConnection(*proxy._upstream, timeout=30)
                upstream.request("POST", self.path, body, dict(self.headers))
                answer = upstream.getresponse()
                self._reply(answer.status, dict(answer.getheaders()), answer.read())
                upstream.close()

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
def aws_proxy(upstream: str) -> Iterator[AwsProxy]:
    proxy = AwsProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.stop()
