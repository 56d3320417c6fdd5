"""boto3 clients with explicit time budgets.

boto3 honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>, which is how the local stack and the tests
point every client at moto without a line of code here.
"""

import os
import ssl
import threading
import weakref
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, DataNotFoundError
from botocore.httpsession import URLLib3Session, create_urllib3_context
from botocore.loaders import JSONFileLoader, Loader
from botocore.parsers import ResponseParser, ResponseParserFactory

from adserve.dal.sdk_models import SERVICES, read_json, read_parsed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# What a failed AWS call raises, for callers outside dal/ that report it rather than handle it.
AWS_ERRORS: tuple[type[Exception], ...] = (BotoCoreError, ClientError)


def _config(connect_timeout: float, read_timeout: float, attempts: int) -> Config:
    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
        tcp_keepalive=True,
    )


_SESSION_LOCK = threading.Lock()
_CLIENTS: "weakref.WeakSet[Any]" = weakref.WeakSet()


class ParsedFiles(JSONFileLoader):
    """botocore's model file loader, but reading the layer's pickles of its models where there are some
    (``sdk_models``) and otherwise parsing into plain dicts instead of OrderedDicts.

    botocore parses its models with ``object_pairs_hook=OrderedDict``, a Python-level call per JSON object;
    plain dicts keep the same order (and compare equal) and parse the four services' models, endpoints and
    partitions in about two thirds of the time; the pickles load in a fraction of that again.
    """

    def load_file(self, file_path: str) -> Any:
        """What ``sdk_models.prepare`` stored for ``file_path``, else its ``.json`` or ``.json.gz`` parsed."""
        parsed = read_parsed(file_path)
        return read_json(file_path) if parsed is None else parsed


class OwnServicesLoader(Loader):
    """botocore's loader, but it lists only SERVICES as available, and reads its files with ParsedFiles.

    Before loading a client's first model of a kind, botocore lists every service it has data for, by
    walking its ~450 model directories (a listdir and a stat each), once for the service model and once
    for the endpoint rules: ~20 ms of a cold start, to check one name against the list.
    """

    FILE_LOADER_CLASS = ParsedFiles

    def list_available_services(self, type_name: str) -> list[str]:
        return [name for name in SERVICES if self._has_data(name, type_name)]

    def _has_data(self, service: str, type_name: str) -> bool:
        try:
            return bool(self.list_api_versions(service, type_name))
        except DataNotFoundError:
            return False


class ReusedParsers(ResponseParserFactory):
    """botocore's response parser factory, but one parser per protocol, reused by every call of every client.

    botocore makes a parser per response, and each holds a bound method of itself (its blob parser): a
    reference cycle, three objects a call that only the cyclic collector frees. With Decide's two calls a
    decision (caps Query, SQS send) the collector then ran every ~115 decisions, inside one. A parser keeps
    no state past its constructor's arguments, so one can parse every response of its protocol.
    """

    def __init__(self) -> None:
        super().__init__()
        self._parsers: dict[str, ResponseParser] = {}

    def set_parser_defaults(self, **kwargs: Any) -> None:
        super().set_parser_defaults(**kwargs)
        self._parsers.clear()

    def create_parser(self, protocol_name: str) -> ResponseParser:
        parser = self._parsers.get(protocol_name)
        if parser is None:
            parser = self._parsers[protocol_name] = super().create_parser(protocol_name)
        return parser


@cache
def verifying_context(ca_bundle: str) -> ssl.SSLContext:
    """botocore's TLS context with ``ca_bundle`` loaded: one per bundle per process (through ``_shared_context``)."""
    context: ssl.SSLContext = create_urllib3_context()
    context.load_verify_locations(ca_bundle)
    return context


_CONTEXT_LOCK = threading.Lock()


def _shared_context(ca_bundle: str) -> ssl.SSLContext:
    """``verifying_context``, one caller at a time: a cold start's first connections open together, on the first
    request's threads, and without the lock each would load the bundle before the first load was cached."""
    with _CONTEXT_LOCK:
        return verifying_context(ca_bundle)


class SharedCaSession(URLLib3Session):
    """botocore's HTTP session, but its verified HTTPS connections share ``verifying_context``: their CA bundle is
    loaded once per process, not once per connection.

    botocore sets the bundle's path on every connection pool, and urllib3 loads the file into the pool's TLS
    context for each connection it opens (urllib3#3623, botocore#3171). Under OpenSSL 3 that parses the whole
    bundle, ~15-20 ms of CPU for botocore's 250 KB (figure 11): Decide's cold start opens seven connections, and
    a warm function one for each connection AWS closed. Connections with a client certificate keep botocore's
    own context, into which urllib3 loads the certificate.
    """

    def _setup_ssl_cert(self, conn: Any, url: str, verify: Any) -> None:
        super()._setup_ssl_cert(conn, url, verify)  # type: ignore[misc]  # botocore's, not in its stubs
        if conn.ca_certs is not None and conn.cert_file is None:
            conn.conn_kw["ssl_context"] = _shared_context(conn.ca_certs)  # what the pool's connections use
            conn.ca_certs = None  # already in the context: urllib3 loads what it is given, every connection


@cache
def _session() -> boto3.session.Session:
    """One session per process: each new session re-reads botocore's service models (~75 ms a client)."""
    core = botocore.session.get_session()
    data_path = core.get_config_variable("data_path")  # AWS_DATA_PATH, honoured as botocore's own loader does
    extra_paths = (
        [os.path.expanduser(os.path.expandvars(path)) for path in data_path.split(os.pathsep)] if data_path else []
    )
    core.register_component("data_loader", OwnServicesLoader(extra_search_paths=extra_paths))
    core.register_component("response_parser_factory", ReusedParsers())
    return boto3.session.Session(botocore_session=core)


def share_ca_bundle(client: Any) -> None:
    """Make ``client``'s HTTP session a SharedCaSession: the same session and state, its connections verified
    against a CA bundle loaded once. botocore has no setting for the class of the sessions it makes."""
    session = client._endpoint.http_session
    if type(session) is URLLib3Session:
        session.__class__ = SharedCaSession


def _client(service: str, config: Config) -> Any:
    """Sessions are not thread-safe (the local stack runs functions on threads); clients are."""
    with _SESSION_LOCK:
        client = _session().client(service, config=config)  # type: ignore[call-overload]
        share_ca_bundle(client)
        _CLIENTS.add(client)
        return client


def drop_connections() -> None:
    """Close every client's pooled connections (the clients stay usable and reconnect on their next call).

    After a SnapStart restore the sockets opened before the snapshot are dead; a call on one would spend
    its one attempt (caps read, decision send) failing.
    """
    with _SESSION_LOCK:
        clients = list(_CLIENTS)
    for client in clients:
        client.close()


def dynamodb_client(*, connect_timeout: float = 1.0, read_timeout: float = 2.0, attempts: int = 3) -> "DynamoDBClient":
    client: DynamoDBClient = _client("dynamodb", _config(connect_timeout, read_timeout, attempts))
    return client


def sqs_client(*, connect_timeout: float = 1.0, read_timeout: float = 2.0, attempts: int = 3) -> "SQSClient":
    client: SQSClient = _client("sqs", _config(connect_timeout, read_timeout, attempts))
    return client


def s3_client(*, connect_timeout: float = 1.0, read_timeout: float = 5.0, attempts: int = 3) -> "S3Client":
    client: S3Client = _client("s3", _config(connect_timeout, read_timeout, attempts))
    return client


def secretsmanager_client(
    *, connect_timeout: float = 0.5, read_timeout: float = 0.5, attempts: int = 1
) -> "SecretsManagerClient":
    """Tight by default: keys are reloaded inline on a request, and a failed reload keeps the cached keys."""
    client: SecretsManagerClient = _client("secretsmanager", _config(connect_timeout, read_timeout, attempts))
    return client
