"""The lean JSON clients (adserve.dal.json_clients) answer as boto3's clients do, over real HTTP: against the
embedded moto for the services' own answers and errors, and against a local server of the test's own for what
moto cannot be made to do (throttle, fail, stall, drop a connection, corrupt a checksum)."""

import http.server
import json
import socket
import ssl
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from adserve.dal.aws_clients import dynamodb_client, secretsmanager_client, sqs_send_client
from adserve.dal.aws_http import ClientSettings, Endpoint, TimeBudget
from adserve.dal.json_clients import DYNAMODB, DynamoDBJsonClient, JsonClient
from adserve.dal.sigv4 import Credentials
from botocore.exceptions import (
    BotoCoreError,
    ChecksumError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from bench.local_server import serving
from devstack.stack import LocalStack
from tests.support.xray import xray_recorder

QUERY = {
    "KeyConditionExpression": "listener_id = :listener",
    "ExpressionAttributeValues": {":listener": {"S": "pseudonym-json-clients"}},
}


@pytest.fixture
def caps_table(local_stack: LocalStack) -> str:
    table = local_stack.physical_name("FrequencyCapsTable")
    dynamodb = boto3.client("dynamodb", endpoint_url=local_stack.endpoint_url)
    for n in range(3):
        dynamodb.put_item(
            TableName=table,
            Item={
                "listener_id": {"S": "pseudonym-json-clients"},
                "counter_key": {"S": f"cap#campaign#cmp-{n}#day#2026-12-05"},
                "impressions": {"N": str(n + 1)},
                "expires_at": {"N": "4102444800"},
            },
        )
    return table


def test_a_query_answers_what_boto3_answers(local_stack: LocalStack, caps_table: str) -> None:
    lean = dynamodb_client(endpoint_url=local_stack.endpoint_url)
    ours = lean.query(TableName=caps_table, **QUERY)  # type: ignore[arg-type]
    theirs = boto3.client("dynamodb", endpoint_url=local_stack.endpoint_url).query(TableName=caps_table, **QUERY)  # type: ignore[arg-type]
    assert ours["Items"] == theirs["Items"]
    assert len(ours["Items"]) == 3
    assert ours["Count"] == theirs["Count"]
    assert ours["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_pages_are_boto3s_pages(local_stack: LocalStack, caps_table: str) -> None:
    lean = dynamodb_client(endpoint_url=local_stack.endpoint_url)
    theirs = boto3.client("dynamodb", endpoint_url=local_stack.endpoint_url)
    ours = list(lean.query_pages(TableName=caps_table, Limit=2, **QUERY))  # type: ignore[arg-type]
    paginator: Any = theirs.get_paginator("query")
    expected = list(paginator.paginate(TableName=caps_table, Limit=2, **QUERY))
    assert [page["Items"] for page in ours] == [page["Items"] for page in expected]
    assert len(ours) == 2
    scanned = [item for page in lean.scan_pages(TableName=caps_table, Limit=1) for item in page["Items"]]
    assert len(scanned) == len(theirs.scan(TableName=caps_table)["Items"])


def test_a_cancelled_transaction_reads_as_boto3_reads_it(local_stack: LocalStack, caps_table: str) -> None:
    marker = {"listener_id": {"S": "pseudonym-json-clients"}, "counter_key": {"S": f"seen#{uuid.uuid4().hex}"}}
    items: Any = [
        {"Put": {"TableName": caps_table, "Item": marker, "ConditionExpression": "attribute_not_exists(counter_key)"}},
    ]
    lean = dynamodb_client(endpoint_url=local_stack.endpoint_url, attempts=1)
    theirs = boto3.client("dynamodb", endpoint_url=local_stack.endpoint_url)
    lean.transact_write_items(TransactItems=items)
    errors = []
    for client in (lean, theirs):
        with pytest.raises(ClientError) as raised:
            client.transact_write_items(TransactItems=items)
        errors.append(raised.value.response)
    ours, expected = errors
    assert ours["Error"] == expected["Error"]
    assert ours["Error"]["Code"] == "TransactionCanceledException"
    assert ours["CancellationReasons"] == expected["CancellationReasons"]
    assert lean.get_item(TableName=caps_table, Key=marker)["Item"] == marker
    conditional: Any = {
        "TableName": caps_table,
        "Item": marker,
        "ConditionExpression": "attribute_not_exists(counter_key)",
    }
    with pytest.raises(ClientError, match="ConditionalCheckFailedException"):
        lean.put_item(**conditional)


def test_sends_arrive_as_boto3_would_send_them(local_stack: LocalStack) -> None:
    sqs = boto3.client("sqs", endpoint_url=local_stack.endpoint_url)
    queue_url = sqs.create_queue(QueueName=f"json-clients-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    lean = sqs_send_client(endpoint_url=local_stack.endpoint_url)
    attributes: Any = {"kind": {"DataType": "String", "StringValue": "decision"}}
    sent = lean.send_message(QueueUrl=queue_url, MessageBody='{"é": 1}', MessageAttributes=attributes)
    batch = lean.send_message_batch(
        QueueUrl=queue_url, Entries=[{"Id": "a", "MessageBody": "2"}, {"Id": "b", "MessageBody": "3"}]
    )
    assert sorted(entry["Id"] for entry in batch["Successful"]) == ["a", "b"]
    received: list[Any] = []
    while len(received) < 3:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=1
        ).get("Messages", [])
        received.extend(messages)
    first = next(message for message in received if message["MessageId"] == sent["MessageId"])
    assert first["Body"] == '{"é": 1}'
    assert first["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert first["MessageAttributes"]["kind"]["StringValue"] == "decision"
    assert sorted(message["Body"] for message in received) == ["2", "3", '{"é": 1}']


def test_errors_are_the_ones_boto3_raises(local_stack: LocalStack) -> None:
    url = local_stack.endpoint_url
    queue_url = f"{url}/123456789012/none"
    errors = []
    for call in (
        lambda: dynamodb_client(endpoint_url=url, attempts=1).query(TableName="no-such-table", **QUERY),  # type: ignore[arg-type]
        lambda: boto3.client("dynamodb", endpoint_url=url).query(TableName="no-such-table", **QUERY),  # type: ignore[arg-type]
        lambda: sqs_send_client(endpoint_url=url, attempts=1).send_message(QueueUrl=queue_url, MessageBody="x"),
        lambda: boto3.client("sqs", endpoint_url=url).send_message(QueueUrl=queue_url, MessageBody="x"),
    ):
        with pytest.raises(ClientError) as raised:
            call()
        errors.append((raised.value.operation_name, raised.value.response["Error"]))
    assert errors[0] == errors[1]
    assert errors[0][1]["Code"] == "ResourceNotFoundException"
    assert errors[2] == errors[3]


def test_secrets_read_as_boto3_reads_them(local_stack: LocalStack) -> None:
    url = local_stack.endpoint_url
    theirs = boto3.client("secretsmanager", endpoint_url=url)
    name = f"json-clients-{uuid.uuid4().hex[:8]}"
    theirs.create_secret(Name=f"{name}-text", SecretString="k" * 40)
    theirs.create_secret(Name=f"{name}-binary", SecretBinary=bytes(range(48)))
    ours = secretsmanager_client(endpoint_url=url)
    for secret in (f"{name}-text", f"{name}-binary"):
        read, expected = ours.get_secret_value(SecretId=secret), theirs.get_secret_value(SecretId=secret)
        for field in ("SecretString", "SecretBinary", "CreatedDate", "VersionId", "VersionStages"):
            assert read.get(field) == expected.get(field), field
    errors = []
    for client in (ours, theirs):
        with pytest.raises(ClientError) as raised:
            client.get_secret_value(SecretId=f"{name}-text", VersionStage="AWSPREVIOUS")
        errors.append(raised.value.response["Error"])
    assert errors[0] == errors[1]
    assert errors[0]["Code"] == "ResourceNotFoundException"


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each POST with the next of the server's scripted answers (status, JSON body, extra headers)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server: Any = self.server
        server.requests.append(dict(self.headers))
        status, document, headers = server.answers.pop(0) if server.answers else (200, {}, {})
        if status == 0:  # stall past the client's read timeout
            time.sleep(server.stall)
            status = 200
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        if server.close_after:
            self.close_connection = True  # without saying so: the client finds out when it reuses the connection

    def finish(self) -> None:
        super().finish()
        if self.close_connection:
            # The FIN goes out before the test is told: socketserver closes the socket only after finish(), so
            # on a loaded machine the client could look at the connection before the close reached it.
            self.connection.shutdown(socket.SHUT_WR)
        self.server.closed += 1  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def scripted() -> Iterator[Any]:
    with serving(_Scripted, answers=[], requests=[], stall=0.0, close_after=False, closed=0) as server:
        server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
        yield server


def client(server: Any, attempts: int, read_timeout: float = 5.0) -> JsonClient:
    return dynamodb_client(endpoint_url=server.url, attempts=attempts, read_timeout=read_timeout)


def test_throttling_and_5xx_are_tried_again_within_the_attempts(scripted: Any) -> None:
    scripted.answers[:] = [(400, {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException"}, {}), (503, {}, {})]
    answer = client(scripted, attempts=3).call("Query", {})
    assert answer["ResponseMetadata"]["RetryAttempts"] == 2
    assert len(scripted.requests) == 3


def test_the_last_attempts_error_is_raised(scripted: Any) -> None:
    scripted.answers[:] = [(503, {"message": "slow down"}, {}), (503, {"message": "slow down"}, {})]
    with pytest.raises(ClientError) as raised:
        client(scripted, attempts=2).call("Query", {})
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert len(scripted.requests) == 2


def test_a_callers_error_is_not_tried_again(scripted: Any) -> None:
    scripted.answers[:] = [(400, {"__type": "ValidationException", "message": "bad key"}, {})]
    with pytest.raises(ClientError, match=r"ValidationException.*bad key"):
        client(scripted, attempts=3).call("Query", {})
    assert len(scripted.requests) == 1


def test_a_stalled_answer_is_a_read_timeout(scripted: Any) -> None:
    scripted.stall = 2.0
    scripted.answers[:] = [(0, {}, {})]
    with pytest.raises(ReadTimeoutError):
        client(scripted, attempts=1, read_timeout=0.2).call("Query", {})


def test_a_refused_connection_is_an_endpoint_connection_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(EndpointConnectionError):
        dynamodb_client(endpoint_url=f"http://127.0.0.1:{port}", attempts=1).call("Query", {})


def test_a_connection_the_server_closed_while_idle_is_not_reused(scripted: Any) -> None:
    scripted.close_after = True
    lean = client(scripted, attempts=1)
    lean.call("Query", {})
    deadline = time.monotonic() + 60
    while not scripted.closed and time.monotonic() < deadline:  # the server has closed its side
        time.sleep(0.01)
    lean.call("Query", {})  # one attempt: it would fail on the closed connection
    assert len(scripted.requests) == 2


def test_a_corrupted_answer_fails_its_checksum(scripted: Any) -> None:
    scripted.answers[:] = [(200, {"Items": []}, {"x-amz-crc32": str(zlib.crc32(b"something else"))})]
    with pytest.raises(ChecksumError):
        client(scripted, attempts=1).call("Query", {})


def test_in_lambda_a_call_joins_the_invocations_trace(scripted: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "adserve-DecideFunction")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
    client(scripted, attempts=1).call("Query", {})
    assert scripted.requests[0]["x-amzn-trace-id"] == "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    assert scripted.requests[0]["x-amz-target"] == "DynamoDB_20120810.Query"
    assert scripted.requests[0]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")


def test_a_dropped_answer_is_a_closed_connection(scripted: Any) -> None:
    class Hangup(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.connection.shutdown(socket.SHUT_RDWR)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    with serving(Hangup) as server:
        lean = dynamodb_client(endpoint_url=f"http://127.0.0.1:{server.server_address[1]}", attempts=1)
        with pytest.raises(ConnectionClosedError):
            lean.call("Query", {})


def test_with_tracing_on_each_call_is_an_aws_subsegment_whose_id_goes_with_it(scripted: Any) -> None:
    with xray_recorder() as (recorder, emitter):
        settings = ClientSettings(
            Endpoint(scripted.url, "eu-west-1", "dynamodb"),
            lambda: Credentials("AKIDEXAMPLE", "secret", None),
            TimeBudget(connect_timeout=5.0, read_timeout=5.0, attempts=1),
            tls=ssl.create_default_context,
            user_agent="test",
            tracing=recorder,  # the provider Powertools' Tracer wraps while tracing is on
        )
        lean = DynamoDBJsonClient(DYNAMODB, settings)
        segment = recorder.begin_segment("DecideFunction")
        lean.query(TableName="caps", **QUERY)  # type: ignore[arg-type]
        scripted.answers[:] = [(400, {"__type": "ValidationException"}, {"x-amzn-requestid": "r-2"})]
        with pytest.raises(ClientError):
            lean.query(TableName="caps", **QUERY)  # type: ignore[arg-type]
        recorder.end_segment()
        first, second = segment.subsegments
        assert first.namespace == "aws"
        assert first.aws == {"operation": "Query", "region": "eu-west-1", "table_name": "caps", "request_id": ""}
        assert first.http["response"]["status"] == 200
        assert scripted.requests[0]["x-amzn-trace-id"] == f"Root={segment.trace_id};Parent={first.id};Sampled=1"
        assert second.aws["request_id"] == "r-2"
        assert second.http["response"]["status"] == 400
        assert emitter.entities == [segment]


class _Raw(http.server.BaseHTTPRequestHandler):
    """Answers each POST with the server's raw bytes, whatever HTTP they hold."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server: Any = self.server
        server.requests += 1
        self.wfile.write(server.raw)
        self.close_connection = (
            server.close or server.raw.startswith(b"HTTP/1.0") or b"connection: close" in server.raw.lower()
        )

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.mark.parametrize(
    ("raw", "kept_alive"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5;x=1\r\n{"Ite\r\nA\r\nms": [], "\r\n8\r\nCount": \r\n2\r\n0}\r\n0\r\nx-trailer: t\r\n\r\n',
            True,
        ),
        (b'HTTP/1.0 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n\r\n{"Items": [], "Count": 0}', False),
        (b'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 25\r\n\r\n{"Items": [], "Count": 0}', True),
        (b'HTTP/1.1 200 OK\r\nContent-Length: 25\r\nConnection: close\r\n\r\n{"Items": [], "Count": 0}', False),
    ],
)
def test_answers_are_read_in_every_framing_http_allows(raw: bytes, kept_alive: bool) -> None:
    with serving(_Raw, raw=raw, requests=0, close=False) as server:
        lean = dynamodb_client(endpoint_url=f"http://127.0.0.1:{server.server_address[1]}", attempts=1)
        for _ in range(2):
            answer = lean.call("Query", {})
            assert answer["Count"] == 0
            assert answer["Items"] == []
        assert server.requests == 2  # type: ignore[attr-defined]
        assert any(lean._idle.values()) is kept_alive  # a closing answer's connection is not kept


@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"x-many: 1\r\n" * 101 + b"\r\n",
    ],
)
def test_a_malformed_answer_is_a_closed_connection(raw: bytes) -> None:
    with serving(_Raw, raw=raw, requests=0, close=True) as server:
        lean = dynamodb_client(endpoint_url=f"http://127.0.0.1:{server.server_address[1]}", attempts=1)
        with pytest.raises(ConnectionClosedError):
            lean.call("Query", {})


@pytest.mark.parametrize("body", [b"<html>gateway</html>", b"[1, 2]"])
def test_an_answer_that_is_not_a_json_object_fails_to_parse(body: bytes) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    with serving(_Raw, raw=raw, requests=0, close=False) as server:
        lean = dynamodb_client(endpoint_url=f"http://127.0.0.1:{server.server_address[1]}", attempts=1)
        with pytest.raises(BotoCoreError, match="no JSON object"):
            lean.call("Query", {})
