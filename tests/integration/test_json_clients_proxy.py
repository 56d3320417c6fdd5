"""The lean JSON clients go through the proxy botocore would use (HTTPS_PROXY / HTTP_PROXY, NO_PROXY): HTTPS
endpoints through a CONNECT tunnel, still verifying the endpoint's certificate, plain HTTP ones in absolute form;
over real sockets to a proxy of the test's own."""

import select
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from adserve.dal import aws_clients, aws_http
from botocore.exceptions import EndpointConnectionError, ProxyConnectionError

from bench.tls_connections import TlsServer, make_certificates, serve_tls

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 2\r\n\r\n{}"


class _Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, refuse: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.refuse = refuse
        self.requests: list[tuple[bytes, dict[str, str]]] = []

    @property
    def url(self) -> str:
        return f"http://user:secret@127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(socketserver.StreamRequestHandler):
    """CONNECT: a tunnel to the named host; anything else is answered here, as the endpoint would (`{}`)."""

    def handle(self) -> None:
        server: Any = self.server
        line = self.rfile.readline()
        headers = {}
        while (header := self.rfile.readline()) not in (b"\r\n", b""):
            name, _, value = header.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        server.requests.append((line, headers))
        method, target, _ = line.split()
        if method != b"CONNECT":
            self.rfile.read(int(headers.get("content-length", 0)))
            self.wfile.write(ANSWER)
            return
        if server.refuse:
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            return
        host, _, port = target.decode().rpartition(":")
        with socket.create_connection((host, int(port))) as upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            _pump(self.connection, upstream)


def _pump(one: socket.socket, other: socket.socket) -> None:
    """Relay bytes both ways until either side closes."""
    while True:
        readable, _, _ = select.select([one, other], [], [], 30)
        if not readable:
            return
        for source in readable:
            data = source.recv(65536)
            if not data:
                return
            (other if source is one else one).sendall(data)


@pytest.fixture
def proxy() -> Iterator[_Proxy]:
    running = _Proxy()
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TlsServer, Path]]:
    work = tmp_path_factory.mktemp("proxy-tls")
    certificates = make_certificates()
    (work / "ca.pem").write_bytes(certificates.ca_pem)
    with serve_tls(certificates, work) as running:
        yield running, work / "ca.pem"


def test_https_goes_through_a_connect_tunnel_and_still_verifies_the_endpoint(
    proxy: _Proxy, tls_server: tuple[TlsServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca = tls_server
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(ca))
    aws_http.verifying_context.cache_clear()
    lean = aws_clients.dynamodb_client(endpoint_url=server.url(), attempts=1)
    assert lean.call("ListTables", {})["ResponseMetadata"]["HTTPStatusCode"] == 200
    (line, headers), *_ = proxy.requests
    assert line == f"CONNECT localhost:{server.port} HTTP/1.1\r\n".encode()
    assert headers["proxy-authorization"] == "Basic dXNlcjpzZWNyZXQ="  # user:secret
    aws_http.verifying_context.cache_clear()


def test_plain_http_names_the_whole_url_to_the_proxy(proxy: _Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    lean = aws_clients.dynamodb_client(endpoint_url="http://dynamodb.example.internal:8000", attempts=1)
    lean.call("ListTables", {})
    (line, headers), *_ = proxy.requests
    assert line == b"POST http://dynamodb.example.internal:8000/ HTTP/1.1\r\n"
    assert headers["host"] == "dynamodb.example.internal:8000"
    assert headers["proxy-authorization"] == "Basic dXNlcjpzZWNyZXQ="


def test_no_proxy_is_honoured(proxy: _Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(EndpointConnectionError):
        aws_clients.dynamodb_client(endpoint_url=f"http://127.0.0.1:{port}", attempts=1).call("ListTables", {})
    assert proxy.requests == []


def test_a_refused_tunnel_is_a_proxy_error_naming_no_password(
    proxy: _Proxy, tls_server: tuple[TlsServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = tls_server
    proxy.refuse = True
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(ProxyConnectionError) as raised:
        aws_clients.dynamodb_client(endpoint_url=server.url(), attempts=1).call("ListTables", {})
    assert "secret" not in str(raised.value)
    assert "403" in str(raised.value.kwargs["error"])
