"""Figure 11: the CPU of a new HTTPS connection, botocore's own session against ``botocore_session.SharedCaSession``.

The moto stack speaks plain HTTP, so figures 1b and 3 never open a TLS connection; on Lambda every AWS call
does, and urllib3 loads the client's whole CA bundle into the TLS context for each connection it opens
(urllib3#3623). This figure serves a DynamoDB-shaped ``{}`` over TLS from a local server whose certificate a
throwaway CA signed, closing every connection after one answer, so each call opens a new one. Both clients trust
botocore's own CA bundle with that CA appended (the size of what they load on Lambda), one with botocore's
session and one made a SharedCaSession (``share_ca_bundle``), and they call in turns. Per call: the calling
thread's CPU time (the TLS handshake's included), and the wall time.
"""

import http.server
import ssl
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import boto3
from adserve.dal.aws_http import verifying_context
from adserve.dal.botocore_session import share_ca_bundle
from botocore.config import Config
from botocore.httpsession import get_cert_path
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bench.local_server import serving

CALLS = 40
HOSTNAME = "localhost"


@dataclass(frozen=True)
class Certificates:
    """A CA's certificate (PEM) and a server certificate for ``localhost`` it signed, with the server's key."""

    ca_pem: bytes
    server_pem: bytes
    server_key_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(hostname: str = HOSTNAME) -> Certificates:
    """A throwaway CA and a server certificate for *hostname* only, valid from an hour ago for a day."""
    now = datetime.now(UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_subject = _name("adserve bench CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(_name(hostname))
        .issuer_name(ca_subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Certificates(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        server_pem=server.public_bytes(serialization.Encoding.PEM),
        server_key_pem=server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


class _EmptyJson(http.server.BaseHTTPRequestHandler):
    """Answers every POST as DynamoDB answers an empty ListTables, then closes the connection."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.connections += 1  # type: ignore[attr-defined]
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the bench and the tests read the counts, not a log."""


@dataclass
class TlsServer:
    """A local HTTPS server (``serve_tls``): its port and how many requests it answered, each on its own connection."""

    server: http.server.ThreadingHTTPServer

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def connections(self) -> int:
        return int(self.server.connections)  # type: ignore[attr-defined]

    def url(self, host: str = HOSTNAME) -> str:
        return f"https://{host}:{self.port}"


@contextmanager
def serve_tls(certificates: Certificates, directory: Path) -> Iterator[TlsServer]:
    """Serve ``_EmptyJson`` over TLS on a free port of 127.0.0.1 until the block ends."""
    (directory / "server.pem").write_bytes(certificates.server_pem + certificates.server_key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "server.pem")
    with serving(_EmptyJson, tls=context, connections=0) as server:
        yield TlsServer(server)


def dynamodb_client(endpoint_url: str, ca_bundle: str) -> Any:
    """A DynamoDB client of its own boto3 session that trusts *ca_bundle*, with one attempt a call."""
    return boto3.session.Session().client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        verify=ca_bundle,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def _timed_call(client: Any) -> tuple[float, float]:
    """(thread CPU ms, wall ms) of one call, which opens a connection: the server closed the last one."""
    cpu, wall = time.thread_time_ns(), time.perf_counter_ns()
    client.list_tables()
    return (time.thread_time_ns() - cpu) / 1e6, (time.perf_counter_ns() - wall) / 1e6


def _summary(samples: list[tuple[float, float]]) -> dict[str, float]:
    cpu, wall = [s[0] for s in samples], [s[1] for s in samples]
    return {
        "cpu_p50_ms": round(statistics.median(cpu), 3),
        "cpu_min_ms": round(min(cpu), 3),
        "wall_p50_ms": round(statistics.median(wall), 3),
    }


def run(quick: bool = False) -> dict[str, Any]:
    calls = CALLS // 4 if quick else CALLS
    with TemporaryDirectory(prefix="adserve-tls-bench-") as work:
        directory = Path(work)
        certificates = make_certificates()
        bundle = directory / "bundle.pem"
        botocores_bundle = get_cert_path(True)
        if botocores_bundle is None:
            raise RuntimeError("botocore names no CA bundle to verify with")
        bundle.write_bytes(Path(botocores_bundle).read_bytes() + certificates.ca_pem)
        bundle_bytes = bundle.stat().st_size
        with serve_tls(certificates, directory) as server:
            botocores = dynamodb_client(server.url(), str(bundle))
            shared = dynamodb_client(server.url(), str(bundle))
            share_ca_bundle(shared)
            verifying_context.cache_clear()
            first = _timed_call(shared)  # the one connection that loads the bundle, into the shared context
            _timed_call(botocores)
            samples: dict[str, list[tuple[float, float]]] = {"botocore": [], "shared": []}
            for _ in range(calls):  # in turns, so drift on the host affects both alike
                samples["botocore"].append(_timed_call(botocores))
                samples["shared"].append(_timed_call(shared))
            connections = server.connections
    botocore_cpu, shared_cpu = (statistics.median(s[0] for s in samples[k]) for k in ("botocore", "shared"))
    return {
        "calls": calls,
        "connections_opened": connections,
        "ca_bundle_bytes": bundle_bytes,
        "openssl": ssl.OPENSSL_VERSION,
        "botocore_session": _summary(samples["botocore"]),
        "shared_ca_session": _summary(samples["shared"]),
        "shared_first_connection_cpu_ms": round(first[0], 3),
        "cpu_saved_per_connection_ms": round(botocore_cpu - shared_cpu, 3),
        "cpu_ratio_shared_to_botocore": round(shared_cpu / botocore_cpu, 3),
    }
