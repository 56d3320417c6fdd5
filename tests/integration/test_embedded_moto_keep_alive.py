"""The embedded moto keeps HTTP connections open between requests (devstack.aws_endpoint), as AWS does.

werkzeug's development server closed the connection after every response, so each botocore call paid a TCP
connect, a new server thread and a teardown: the largest per-request cost of the demo's stack that was not
moto's own work. These tests send signed requests over one ``http.client`` connection, so they see exactly
what the server does with it.
"""

import http.client
import socket
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devstack.aws_endpoint import AwsEndpoint
from devstack.stack import LocalStack


def signed(endpoint_url: str, service: str, method: str, path: str, body: bytes = b"") -> tuple[dict[str, str], bytes]:
    """A SigV4-signed request's headers and body, as botocore would send them."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    request = AWSRequest(method=method, url=endpoint_url + path, data=body, headers=headers)
    SigV4Auth(Credentials("testing", "testing"), service, "us-east-1").add_auth(request)
    return dict(request.headers.items()), body


def list_queues_request(endpoint_url: str) -> tuple[dict[str, str], bytes]:
    """A signed SQS ListQueues (query protocol)."""
    return signed(endpoint_url, "sqs", "POST", "/", b"Action=ListQueues&Version=2012-11-05")


def connect(endpoint_url: str) -> http.client.HTTPConnection:
    address = urlsplit(endpoint_url)
    return http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=60)


def ask(connection: http.client.HTTPConnection, headers: dict[str, str], body: bytes) -> bytes:
    connection.request("POST", "/", body=body, headers=headers)
    return connection.getresponse().read()


def test_requests_on_one_connection_are_all_answered_on_it(local_stack: LocalStack) -> None:
    headers, body = list_queues_request(local_stack.endpoint_url)
    connection = connect(local_stack.endpoint_url)
    sockets = []
    try:
        for _ in range(3):
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            assert response.status == 200, payload
            assert b"ListQueuesResponse" in payload
            assert not response.will_close, response.getheaders()
            sockets.append(connection.sock)
    finally:
        connection.close()
    assert sockets[0] is not None
    assert all(sock is sockets[0] for sock in sockets)


def test_a_head_answer_carries_the_length_and_no_body(local_stack: LocalStack) -> None:
    """HEAD answers say the object's length but send nothing: the next answer on the connection still parses."""
    s3 = boto3.client("s3", endpoint_url=local_stack.endpoint_url)
    bucket = f"keep-alive-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="object", Body=b"x" * 5000)
    head_headers, _ = signed(local_stack.endpoint_url, "s3", "HEAD", f"/{bucket}/object")
    headers, body = list_queues_request(local_stack.endpoint_url)
    connection = connect(local_stack.endpoint_url)
    try:
        connection.request("HEAD", f"/{bucket}/object", headers=head_headers)
        head = connection.getresponse()
        assert head.status == 200
        assert head.getheader("Content-Length") == "5000"
        assert head.read() == b""
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        assert response.status == 200
        assert b"ListQueuesResponse" in response.read()
    finally:
        connection.close()


def test_stopping_the_endpoint_closes_the_connections_clients_keep_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Otherwise a pooled connection would still be served by a stopped endpoint."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # another embedded moto, not the stack's
    endpoint = AwsEndpoint.start()
    headers, body = list_queues_request(endpoint.url)
    connection = connect(endpoint.url)
    try:
        assert b"ListQueuesResponse" in ask(connection, headers, body)
        endpoint.stop()
        with pytest.raises(ConnectionError):  # the server's end is shut: reset or disconnected, never an answer
            ask(connection, headers, body)
    finally:
        connection.close()
        endpoint.stop()


def test_an_answer_leaves_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Status line, headers and body in one send: with TCP_NODELAY, each write is a segment of its own, and on
    loopback each costs a system call that delivers it and wakes the client (a fifth of a request's CPU)."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # an embedded moto of this test's own
    endpoint = AwsEndpoint.start()
    port = urlsplit(endpoint.url).port
    writes: list[bytes] = []
    send, sendall = socket.socket.send, socket.socket.sendall

    def counted(write: Callable[..., int | None]) -> Callable[..., int | None]:
        def counting(self: socket.socket, data: bytes, *args: int) -> int | None:
            if self.getsockname()[1] == port:  # the server's end of a connection, not the client's
                writes.append(bytes(data))
            return write(self, data, *args)

        return counting

    headers, body = list_queues_request(endpoint.url)
    connection = connect(endpoint.url)
    try:
        assert b"ListQueuesResponse" in ask(connection, headers, body)  # a first request: the handler thread is up
        writes.clear()
        monkeypatch.setattr(socket.socket, "send", counted(send))
        monkeypatch.setattr(socket.socket, "sendall", counted(sendall))
        assert b"ListQueuesResponse" in ask(connection, headers, body)
    finally:
        monkeypatch.undo()
        connection.close()
        endpoint.stop()
    assert len(writes) == 1, [write[:60] for write in writes]
    assert writes[0].startswith(b"HTTP/1.1 200")
    assert writes[0].endswith(b"</ListQueuesResponse>")


def raw_exchange(endpoint_url: str, request: bytes) -> bytes:
    """Send *request* as is on a new connection; the whole answer, up to the server closing it."""
    address = urlsplit(endpoint_url)
    with socket.create_connection((address.hostname or "127.0.0.1", address.port or 80), timeout=60) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    ("header_lines", "status"),
    [
        (b" folded: onto the line before\r\n", b"400"),
        (b"no colon here\r\n", b"400"),
        (b"X-Long: " + b"a" * 70_000 + b"\r\n", b"431"),
        (b"".join(b"X-Many-%d: 1\r\n" % number for number in range(101)), b"431"),
    ],
)
def test_a_malformed_header_block_is_refused_and_the_connection_closed(
    local_stack: LocalStack, header_lines: bytes, status: bytes
) -> None:
    request = b"POST / HTTP/1.1\r\nHost: localhost\r\n" + header_lines + b"Content-Length: 0\r\n\r\n"
    assert raw_exchange(local_stack.endpoint_url, request).startswith(b"HTTP/1.1 " + status)


def test_headers_read_line_by_line_reach_moto_as_sent(local_stack: LocalStack) -> None:
    """Every header of a signed request reaches moto (its signature still checks out: the answer is moto's) and
    ``Connection: close`` is honoured."""
    headers, body = list_queues_request(local_stack.endpoint_url)
    lines = b"".join(f"{name}: {value}\r\n".encode() for name, value in headers.items())
    request = b"POST / HTTP/1.1\r\nHost: " + urlsplit(local_stack.endpoint_url).netloc.encode() + b"\r\n" + lines
    answer = raw_exchange(
        local_stack.endpoint_url, request + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    )
    assert answer.startswith(b"HTTP/1.1 200")
    assert b"ListQueuesResponse" in answer
