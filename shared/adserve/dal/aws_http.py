"""What the lean AWS clients share: signed HTTP/1.1 requests on kept-alive connections, botocore's retries and
errors, X-Ray subsegments. ``json_clients`` speaks the JSON protocol over it (DynamoDB, SQS, Secrets Manager),
``s3_rest`` S3's REST API.

Per call: a SigV4 signature with the day's signing key kept (``sigv4``), the request in one write on a kept-alive
connection (``TCP_NODELAY``), the answer's status and headers read without http.client's email parser. A failure
raises what boto3 raises: ``ClientError`` with the service's error code, or a ``BotoCoreError`` (connect and read
timeouts, refused or dropped connections), so callers handle it as any boto3 call's. Retries follow botocore's
standard mode: transient errors (5xx, throttling codes, dropped connections, timeouts) again after a jittered
exponential backoff, up to ``attempts`` in all, while the client's retry quota lasts.
"""

import os
import random
import select
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import quote, urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)

from adserve.dal.sigv4 import Credentials, SigningKeys, authorization

if TYPE_CHECKING:
    from aws_lambda_powertools.tracing.base import BaseProvider

MAX_POOL = 10
"""Kept-alive connections per client and host, as botocore's ``max_pool_connections``."""

MAX_BACKOFF_SECONDS = 20.0
_MAX_LINE = 65536
_MAX_HEADERS = 100
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
RETRIED_CODES = frozenset(
    {
        # botocore's standard mode: throttling and transient error codes.
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
    }
)
TIMEOUTS = (ConnectTimeoutError, ReadTimeoutError)

_T = TypeVar("_T")


@dataclass(frozen=True)
class Endpoint:
    url: str
    """``scheme://host[:port]``, as botocore resolved it."""
    signing_region: str
    signing_name: str


@dataclass(frozen=True)
class Proxy:
    """An ``http://`` proxy the calls go through (``HTTPS_PROXY``/``HTTP_PROXY``, as botocore resolves them): HTTPS
    endpoints through a CONNECT tunnel, plain HTTP ones in absolute form."""

    url: str
    """``http://host:port``, without credentials (they are in ``headers``): it is named in error messages."""
    headers: Mapping[str, str]
    """``Proxy-Authorization`` when the proxy's URL names a user."""


@dataclass(frozen=True)
class TimeBudget:
    connect_timeout: float
    read_timeout: float
    attempts: int


@dataclass(frozen=True)
class Resolved:
    """What a lean client of one service needs besides its time budget, as ``aws_clients`` resolves it from the
    environment or ``botocore_session`` from botocore's session."""

    credentials: Callable[[], Credentials]
    """Called for every request's signature: rotated or refreshed credentials take effect at once."""
    endpoint: Endpoint
    configured: bool
    """The endpoint is a configured URL (moto, MinIO, a VPC endpoint), not AWS's own: S3 is addressed path-style."""
    ca_bundle: str
    proxy: Proxy | None


@cache
def verifying_context(ca_bundle: str) -> ssl.SSLContext:
    """A TLS context that verifies certificates and host names against ``ca_bundle``: one per bundle per process
    (through ``shared_context``), for the lean clients' connections and botocore's (``botocore_session``)."""
    return ssl.create_default_context(cafile=ca_bundle)


_CONTEXT_LOCK = threading.Lock()


def shared_context(ca_bundle: str) -> ssl.SSLContext:
    """``verifying_context``, one caller at a time: a cold start's first connections open together, on the first
    request's threads, and without the lock each would load the bundle (~15-20 ms) before the first was cached."""
    with _CONTEXT_LOCK:
        return verifying_context(ca_bundle)


_CLIENTS: "weakref.WeakSet[AwsHttpClient]" = weakref.WeakSet()


def close_all() -> None:
    """Close every client's kept-alive connections (after a SnapStart restore they are dead); clients reconnect."""
    for client in list(_CLIENTS):
        client.close()


class RetryQuota:
    """botocore's standard-mode retry quota, per client: each retry spends tokens that success earns back, so
    when a service is failing the calls stop retrying instead of multiplying its load."""

    CAPACITY = 500
    RETRY_COST = 5
    TIMEOUT_COST = 10
    SUCCESS_REFUND = 1

    def __init__(self) -> None:
        self._tokens = self.CAPACITY
        self._lock = threading.Lock()

    def acquire(self, cost: int) -> bool:
        """Spend ``cost`` tokens for a retry; False (no retry) when fewer are left."""
        with self._lock:
            if self._tokens < cost:
                return False
            self._tokens -= cost
            return True

    def release(self, paid: int) -> None:
        """A call succeeded: what its retry cost comes back, or one token when it took none."""
        with self._lock:
            self._tokens = min(self.CAPACITY, self._tokens + (paid or self.SUCCESS_REFUND))


class UnreadableAnswerError(BotoCoreError):
    """A 2xx answer that is not what the service answers (a JSON object, an XML document): a proxy's or gateway's
    page. A BotoCoreError, so callers treat it as the service being unavailable (botocore's parser error is not
    one)."""

    fmt = "{operation} answered {status} with no {expected}: {start!r}"


class MalformedAnswerError(Exception):
    """The bytes read are no HTTP/1.1 answer (http.client's HTTPException cases, without importing it and its email
    package into every cold start): the connection is out of step and is dropped."""


class TransientError(Exception):
    """A failure worth another attempt, carrying what to raise when there is none left."""

    def __init__(self, error: BotoCoreError | ClientError) -> None:
        super().__init__(str(error))
        self.error = error


class Response(NamedTuple):
    status: int
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes
    will_close: bool


def read_response(sock: socket.socket, *, head_only: bool = False) -> Response:
    """One HTTP/1.1 answer, read as http.client reads it (a body by ``Content-Length``, chunked, or to the close),
    without its email-parser headers (a canned 20-item Query answer through a socket pair, the write included:
    8-12 us of CPU instead of 29 us). ``head_only``: the answer to a HEAD, whose headers describe a body it
    does not have. Malformed answers raise MalformedAnswerError."""
    with sock.makefile("rb") as stream:
        while True:
            version, _, rest = stream.readline(_MAX_LINE + 1).partition(b" ")
            code = rest[:3]
            if not version.startswith(b"HTTP/1.") or not code.isdigit():
                raise MalformedAnswerError(f"bad status line {version + b' ' + rest!r}")
            headers = _read_headers(stream)
            if not 100 <= int(code) < 200:  # skip informational answers (none expected: no Expect is sent)
                break
        status = int(code)
        will_close = version == b"HTTP/1.0" or headers.get("connection", "").lower() == "close"
        if head_only or status in (204, 304):  # no body, whatever the headers say
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = _read_chunks(stream)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            body = stream.read(length)
            if len(body) < length:
                raise MalformedAnswerError(f"{length - len(body)} bytes of the body missing")
        else:
            body, will_close = stream.read(), True
        # A buffered reader may hold bytes read past the answer: none can follow an answer to a request
        # that was not pipelined, so nothing is lost when it is dropped with the stream.
    return Response(status, headers, body, will_close)


def _read_headers(stream: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADERS + 1):
        line = stream.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise MalformedAnswerError("header line too long")
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    raise MalformedAnswerError(f"more than {_MAX_HEADERS} headers")


def _read_chunks(stream: Any) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = stream.readline(_MAX_LINE + 1)
        try:
            size = int(size_line.split(b";", 1)[0], 16)
        except ValueError:
            raise MalformedAnswerError(f"bad chunk size {size_line!r}") from None
        if size == 0:
            _read_headers(stream)  # trailers, and the last blank line
            return b"".join(chunks)
        chunk = stream.read(size)
        if len(chunk) < size or stream.read(2) != b"\r\n":
            raise MalformedAnswerError("a chunk cut short")
        chunks.append(chunk)


def _dropped(sock: socket.socket) -> bool:
    """An idle kept-alive connection with something to read has been closed by the server (or is out of step)."""
    poller = select.poll()  # not select(): a descriptor past 1024 is valid here
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _lambda_trace_header() -> str | None:
    """As botocore does in Lambda without X-Ray's patch: the call joins the invocation's trace."""
    trace = os.environ.get("_X_AMZN_TRACE_ID") if "AWS_LAMBDA_FUNCTION_NAME" in os.environ else None
    return quote(trace, safe="-=;:+&[]{}\"',") if trace else None


@dataclass(frozen=True)
class Request:
    """One request before it is signed: ``path`` encoded as sent (and as S3 signs it), ``query`` likewise."""

    method: str
    host: str
    """The Host header: the endpoint's, or an S3 bucket's own host under it."""
    path: str
    query: str
    headers: Mapping[str, str]
    """Lower-case names, all signed (``host``, ``x-amz-date`` and the token are added)."""
    body: bytes
    payload_hash: str | None = None
    """``body``'s SHA-256 in hex when the service wants it sent (S3's ``x-amz-content-sha256``)."""


@dataclass(frozen=True)
class ClientSettings:
    """Where a lean client sends its calls and how: what ``aws_clients`` resolves for each client it makes."""

    endpoint: Endpoint
    credentials: Callable[[], Credentials]
    """Called for every request's signature: rotated or refreshed credentials take effect at once."""
    budget: TimeBudget
    tls: Callable[[], ssl.SSLContext]
    """The verifying context for HTTPS endpoints, asked for when the first connection opens."""
    user_agent: str
    tracing: "BaseProvider | None" = None
    """The X-Ray provider while tracing is on (each call a subsegment), else None."""
    proxy: Proxy | None = None


class AwsHttpClient:
    """Signed requests to one endpoint's hosts, on a small pool of kept-alive connections per host.

    Thread-safe: each call takes a connection of its own from the pool (the local stack serves requests on
    threads; Lambda one at a time).
    """

    def __init__(self, service: str, settings: ClientSettings) -> None:
        """``service``: botocore's name for it."""
        endpoint, proxy, tls = settings.endpoint, settings.proxy, settings.tls
        parts = urlsplit(endpoint.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an HTTP endpoint: {endpoint.url!r}")
        proxy_parts = urlsplit(proxy.url) if proxy is not None else None
        if proxy_parts is not None and (proxy_parts.scheme != "http" or not proxy_parts.hostname):
            raise ValueError(f"only http:// proxies are supported, not {proxy_parts.scheme}:// ({endpoint.url})")
        self._service = service
        self._endpoint = endpoint
        self._credentials = settings.credentials
        self._budget = settings.budget
        self._scheme = parts.scheme
        self._tls = tls if parts.scheme == "https" else None
        self._port = parts.port or (443 if self._tls else 80)
        self._host = parts.netloc
        self._proxy = proxy
        self._proxy_address = (
            (proxy_parts.hostname, proxy_parts.port or 80) if proxy_parts and proxy_parts.hostname else None
        )
        # Plain HTTP through a proxy names the whole URL, with the proxy's headers on every request.
        self._forwarded = proxy is not None and self._tls is None
        self._proxy_head = (
            "".join(f"{name}: {value}\r\n" for name, value in proxy.headers.items())
            if self._forwarded and proxy
            else ""
        )
        self._user_agent = settings.user_agent
        self._tracing = settings.tracing
        self._keys = SigningKeys()
        self._quota = RetryQuota()
        self._idle: dict[str, list[socket.socket]] = {}
        self._lock = threading.Lock()
        _CLIENTS.add(self)

    @property
    def endpoint_url(self) -> str:
        return self._endpoint.url

    @property
    def service(self) -> str:
        """botocore's name for the service (``dynamodb``, ``sqs``, ``secretsmanager``, ``s3``)."""
        return self._service

    def close(self) -> None:
        with self._lock:
            pools, self._idle = self._idle, {}
        for idle in pools.values():
            for connection in idle:
                connection.close()

    def _call(
        self, operation: str, fields: Mapping[str, str], attempt: Callable[[int, str | None], dict[str, Any]]
    ) -> dict[str, Any]:
        """``attempt(n, trace header)``'s answer, traced (``_traced``) and tried again as botocore would
        (``_with_retries``): what every operation of every lean client goes through."""
        return self._traced(operation, fields, lambda header: self._with_retries(lambda n: attempt(n, header)))

    def _traced(
        self, operation: str, fields: Mapping[str, str], run: Callable[[str | None], dict[str, Any]]
    ) -> dict[str, Any]:
        """``run(trace header)``'s answer; with tracing on, as X-Ray's botocore patch records a call: a subsegment
        in the "aws" namespace, its id passed on in the header, ``fields`` among its annotations."""
        if self._tracing is None:
            return run(_lambda_trace_header())
        with self._tracing.in_subsegment(name=self._service, namespace="aws") as segment:
            traced: Any = segment  # an X-Ray subsegment: Powertools types it as its base class
            aws = {"operation": operation, "region": self._endpoint.signing_region, **fields}
            header = f"Root={traced.trace_id};Parent={traced.id};Sampled={int(bool(traced.sampled))}"
            metadata: Mapping[str, Any] = {}
            try:
                answer = run(header)
                metadata = answer["ResponseMetadata"]
            except ClientError as error:
                metadata = error.response["ResponseMetadata"]
                raise
            finally:  # a failure without an answer (timeout, refused) is recorded by the subsegment itself
                if metadata:
                    aws["request_id"] = metadata.get("RequestId", "")
                    traced.put_http_meta("status", metadata.get("HTTPStatusCode"))
                traced.set_aws(aws)
            return answer

    def _with_retries(self, attempt: Callable[[int], _T]) -> _T:
        """``attempt(n)``'s result, calling it again while it raises TransientError and the budget and the retry
        quota allow, after botocore's jittered backoff."""
        number, paid = 1, 0
        while True:
            try:
                result = attempt(number)
            except TransientError as failure:
                cost = RetryQuota.TIMEOUT_COST if isinstance(failure.error, TIMEOUTS) else RetryQuota.RETRY_COST
                if number >= self._budget.attempts or not self._quota.acquire(cost):
                    raise failure.error from None
                paid = cost
            else:
                self._quota.release(paid)
                return result
            time.sleep(random.random() * min(MAX_BACKOFF_SECONDS, 2.0 ** (number - 1)))
            number += 1

    def _exchange(self, request: Request, trace_header: str | None) -> Response:
        """Sign and send ``request``, read the answer; a connection that fails raises TransientError."""
        headers = self._signed_headers(request)
        if trace_header:
            headers["x-amzn-trace-id"] = trace_header
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + self._proxy_head
        target = request.path + (f"?{request.query}" if request.query else "")
        if self._forwarded:
            target = f"{self._scheme}://{request.host}{target}"
        length = f"content-length: {len(request.body)}\r\n" if request.body or request.method in ("POST", "PUT") else ""
        message = f"{request.method} {target} HTTP/1.1\r\n{head}{length}\r\n".encode() + request.body
        sock = self._connection(request.host)
        try:
            sock.sendall(message)  # one write: no second small segment for Nagle to hold back
            response = read_response(sock, head_only=request.method == "HEAD")
        except TimeoutError as error:
            sock.close()
            raise TransientError(ReadTimeoutError(endpoint_url=self._endpoint.url, error=error)) from error
        except (OSError, MalformedAnswerError) as error:
            sock.close()
            raise TransientError(ConnectionClosedError(endpoint_url=self._endpoint.url)) from error
        if response.will_close:
            sock.close()
        else:
            self._release(request.host, sock)
        return response

    @staticmethod
    def _failed(failure: ClientError, status: int) -> ClientError | TransientError:
        """What to raise for an error answer: wrapped for another attempt when it is transient."""
        if status in TRANSIENT_STATUS or failure.response["Error"]["Code"] in RETRIED_CODES:
            return TransientError(failure)
        return failure

    def _signed_headers(self, request: Request) -> dict[str, str]:
        credentials = self._credentials()
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        signed = {**request.headers, "host": request.host, "x-amz-date": amz_date}
        if request.payload_hash is not None:
            signed["x-amz-content-sha256"] = request.payload_hash
        if credentials.token:
            signed["x-amz-security-token"] = credentials.token
        headers = dict(signed)
        headers["authorization"] = authorization(
            self._keys,
            credentials,
            region=self._endpoint.signing_region,
            service=self._endpoint.signing_name,
            amz_date=amz_date,
            headers=signed,
            body=request.body,
            method=request.method,
            path=request.path,
            query=request.query,
            payload_hash=request.payload_hash,
        )
        headers["user-agent"] = self._user_agent
        return headers

    def _connection(self, host: str) -> socket.socket:
        """An idle connection to ``host`` the server has not closed, else a new one, within the connect budget."""
        while True:
            with self._lock:
                idle = self._idle.get(host)
                sock = idle.pop() if idle else None
            if sock is None:
                return self._connect(host)
            if not _dropped(sock):
                return sock
            sock.close()

    def _connect(self, host: str) -> socket.socket:
        budget = self._budget
        hostname = urlsplit(f"//{host}").hostname or host
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection(
                self._proxy_address or (hostname, self._port), timeout=budget.connect_timeout
            )
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self._tls is not None:  # the tunnel and the handshake within the connect budget too
                if self._proxy is not None:
                    self._tunnel(sock, self._proxy, hostname)
                sock = self._tls().wrap_socket(sock, server_hostname=hostname)
        except OSError as error:
            if sock is not None:
                sock.close()
            raise self._connect_failure(error) from error
        sock.settimeout(budget.read_timeout)
        return sock

    def _tunnel(self, sock: socket.socket, proxy: Proxy, hostname: str) -> None:
        """CONNECT through the proxy to the endpoint; OSError when the proxy refuses."""
        port = self._port
        extra = "".join(f"{name}: {value}\r\n" for name, value in proxy.headers.items())
        sock.sendall(f"CONNECT {hostname}:{port} HTTP/1.1\r\nhost: {hostname}:{port}\r\n{extra}\r\n".encode())
        with sock.makefile("rb", buffering=0) as answer:  # nothing read past the proxy's answer: TLS follows it
            status = answer.readline(_MAX_LINE).split(maxsplit=2)
            while answer.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                pass
        if len(status) < 2 or status[1] != b"200":
            raise ConnectionRefusedError(
                f"the proxy answered CONNECT with {b' '.join(status[1:]).decode(errors='replace')}"
            )

    def _connect_failure(self, error: OSError) -> Exception:
        """What botocore raises for each way a connection fails; transient ones wrapped for another attempt."""
        url = self._endpoint.url
        if isinstance(error, ssl.SSLError):  # not the endpoint it should be, or not vouched for: no retry helps
            return SSLError(endpoint_url=url, error=error)
        if isinstance(error, TimeoutError):
            return TransientError(ConnectTimeoutError(endpoint_url=url, error=error))
        if self._proxy is not None:
            return TransientError(ProxyConnectionError(proxy_url=self._proxy.url, error=error))
        return TransientError(EndpointConnectionError(endpoint_url=url, error=error))

    def _release(self, host: str, sock: socket.socket) -> None:
        with self._lock:
            idle = self._idle.setdefault(host, [])
            if len(idle) < MAX_POOL:
                idle.append(sock)
                return
        sock.close()
