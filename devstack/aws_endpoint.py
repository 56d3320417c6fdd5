"""The AWS endpoint the local stack uses: moto in server mode in this process, or one named by the environment.

moto runs as a real HTTP server (not ``mock_aws`` patching), so handlers, the CLI and other processes all
reach the same state over the network, just as they would reach AWS. The server is moto's WSGI application on
werkzeug's threaded server, as ``moto.server.ThreadedMotoServer`` runs it, but with HTTP/1.1 keep-alive (see
``_KeepAliveRequestHandler``): botocore reuses its pooled connections, as it does against AWS.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import moto.backends
import moto.core.responses
import moto.dynamodb.models.table
import moto.sqs.models
from botocore.exceptions import ClientError
from moto.core.request import Request
from moto.core.utils import unix_time, unix_time_millis
from moto.dynamodb import comparisons, models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
from moto.dynamodb.responses import DynamoHandler
from moto.moto_api import recorder
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.sqs.models import Message, Queue, SQSBackend
from moto.sqs.responses import SQSResponse
from werkzeug.exceptions import HTTPException
from werkzeug.serving import ThreadedWSGIServer
from werkzeug.wrappers import Response

from devstack.function_process import process_cpu_seconds

__all__ = ["AwsEndpoint", "credentials_environment"]

_DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


class AwsEndpoint:
    """Either an embedded moto server (``embedded``: in this process, or in a child process of its own) or an
    external endpoint URL."""

    def __init__(
        self, url: str, server: _MotoServer | None = None, process: subprocess.Popen[str] | None = None
    ) -> None:
        self.url = url
        self._server = server
        self._process = process

    @property
    def embedded(self) -> bool:
        return self._server is not None or self._process is not None

    @classmethod
    def start_process(cls) -> AwsEndpoint:
        """The embedded moto (patches and keep-alive included) in a child process: its own interpreter lock.

        Everything in the local stack is Python in one process, so it runs on one core however many the machine
        has; with moto's request handling, about half the CPU of a demo decision, in a child process, the stack
        uses two. The child ends when its standard input closes, so it never outlives this process.
        """
        environment = {name: value for name, value in os.environ.items() if name != "AWS_ENDPOINT_URL"}
        process = subprocess.Popen(  # noqa: S603 - this interpreter running this module
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        url = process.stdout.readline().strip() if process.stdout is not None else ""
        if not url.startswith("http://"):
            process.kill()
            process.wait()
            raise RuntimeError(f"the moto process did not start (exit code {process.poll()})")
        return cls(url, process=process)

    @classmethod
    def start(cls, endpoint_url: str | None = None, host: str = "127.0.0.1") -> AwsEndpoint:
        """Use *endpoint_url* (or ``AWS_ENDPOINT_URL``) if given, else start moto on a free port."""
        external = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        if external:
            return cls(external.rstrip("/"))
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log
        _serialize_dynamodb_transactions()
        _parse_each_update_expression_once()
        _parse_each_condition_once()
        _constant_time_sqs_retention_check()
        _one_clock_read_per_sqs_queue_scan()
        _no_queue_counts_for_sqs_sends()
        _list_moto_modules_once()
        _action_names_once_per_class()
        server = _MotoServer(host)
        return cls(f"http://{host}:{server.port}", server)

    def child_cpu_seconds(self) -> float:
        """CPU seconds the moto child process has used so far: 0 without one (moto's CPU is then this process's),
        or where there is no /proc to read it from."""
        return 0.0 if self._process is None else process_cpu_seconds(self._process.pid)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._process is not None:
            if self._process.stdin is not None:
                self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


_MAX_HEADER_LINE = 65536
_MAX_HEADERS = 100
"""http.server's limits on a request's header lines (``http.client._MAXLINE``, ``_MAXHEADERS``)."""


class _KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler, answering over HTTP/1.1 keep-alive instead of closing every connection.

    werkzeug's development server sends ``Connection: close`` with every response, so each botocore call paid a
    TCP connect, a new server thread, a teardown and a 10 ms drain of the socket: a third of the CPU of an SQS
    SendMessage, a tenth of a demo decision's. Here the request body is read whole before moto sees it (so the next
    request starts where this one ended) and the response is sent with its length, on the same connection.
    """

    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024
    """Buffer the response and send it when the request is handled (``handle_one_request`` flushes): the status
    line, headers and body leave in one write. Unbuffered, with TCP_NODELAY, they left as two segments, and each
    write on loopback costs a system call that delivers it and wakes the client: a fifth of a request's CPU."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """werkzeug's access log line, formatted only when its logger would print it (it is at WARNING here):
        the formatting alone was a fortieth of a request's CPU."""
        if logging.getLogger("werkzeug").isEnabledFor(logging.INFO):
            super().log_request(code, size)

    def parse_request(self) -> bool:
        """http.server's checks of the request line, then the header block read line by line into its message class.

        http.server hands the header block to the email package's generic parser, a tenth of a request's CPU in
        the server; a request's headers are ``name: value`` lines, read here with http.server's limits (line
        length, count). A folded (obsolete) or colon-less line is refused with 400. The Connection and Expect
        headers are then handled as http.server handles them.
        """
        headers_follow = self.rfile
        self.rfile = io.BytesIO(b"\r\n")  # http.server checks the request line and finds no headers
        try:
            if not super().parse_request():
                return False
        finally:
            self.rfile = headers_follow
        headers = self.MessageClass()
        for _ in range(_MAX_HEADERS + 1):
            line = self.rfile.readline(_MAX_HEADER_LINE + 1)
            if len(line) > _MAX_HEADER_LINE:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            name, colon, value = line.decode("iso-8859-1").partition(":")
            if not colon or name[:1] in {" ", "\t"}:
                self.send_error(HTTPStatus.BAD_REQUEST, "Malformed header line")
                return False
            headers[name] = value.lstrip(" \t").rstrip("\r\n")
        else:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
            return False
        self.headers = headers
        connection = headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if headers.get("Expect", "").lower() == "100-continue" and self.request_version >= "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def setup(self) -> None:
        super().setup()
        # The status line and headers go out before the body: without this, Nagle's algorithm holds the body
        # back until the client's delayed ACK, 40 ms per response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()  # now: the client waits for it before it sends the body
        environ = self.make_environ()
        if environ.get("wsgi.input_terminated"):  # chunked: werkzeug's reader stops at the last chunk
            body = environ["wsgi.input"].read()
        else:
            body = self.rfile.read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        response: dict[str, Any] = {}
        chunks: list[bytes] = []

        # Nothing is sent before the application returns, so a second call (with exc_info) just replaces the first.
        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:  # noqa: ARG001
            response.update(status=status, headers=headers)
            return chunks.append

        try:
            iterable = self.server.app(environ, start_response)
            try:
                chunks.extend(iterable)
            finally:
                close = getattr(iterable, "close", None)
                if close is not None:
                    close()
        except Exception:
            logging.getLogger(__name__).exception("moto failed on %s %s", self.command, self.path)
            self.send_error(500)  # and closes the connection
            return
        code, _, reason = response["status"].partition(" ")
        self.send_response(int(code), reason)
        sent = set()
        for name, value in response["headers"]:
            if name.lower() not in {"connection", "transfer-encoding"}:
                self.send_header(name, value)
                sent.add(name.lower())
        payload = b"".join(chunks)
        if "content-length" not in sent and int(code) not in {204, 304} and int(code) >= 200:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)


class _ServerRequest(Request):
    """A request as moto's Flask application builds it (``BackendRequest``), without Flask's request class."""

    from_wsgi_server = True


_JSON_PROTOCOL_TARGETS: dict[str, Any] = {"AmazonSQS": SQSResponse, "DynamoDB_20120810": DynamoHandler}
"""The ``X-Amz-Target`` prefixes of the JSON-protocol services a stack calls per event, and moto's response class
that its Flask application routes their ``POST /`` to."""


class _JsonProtocolDispatch:
    """moto's WSGI application, with SQS's and DynamoDB's JSON-protocol requests handed to their response class
    as moto's Flask view does (``convert_to_flask_response``), without the Flask application around it.

    Every SQS and DynamoDB call of the stack is a ``POST /`` named by its ``X-Amz-Target``, which moto's Flask
    application routes to one response class's ``dispatch``; the host inference, URL map, request and
    application contexts and CORS headers around that were a third of such a request's CPU in the server. The
    request, the response class, the backend and the response are moto's own; anything else (S3, STS, Secrets
    Manager, other paths) goes through moto's application unchanged.
    """

    def __init__(self, application: DomainDispatcherApplication) -> None:
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        response_class = _JSON_PROTOCOL_TARGETS.get(environ.get("HTTP_X_AMZ_TARGET", "").partition(".")[0])
        if response_class is None or environ.get("PATH_INFO") != "/" or environ.get("REQUEST_METHOD") != "POST":
            through_flask: Iterable[bytes] = self.application(environ, start_response)
            return through_flask
        request = _ServerRequest(environ)
        recorder._record_request(request)  # as moto's Flask view records it (a no-op unless enabled)
        try:
            result = response_class.dispatch(request, request.raw_url, dict(request.headers))
        except ClientError as error:  # as moto's Flask view answers it
            result = 400, {}, error.response["Error"]["Message"]
        except HTTPException as error:  # as Flask answers one raised before the action ran
            answer: Iterable[bytes] = error(environ, start_response)
            return answer
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        response: Iterable[bytes] = Response(response=content, status=status, headers=headers)(environ, start_response)
        return response


class _MotoServer(ThreadedWSGIServer):
    """moto's WSGI application served in a thread; ``stop`` also closes the connections clients keep open."""

    def __init__(self, host: str) -> None:
        application = _JsonProtocolDispatch(DomainDispatcherApplication(create_backend_app))
        super().__init__(host, 0, application, handler=_KeepAliveRequestHandler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, name="moto-server", daemon=True)
        self._thread.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:  # their threads see the end of the stream and finish
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join()


def credentials_environment(embedded: bool, environ: Mapping[str, str]) -> dict[str, str]:
    """Credentials to add so boto3 can sign requests.

    The embedded moto always gets dummy ones, so a developer's real credentials or an expired SSO
    profile never matter locally; an external endpoint keeps whatever the environment provides.
    """
    if embedded or not ({"AWS_ACCESS_KEY_ID", "AWS_PROFILE"} & environ.keys()):
        return dict(_DUMMY_CREDENTIALS)
    return {}


_TRANSACTION_LOCK = threading.Lock()
_IN_TRANSACTION = threading.local()


def _serialize_dynamodb_transactions() -> None:
    """Make moto's TransactWriteItems atomic across its request threads, as DynamoDB's is, at a cost that
    does not grow with the table.

    moto checks a transaction's conditions and then applies its writes with no lock, so two concurrent
    transactions on the same item can both pass ``attribute_not_exists``; DynamoDB would cancel one with a
    TransactionConflict. Exactly-once counting relies on that, and the emulator should not hide or fake it.

    moto also deep-copies every table a transaction touches, to roll back a cancelled one: O(table size)
    per transaction, so a table of markers that grows with the run made each impression slower and a demo
    run reach gigabytes. Here the rollback copies only the items the transaction names, and moto's table
    copy is skipped while a transaction runs.
    """
    original: Callable[..., Any] = DynamoDBBackend.transact_write_items
    if getattr(original, "serialized", False):
        return
    models.copy = _TableSharingCopy()  # type: ignore[assignment,attr-defined]

    @functools.wraps(original)
    def serialized(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> Any:
        with _TRANSACTION_LOCK:
            before = _items_named(self, transact_items)
            _IN_TRANSACTION.active = True
            try:
                return original(self, transact_items)
            except Exception:
                _restore(self, before)
                raise
            finally:
                _IN_TRANSACTION.active = False

    serialized.serialized = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = serialized  # type: ignore[method-assign]


class _TableSharingCopy:
    """moto's ``copy`` module as its DynamoDB models see it, except that a table is not copied while this
    thread runs a transaction (``serialized`` rolls back the transaction's items itself)."""

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(value, Table) and getattr(_IN_TRANSACTION, "active", False):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


_ItemSnapshot = tuple[str, dict[str, Any], "dict[str, Any] | None"]


def _items_named(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[_ItemSnapshot]:
    """(table, key, the item's attributes or None) for every item of the transaction, before it runs."""
    snapshots: list[_ItemSnapshot] = []
    for entry in transact_items:
        op_type, op = next(iter(entry.items()))
        table = backend.tables.get(op.get("TableName", ""))
        if table is None:
            continue
        if op_type == "Put":
            key_names = [name for name in (table.hash_key_attr, table.range_key_attr) if name is not None]
            if not all(name in op.get("Item", {}) for name in key_names):
                continue
            key = {name: op["Item"][name] for name in key_names}
        elif "Key" in op:
            key = op["Key"]
        else:
            continue
        current = backend.get_item(table.name, key)  # an invalid key fails here as in the transaction itself
        snapshots.append((table.name, key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
    return snapshots


def _restore(backend: DynamoDBBackend, snapshots: list[_ItemSnapshot]) -> None:
    """Put every named item back as it was: a cancelled transaction leaves no write behind."""
    for table_name, key, attributes in reversed(snapshots):
        if attributes is None:
            backend.delete_item(table_name, key)
        else:
            backend.put_item(table_name, attributes)


UPDATE_EXPRESSIONS_KEPT = 1024
"""Distinct UpdateExpressions the embedded moto keeps parsed: a stack's handlers use a few dozen."""


def _parse_each_update_expression_once() -> None:
    """Parse each distinct UpdateExpression once, not twice for every update.

    moto parses an update's expression in the request handler (to check the names and values it uses) and again
    in the backend, for every Update of a TransactWriteItems too: Record's delivery counting sends two such
    updates per group with the same ``ADD ...`` expression, and the two parses were a fifth of a transaction's
    CPU in the server. The tree is a function of the text alone, and moto never changes it: its validators work
    on their own deep copy (``Validator.__init__``) and the request handler only reads it (``find_clauses``).
    An expression that does not parse raises each time, as before (nothing is kept for it).
    """
    if getattr(UpdateExpressionParser.make, "parsed_once", False):
        return
    parse: Callable[[str], Any] = UpdateExpressionParser.make

    @functools.lru_cache(maxsize=UPDATE_EXPRESSIONS_KEPT)
    def parsed(expression: str) -> Any:
        return parse(expression)

    def make(_cls: type[UpdateExpressionParser], expression: str) -> Any:
        return parsed(expression)

    make.parsed_once = True  # type: ignore[attr-defined]
    UpdateExpressionParser.make = classmethod(make)


CONDITIONS_KEPT = 1024
"""Distinct (condition, names, values) the embedded moto keeps parsed: more than a stack's handlers use."""


def _parse_each_condition_once() -> None:
    """Parse a condition expression once for its names and values, not on every check of every item.

    A Put with a condition has it parsed three times in moto's backend and transaction code (the transaction's
    check, then ``put_item``'s own) for each item: Record's delivery transactions put every event's marker
    under ``attribute_not_exists(pk)``. The tree is a function of the expression, its names and its values
    (JSON from the request, so they are kept as their JSON text) and evaluating it reads the item only. An
    expression that does not parse raises each time, as before.
    """
    if getattr(comparisons.get_filter_expression, "parsed_once", False):
        return
    parse: Callable[..., Any] = comparisons.get_filter_expression

    @functools.lru_cache(maxsize=CONDITIONS_KEPT)
    def parsed(expression: str | None, names: str, values: str) -> Any:
        return parse(expression, json.loads(names), json.loads(values))

    def get_filter_expression(expression: str | None, names: Any, values: Any) -> Any:
        return parsed(expression, json.dumps(names, sort_keys=True), json.dumps(values, sort_keys=True))

    get_filter_expression.parsed_once = True  # type: ignore[attr-defined]
    for module in (comparisons, models, moto.dynamodb.models.table):  # each imported the function by name
        module.get_filter_expression = get_filter_expression  # type: ignore[attr-defined]


def _constant_time_sqs_retention_check() -> None:
    """Make moto's per-message MessageRetentionPeriod check O(1) instead of O(queue length).

    ReceiveMessage checks every message it is about to return against the queue's retention period, which moto
    looks up through ``get_queue_attributes``: that builds ``Queue.attributes`` three times, and each build
    counts the queue's visible, in-flight and delayed messages. So one ReceiveMessage of 10 cost about 90 scans
    of the whole queue. The value it needs is ``queue.message_retention_period``, the very field
    ``attributes["MessageRetentionPeriod"]`` is read from; the comparison is moto's own, unchanged.
    """
    if getattr(SQSBackend.is_message_valid_based_on_retention_period, "constant_time", False):
        return

    def is_message_valid_based_on_retention_period(self: SQSBackend, queue_name: str, message: Message) -> bool:
        retention_period: int = self.get_queue(queue_name).message_retention_period  # type: ignore[attr-defined]
        retain_until = retention_period + message.sent_timestamp / 1000  # type: ignore[operator]
        return retain_until > unix_time()

    is_message_valid_based_on_retention_period.constant_time = True  # type: ignore[attr-defined]
    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]


def _one_clock_read_per_sqs_queue_scan() -> None:
    """Read the clock once per scan of a moto queue, not once or twice per message.

    ``Queue.messages`` (the visible, undelayed messages ReceiveMessage walks and long polls wait for) and the
    ApproximateNumberOfMessages* counts behind ``Queue.attributes`` (which SendMessage builds for every message)
    ask each message's ``visible`` and ``delayed`` properties, and each asks moto's datetime-based clock: a few
    microseconds per message, so milliseconds per call on a queue of a few hundred. Here each scan reads that
    same clock once and applies the same comparisons (``now > visible_at``, ``now < delayed_until``), so every
    result is one the per-message version gives when the scan takes less than a clock tick: a consistent
    snapshot of the queue rather than one smeared over the scan.
    """
    if getattr(vars(Queue)["messages"].fget, "one_clock_read", False):
        return

    def messages(self: Queue) -> list[Message]:
        now = unix_time_millis()
        return [message for message in self._messages if now > message.visible_at and not now < message.delayed_until]

    def not_visible(self: Queue) -> int:
        now = unix_time_millis()
        return sum(1 for message in self._messages if not now > message.visible_at)

    def delayed(self: Queue) -> int:
        now = unix_time_millis()
        return sum(1 for message in self._messages if now < message.delayed_until)

    messages.one_clock_read = True  # type: ignore[attr-defined]
    Queue.messages = property(messages)  # type: ignore[assignment,method-assign]
    Queue.approximate_number_of_messages_not_visible = property(not_visible)  # type: ignore[assignment,method-assign]
    Queue.approximate_number_of_messages_delayed = property(delayed)  # type: ignore[assignment,method-assign]


_SENDING = threading.local()
_QUEUE_COUNTS = frozenset(
    {"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessagesNotVisible"}
)


class _QueueWithoutCounts:
    """A moto queue as ``Queue.attributes`` reads it, listing every base attribute but the message counts."""

    BASE_ATTRIBUTES: ClassVar[list[str]] = [name for name in Queue.BASE_ATTRIBUTES if name not in _QUEUE_COUNTS]

    def __init__(self, queue: Queue) -> None:
        self._queue = queue

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


def _no_queue_counts_for_sqs_sends() -> None:
    """Do not count a queue's messages for every message sent to it.

    moto's SendMessage (and each entry of SendMessageBatch) reads ``queue.attributes`` for one value,
    ``ContentBasedDeduplication``, and that property counts the queue's visible, in-flight and delayed messages
    on the way: three scans of the queue per message, a twentieth of the demo's moto CPU. While a send runs,
    ``attributes`` is moto's own property over a view of the queue without the three counts; everywhere else
    (GetQueueAttributes among others) it is unchanged.
    """
    if getattr(SQSBackend.send_message, "counts_nothing", False):
        return
    send_message: Callable[..., Any] = SQSBackend.send_message
    attributes: Callable[[Any], dict[str, Any]] = vars(Queue)["attributes"].fget

    @functools.wraps(send_message)
    def sending(self: SQSBackend, *args: Any, **kwargs: Any) -> Any:
        outer = getattr(_SENDING, "active", False)  # SendMessageBatch sends each entry through send_message
        _SENDING.active = True
        try:
            return send_message(self, *args, **kwargs)
        finally:
            _SENDING.active = outer

    def queue_attributes(self: Queue) -> dict[str, Any]:
        return attributes(_QueueWithoutCounts(self) if getattr(_SENDING, "active", False) else self)

    sending.counts_nothing = True  # type: ignore[attr-defined]
    SQSBackend.send_message = sending  # type: ignore[method-assign]
    Queue.attributes = property(queue_attributes)  # type: ignore[assignment,method-assign]


def _list_moto_modules_once() -> None:
    """List moto's service packages once, not on every request.

    The server's dispatcher asks ``moto.backends.list_of_moto_modules()`` for each request whether the Host
    names a service, and that lists moto's package directory and stats each of its ~200 entries: a tenth of
    a request's time in the server. The directory is the installed moto, which does not change while it runs.
    """
    if getattr(moto.backends.list_of_moto_modules, "listed_once", False):
        return
    modules = tuple(moto.backends.list_of_moto_modules())

    def list_of_moto_modules() -> Iterable[str]:
        return modules

    list_of_moto_modules.listed_once = True  # type: ignore[attr-defined]
    moto.backends.list_of_moto_modules = list_of_moto_modules


def _action_names_once_per_class() -> None:
    """Find a request's action among its response class's methods without listing them on every request.

    moto's dispatch turns the action name into a method name and looks it up in ``method_names_from_class``,
    which runs ``inspect.getmembers`` over the class (hundreds of attributes) each time: a twentieth of a
    request's CPU. The classes' methods do not change while the server runs, so both steps are cached.
    """
    namespace = vars(moto.core.responses)  # where dispatch looks both names up
    if getattr(namespace["method_names_from_class"], "cached", False):
        return
    method_names = functools.cache(namespace["method_names_from_class"])
    method_names.cached = True  # type: ignore[attr-defined]
    namespace["method_names_from_class"] = method_names
    camelcase_to_underscores = functools.cache(namespace["camelcase_to_underscores"])
    namespace["camelcase_to_underscores"] = camelcase_to_underscores
    # SQS's Queue.attributes, which every SendMessage reads, converts each attribute's name the same way.
    moto.sqs.models.camelcase_to_underscores = camelcase_to_underscores  # type: ignore[attr-defined]


def main() -> None:
    """``python -m devstack.aws_endpoint``: the embedded moto until standard input closes (see ``start_process``).

    Prints the endpoint's URL as its first line.
    """
    os.environ.pop("AWS_ENDPOINT_URL", None)
    endpoint = AwsEndpoint.start()
    try:
        print(endpoint.url, flush=True)  # noqa: T201 - the parent reads it
        sys.stdin.read()
    finally:
        endpoint.stop()


if __name__ == "__main__":
    main()
