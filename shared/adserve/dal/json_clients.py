"""Lean clients for the AWS JSON-protocol services the functions call: DynamoDB (Decide's caps Query of every
decision and its catalog's Scans, Record's transaction of every impression, the stores), SQS's sends (Decide's
record, Track's outcomes) and Secrets Manager's reads (the signing and pseudonym keys). S3's REST API stays
botocore's (``aws_clients``).

botocore spends 500-650 us of CPU on each such call (figure 12: validating, serialising through the service
model, resolving the endpoint from its rules, signing with a key derived anew, urllib3, parsing through the
model), several times the rest of a decision. These clients do what the calls need, per call: the parameters as
JSON, a SigV4 signature with the day's key kept (``sigv4``), one POST on a kept-alive connection, the JSON
answer. What does not change per call comes from botocore's session when a client is made (``aws_clients``):
the credentials (refreshed as botocore refreshes them), the region, the endpoint (``AWS_ENDPOINT_URL*``, the
shared config, the partition's hostname, FIPS and dual-stack), the CA bundle's TLS context, the proxy.

A failure raises what boto3 raises: ``ClientError`` with the service's error code, or a ``BotoCoreError`` (connect
and read timeouts, refused or dropped connections, a CRC32 mismatch), so callers handle it as any boto3 call's.
Retries follow botocore's standard mode: transient errors (5xx, throttling codes, dropped connections, timeouts)
again after a jittered exponential backoff, up to ``attempts`` in all, while the client's retry quota lasts.
Parameters must be JSON as they are (no ``bytes`` blobs; no calls here send any), and nothing is validated against
the service model: the stores build them, typed against boto3's stubs.
"""

import base64
import http.client
import json
import os
import random
import select
import socket
import ssl
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Unpack, cast
from urllib.parse import quote, urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ChecksumError,
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
    from mypy_boto3_dynamodb.type_defs import (
        BatchGetItemInputTypeDef,
        BatchGetItemOutputTypeDef,
        BatchWriteItemInputTypeDef,
        BatchWriteItemOutputTypeDef,
        DeleteItemInputTypeDef,
        DeleteItemOutputTypeDef,
        GetItemInputTypeDef,
        GetItemOutputTypeDef,
        PutItemInputTypeDef,
        PutItemOutputTypeDef,
        QueryInputTypeDef,
        QueryOutputTypeDef,
        ScanInputTypeDef,
        ScanOutputTypeDef,
        TransactWriteItemsInputTypeDef,
        TransactWriteItemsOutputTypeDef,
        UpdateItemInputTypeDef,
        UpdateItemOutputTypeDef,
    )
    from mypy_boto3_secretsmanager.type_defs import GetSecretValueRequestTypeDef, GetSecretValueResponseTypeDef
    from mypy_boto3_sqs.type_defs import (
        SendMessageBatchRequestTypeDef,
        SendMessageBatchResultTypeDef,
        SendMessageRequestTypeDef,
        SendMessageResultTypeDef,
    )

MAX_POOL = 10
"""Kept-alive connections per client, as botocore's ``max_pool_connections``."""

MAX_BACKOFF_SECONDS = 20.0
_MAX_LINE = 65536
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


@dataclass(frozen=True)
class JsonProtocol:
    """What differs between the JSON-protocol services these clients call."""

    service: str
    """botocore's name for it: its endpoint, shared-config and ``AWS_ENDPOINT_URL_*`` key."""
    target_prefix: str
    """``X-Amz-Target`` is this, a dot, and the operation."""
    content_type: str
    query_compatible: bool
    """Asks for error codes as the service's older query protocol named them (SQS), as botocore does."""


DYNAMODB = JsonProtocol("dynamodb", "DynamoDB_20120810", "application/x-amz-json-1.0", query_compatible=False)
SQS = JsonProtocol("sqs", "AmazonSQS", "application/x-amz-json-1.0", query_compatible=True)
SECRETS_MANAGER = JsonProtocol("secretsmanager", "secretsmanager", "application/x-amz-json-1.1", query_compatible=False)


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


_CLIENTS: "weakref.WeakSet[JsonClient]" = weakref.WeakSet()


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


TIMEOUTS = (ConnectTimeoutError, ReadTimeoutError)


class NotJsonError(BotoCoreError):
    """A 2xx answer that is not a JSON object: a proxy's or gateway's page, not the service's answer. A
    BotoCoreError, so callers treat it as the service being unavailable (botocore's parser error is not one)."""

    fmt = "{operation} answered {status} with no JSON object: {start!r}"


class _TransientError(Exception):
    """A failure worth another attempt, carrying what to raise when there is none left."""

    def __init__(self, error: BotoCoreError | ClientError) -> None:
        super().__init__(str(error))
        self.error = error


class _Response(NamedTuple):
    status: int
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes
    will_close: bool


_MAX_HEADERS = 100


def _read_response(sock: socket.socket) -> _Response:
    """One HTTP/1.1 answer, read as http.client reads it (a body by ``Content-Length``, chunked, or to the close),
    without its email-parser headers (a canned 20-item Query answer through a socket pair, the write included:
    8-12 us of CPU instead of 29 us). Malformed answers raise HTTPException."""
    with sock.makefile("rb") as stream:
        while True:
            version, _, rest = stream.readline(_MAX_LINE + 1).partition(b" ")
            code = rest[:3]
            if not version.startswith(b"HTTP/1.") or not code.isdigit():
                raise http.client.BadStatusLine(repr(version + b" " + rest))
            headers = _read_headers(stream)
            if not 100 <= int(code) < 200:  # skip informational answers (none expected: no Expect is sent)
                break
        status = int(code)
        will_close = version == b"HTTP/1.0" or headers.get("connection", "").lower() == "close"
        if status in (204, 304):  # no body, whatever the headers say
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = _read_chunks(stream)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            body = stream.read(length)
            if len(body) < length:
                raise http.client.IncompleteRead(body, length - len(body))
        else:
            body, will_close = stream.read(), True
        # A buffered reader may hold bytes read past the answer: none can follow an answer to a request
        # that was not pipelined, so nothing is lost when it is dropped with the stream.
    return _Response(status, headers, body, will_close)


def _read_headers(stream: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADERS + 1):
        line = stream.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    raise http.client.HTTPException(f"more than {_MAX_HEADERS} headers")


def _read_chunks(stream: Any) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = stream.readline(_MAX_LINE + 1)
        try:
            size = int(size_line.split(b";", 1)[0], 16)
        except ValueError:
            raise http.client.HTTPException(f"bad chunk size {size_line!r}") from None
        if size == 0:
            _read_headers(stream)  # trailers, and the last blank line
            return b"".join(chunks)
        chunk = stream.read(size)
        if len(chunk) < size or stream.read(2) != b"\r\n":
            raise http.client.IncompleteRead(chunk)
        chunks.append(chunk)


def _dropped(sock: socket.socket) -> bool:
    """An idle kept-alive connection with something to read has been closed by the server (or is out of step)."""
    poller = select.poll()  # not select(): a descriptor past 1024 is valid here
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


_ERROR_ENVELOPE = frozenset({"__type", "message", "Message", "Error", "ResponseMetadata"})

_TRACED_PARAMETERS = {"TableName": "table_name", "QueueUrl": "queue_url"}
"""The parameters X-Ray's botocore patch records for these operations."""


def _lambda_trace_header() -> str | None:
    """As botocore does in Lambda without X-Ray's patch: the call joins the invocation's trace."""
    trace = os.environ.get("_X_AMZN_TRACE_ID") if "AWS_LAMBDA_FUNCTION_NAME" in os.environ else None
    return quote(trace, safe="-=;:+&[]{}\"',") if trace else None


class JsonClient:
    """POSTs of one JSON-protocol service to one endpoint, signed, on a small pool of kept-alive connections.

    Thread-safe: each call takes a connection of its own from the pool (the local stack serves requests on
    threads; Lambda one at a time).
    """

    def __init__(
        self,
        protocol: JsonProtocol,
        endpoint: Endpoint,
        credentials: Callable[[], Credentials],
        budget: TimeBudget,
        *,
        tls: Callable[[], ssl.SSLContext],
        user_agent: str,
        tracing: "BaseProvider | None" = None,
        proxy: Proxy | None = None,
    ) -> None:
        """``tracing``: the X-Ray provider while tracing is on (each call a subsegment), else None."""
        parts = urlsplit(endpoint.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an HTTP endpoint: {endpoint.url!r}")
        proxy_parts = urlsplit(proxy.url) if proxy is not None else None
        if proxy_parts is not None and (proxy_parts.scheme != "http" or not proxy_parts.hostname):
            raise ValueError(f"only http:// proxies are supported, not {proxy_parts.scheme}:// ({endpoint.url})")
        self._protocol = protocol
        self._endpoint = endpoint
        self._credentials = credentials
        self._budget = budget
        self._tls = tls if parts.scheme == "https" else None
        self._address = (parts.hostname, parts.port or (443 if self._tls else 80))
        self._host_header = parts.netloc
        self._proxy = proxy
        self._proxy_address = (
            (proxy_parts.hostname, proxy_parts.port or 80) if proxy_parts and proxy_parts.hostname else None
        )
        # Plain HTTP through a proxy names the whole URL, with the proxy's headers on every request.
        forwarded = proxy is not None and self._tls is None
        self._request_target = f"{endpoint.url}/" if forwarded else "/"
        self._proxy_head = (
            "".join(f"{name}: {value}\r\n" for name, value in proxy.headers.items()) if forwarded and proxy else ""
        )
        self._user_agent = user_agent
        self._tracing = tracing
        self._keys = SigningKeys()
        self._quota = RetryQuota()
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()
        _CLIENTS.add(self)

    @property
    def endpoint_url(self) -> str:
        return self._endpoint.url

    @property
    def service(self) -> str:
        """botocore's name for the service (``dynamodb``, ``sqs``, ``secretsmanager``)."""
        return self._protocol.service

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """One operation's JSON answer, with botocore's ``ResponseMetadata`` (request id, status, retries)."""
        if self._tracing is None:
            return self._call(operation, params, _lambda_trace_header())
        # What X-Ray's botocore patch records: a subsegment in the "aws" namespace, its id passed on in the header.
        with self._tracing.in_subsegment(name=self._protocol.service, namespace="aws") as segment:
            traced: Any = segment  # an X-Ray subsegment: Powertools types it as its base class
            aws = {"operation": operation, "region": self._endpoint.signing_region}
            aws.update({key: str(params[name]) for name, key in _TRACED_PARAMETERS.items() if name in params})
            header = f"Root={traced.trace_id};Parent={traced.id};Sampled={int(bool(traced.sampled))}"
            metadata: Mapping[str, Any] = {}
            try:
                answer = self._call(operation, params, header)
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

    def _call(self, operation: str, params: Mapping[str, Any], trace_header: str | None) -> dict[str, Any]:
        body = json.dumps(params, separators=(",", ":")).encode()
        target = f"{self._protocol.target_prefix}.{operation}"
        attempt, paid = 1, 0
        while True:
            try:
                answer = self._attempt(operation, target, body, attempt, trace_header)
            except _TransientError as failure:
                cost = RetryQuota.TIMEOUT_COST if isinstance(failure.error, TIMEOUTS) else RetryQuota.RETRY_COST
                if attempt >= self._budget.attempts or not self._quota.acquire(cost):
                    raise failure.error from None
                paid = cost
            else:
                self._quota.release(paid)
                return answer
            time.sleep(random.random() * min(MAX_BACKOFF_SECONDS, 2.0 ** (attempt - 1)))
            attempt += 1

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _attempt(
        self, operation: str, target: str, body: bytes, attempt: int, trace_header: str | None
    ) -> dict[str, Any]:
        headers = self._signed_headers(target, body)
        if trace_header:
            headers["x-amzn-trace-id"] = trace_header
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + self._proxy_head
        request = f"POST {self._request_target} HTTP/1.1\r\n{head}content-length: {len(body)}\r\n\r\n".encode() + body
        sock = self._connection()
        url = self._endpoint.url
        try:
            sock.sendall(request)  # one write: no second small segment for Nagle to hold back
            response = _read_response(sock)
        except TimeoutError as error:
            sock.close()
            raise _TransientError(ReadTimeoutError(endpoint_url=url, error=error)) from error
        except (OSError, http.client.HTTPException) as error:
            sock.close()
            raise _TransientError(ConnectionClosedError(endpoint_url=url)) from error
        if response.will_close:
            sock.close()
        else:
            self._release(sock)
        data = response.body
        expected_crc = response.headers.get("x-amz-crc32")
        if expected_crc is not None and str(zlib.crc32(data)) != expected_crc.strip():
            raise _TransientError(
                ChecksumError(
                    checksum_type="crc32", expected_checksum=expected_crc, actual_checksum=str(zlib.crc32(data))
                )
            )
        metadata: Any = {
            "RequestId": response.headers.get("x-amzn-requestid", ""),
            "HTTPStatusCode": response.status,
            "RetryAttempts": attempt - 1,
        }
        if response.status < 300:
            try:
                answer = json.loads(data) if data else {}
            except ValueError:
                answer = None
            if not isinstance(answer, dict):  # botocore's parser fails the same way: not the service's answer
                raise NotJsonError(operation=operation, status=response.status, start=data[:200])
            answer["ResponseMetadata"] = metadata
            return answer
        failure = self._client_error(operation, response, metadata)
        if response.status in TRANSIENT_STATUS or failure.response["Error"]["Code"] in RETRIED_CODES:
            raise _TransientError(failure)
        raise failure

    def _signed_headers(self, target: str, body: bytes) -> dict[str, str]:
        credentials = self._credentials()
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        signed = {
            "content-type": self._protocol.content_type,
            "host": self._host_header,
            "x-amz-date": amz_date,
            "x-amz-target": target,
        }
        if credentials.token:
            signed["x-amz-security-token"] = credentials.token
        if self._protocol.query_compatible:
            signed["x-amzn-query-mode"] = "true"
        headers = dict(signed)
        headers["authorization"] = authorization(
            self._keys,
            credentials,
            region=self._endpoint.signing_region,
            service=self._endpoint.signing_name,
            amz_date=amz_date,
            headers=signed,
            body=body,
        )
        headers["user-agent"] = self._user_agent
        return headers

    def _connection(self) -> socket.socket:
        """An idle connection the server has not closed, else a new one, connected within the connect budget."""
        while True:
            with self._lock:
                sock = self._idle.pop() if self._idle else None
            if sock is None:
                return self._connect()
            if not _dropped(sock):
                return sock
            sock.close()

    def _connect(self) -> socket.socket:
        budget = self._budget
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection(self._proxy_address or self._address, timeout=budget.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self._tls is not None:  # the tunnel and the handshake within the connect budget too
                if self._proxy is not None:
                    self._tunnel(sock, self._proxy)
                sock = self._tls().wrap_socket(sock, server_hostname=self._address[0])
        except OSError as error:
            if sock is not None:
                sock.close()
            raise self._connect_failure(error) from error
        sock.settimeout(budget.read_timeout)
        return sock

    def _tunnel(self, sock: socket.socket, proxy: Proxy) -> None:
        """CONNECT through the proxy to the endpoint; OSError when the proxy refuses."""
        host, port = self._address
        extra = "".join(f"{name}: {value}\r\n" for name, value in proxy.headers.items())
        sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nhost: {host}:{port}\r\n{extra}\r\n".encode())
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
            return _TransientError(ConnectTimeoutError(endpoint_url=url, error=error))
        if self._proxy is not None:
            return _TransientError(ProxyConnectionError(proxy_url=self._proxy.url, error=error))
        return _TransientError(EndpointConnectionError(endpoint_url=url, error=error))

    def _release(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._idle) < MAX_POOL:
                self._idle.append(sock)
                return
        sock.close()

    def _client_error(self, operation: str, response: "_Response", metadata: Any) -> ClientError:
        """botocore's parse of a JSON-protocol error: the code is ``__type`` after any ``#`` (else the status), or
        the query protocol's code where ``x-amzn-query-error`` gives one; the message is ``message`` or ``Message``."""
        try:
            parsed = json.loads(response.body) if response.body else {}
        except ValueError:
            parsed = {}
        document: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        code = str(document.get("__type") or response.status).split(":", 1)[0].rsplit("#", 1)[-1]
        error: dict[str, str] = {"Message": str(document.get("message", document.get("Message", ""))), "Code": code}
        query_error = response.headers.get("x-amzn-query-error", "").split(";")
        if len(query_error) == 2 and query_error[0]:
            error.update(Code=query_error[0], QueryErrorCode=code, Type=query_error[1])
        # The error's own fields at the top, as botocore adds a modeled error's members (CancellationReasons).
        modeled = {name: value for name, value in document.items() if name not in _ERROR_ENVELOPE}
        return ClientError({**modeled, "Error": error, "ResponseMetadata": metadata}, operation)  # type: ignore[typeddict-item]


class DynamoDBJsonClient(JsonClient):
    """DynamoDB's operations adserve uses, as boto3's client takes and answers them (items in DynamoDB JSON);
    ``query_pages`` and ``scan_pages`` follow ``LastEvaluatedKey`` as boto3's paginators do."""

    def get_item(self, **params: Unpack["GetItemInputTypeDef"]) -> "GetItemOutputTypeDef":
        return cast("GetItemOutputTypeDef", self.call("GetItem", params))

    def put_item(self, **params: Unpack["PutItemInputTypeDef"]) -> "PutItemOutputTypeDef":
        return cast("PutItemOutputTypeDef", self.call("PutItem", params))

    def update_item(self, **params: Unpack["UpdateItemInputTypeDef"]) -> "UpdateItemOutputTypeDef":
        return cast("UpdateItemOutputTypeDef", self.call("UpdateItem", params))

    def delete_item(self, **params: Unpack["DeleteItemInputTypeDef"]) -> "DeleteItemOutputTypeDef":
        return cast("DeleteItemOutputTypeDef", self.call("DeleteItem", params))

    def query(self, **params: Unpack["QueryInputTypeDef"]) -> "QueryOutputTypeDef":
        return cast("QueryOutputTypeDef", self.call("Query", params))

    def scan(self, **params: Unpack["ScanInputTypeDef"]) -> "ScanOutputTypeDef":
        return cast("ScanOutputTypeDef", self.call("Scan", params))

    def batch_get_item(self, **params: Unpack["BatchGetItemInputTypeDef"]) -> "BatchGetItemOutputTypeDef":
        return cast("BatchGetItemOutputTypeDef", self.call("BatchGetItem", params))

    def batch_write_item(self, **params: Unpack["BatchWriteItemInputTypeDef"]) -> "BatchWriteItemOutputTypeDef":
        return cast("BatchWriteItemOutputTypeDef", self.call("BatchWriteItem", params))

    def transact_write_items(
        self, **params: Unpack["TransactWriteItemsInputTypeDef"]
    ) -> "TransactWriteItemsOutputTypeDef":
        return cast("TransactWriteItemsOutputTypeDef", self.call("TransactWriteItems", params))

    def query_pages(self, **params: Unpack["QueryInputTypeDef"]) -> Iterator["QueryOutputTypeDef"]:
        return self._pages("Query", params)

    def scan_pages(self, **params: Unpack["ScanInputTypeDef"]) -> Iterator["ScanOutputTypeDef"]:
        return self._pages("Scan", params)

    def _pages(self, operation: str, params: Mapping[str, Any]) -> Iterator[Any]:
        request = dict(params)
        while True:
            page = self.call(operation, request)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class SQSJsonClient(JsonClient):
    """SQS's SendMessage and SendMessageBatch as boto3's client takes and answers them."""

    def send_message(self, **params: Unpack["SendMessageRequestTypeDef"]) -> "SendMessageResultTypeDef":
        return cast("SendMessageResultTypeDef", self.call("SendMessage", params))

    def send_message_batch(self, **params: Unpack["SendMessageBatchRequestTypeDef"]) -> "SendMessageBatchResultTypeDef":
        return cast("SendMessageBatchResultTypeDef", self.call("SendMessageBatch", params))


class SecretsManagerJsonClient(JsonClient):
    """Secrets Manager's GetSecretValue as boto3's client takes and answers it: ``SecretBinary`` decoded to bytes,
    ``CreatedDate`` a datetime, as botocore's parser gives them."""

    def get_secret_value(self, **params: Unpack["GetSecretValueRequestTypeDef"]) -> "GetSecretValueResponseTypeDef":
        answer = self.call("GetSecretValue", params)
        if "SecretBinary" in answer:
            answer["SecretBinary"] = base64.b64decode(answer["SecretBinary"])
        if "CreatedDate" in answer:
            answer["CreatedDate"] = datetime.fromtimestamp(answer["CreatedDate"], UTC)
        return cast("GetSecretValueResponseTypeDef", answer)
