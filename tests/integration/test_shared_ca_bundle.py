"""adserve's clients verify every HTTPS connection against their CA bundle, loaded once per process: over real TLS
to a local server whose certificate a throwaway CA signed (``bench.tls_connections``), each call on a new connection."""

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from adserve.dal import aws_clients, botocore_session
from adserve.dal.aws_http import verifying_context
from adserve.dal.botocore_session import SharedCaSession
from botocore.exceptions import SSLError

from bench.tls_connections import TlsServer, dynamodb_client, make_certificates, serve_tls


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="module")
def server(work: Path) -> Iterator[TlsServer]:
    certificates = make_certificates()
    (work / "ca.pem").write_bytes(certificates.ca_pem)
    with serve_tls(certificates, work) as running:
        yield running


@pytest.fixture
def bundle(work: Path, tmp_path: Path) -> Path:
    """The CA's certificate in a file of this test's own."""
    path = tmp_path / "bundle.pem"
    path.write_bytes((work / "ca.pem").read_bytes())
    return path


@pytest.fixture
def adserves_client(server: TlsServer, bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """adserve's own DynamoDB client, pointed at the server and trusting the CA, as AWS_CA_BUNDLE makes it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.url())
    monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
    verifying_context.cache_clear()
    yield botocore_session.botocore_client("dynamodb", attempts=1)
    verifying_context.cache_clear()


def test_each_new_connection_is_verified_without_reading_the_bundle_again(
    server: TlsServer, adserves_client: Any, bundle: Path
) -> None:
    other = dynamodb_client(server.url(), str(bundle))
    botocore_session.share_ca_bundle(other)
    before = server.connections
    adserves_client.list_tables()
    bundle.rename(bundle.with_suffix(".gone"))  # a connection that loaded the file again would fail now
    for _ in range(3):
        adserves_client.list_tables()
        other.list_tables()
    assert server.connections - before == 7  # the server closes each connection after its answer
    assert type(adserves_client._endpoint.http_session) is SharedCaSession
    assert verifying_context.cache_info().misses == 1  # one bundle, one context, for both clients


def test_the_lean_json_clients_verify_against_the_same_context(
    server: TlsServer, adserves_client: Any, bundle: Path
) -> None:
    lean = aws_clients.dynamodb_client(attempts=1)
    adserves_client.list_tables()
    bundle.rename(bundle.with_suffix(".gone"))
    before = server.connections
    for _ in range(3):
        assert lean.call("ListTables", {})["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert server.connections - before == 3  # a new connection each time: the server closes them
    assert verifying_context.cache_info().misses == 1


def test_the_lean_json_clients_refuse_a_certificate_for_another_host(
    server: TlsServer, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(work / "ca.pem"))
    lean = aws_clients.dynamodb_client(endpoint_url=server.url(host="127.0.0.1"), attempts=1)
    with pytest.raises(SSLError, match="IP address mismatch"):
        lean.call("ListTables", {})


def test_connections_opened_together_load_the_bundle_once(server: TlsServer, bundle: Path) -> None:
    """As a cold start's first reads do, on their own threads and clients."""
    clients = [dynamodb_client(server.url(), str(bundle)) for _ in range(4)]
    for client in clients:
        botocore_session.share_ca_bundle(client)
    start = threading.Barrier(len(clients))

    def first_call(client: Any) -> None:
        start.wait()
        client.list_tables()

    verifying_context.cache_clear()
    threads = [threading.Thread(target=first_call, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert verifying_context.cache_info().misses == 1
    assert verifying_context.cache_info().hits == len(clients) - 1


def test_a_server_the_bundle_does_not_vouch_for_is_refused(server: TlsServer, tmp_path: Path) -> None:
    stranger = tmp_path / "other-ca.pem"
    stranger.write_bytes(make_certificates().ca_pem)
    client = dynamodb_client(server.url(), str(stranger))
    botocore_session.share_ca_bundle(client)
    with pytest.raises(SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        client.list_tables()


def test_a_certificate_for_another_host_is_refused(server: TlsServer, work: Path) -> None:
    client = dynamodb_client(server.url(host="127.0.0.1"), str(work / "ca.pem"))  # the certificate names localhost
    botocore_session.share_ca_bundle(client)
    with pytest.raises(SSLError, match="IP address mismatch"):  # the context checks host names itself
        client.list_tables()
