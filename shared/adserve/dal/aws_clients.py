"""botocore clients with explicit time budgets, and the lean JSON clients (``json_clients``) made from the same session.

botocore honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>, which is how the local stack and the tests
point every client at moto without a line of code here; the lean clients resolve their endpoint as botocore does.
"""

import os
import ssl
import threading
import weakref
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import botocore
import botocore.session
from botocore.config import Config
from botocore.configprovider import ConfiguredEndpointProvider
from botocore.exceptions import BotoCoreError, ClientError, DataNotFoundError, NoCredentialsError, NoRegionError
from botocore.httpsession import ProxyConfiguration, URLLib3Session, create_urllib3_context, get_cert_path
from botocore.loaders import JSONFileLoader, Loader
from botocore.parsers import ResponseParser, ResponseParserFactory
from botocore.utils import get_environ_proxies

from adserve.dal import json_clients
from adserve.dal.json_clients import (
    DYNAMODB,
    SECRETS_MANAGER,
    SQS,
    DynamoDBJsonClient,
    Endpoint,
    JsonProtocol,
    Proxy,
    SecretsManagerJsonClient,
    SQSJsonClient,
    TimeBudget,
)
from adserve.dal.sdk_models import SERVICES, read_json, read_parsed
from adserve.dal.sigv4 import Credentials

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
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
    """botocore's TLS context with ``ca_bundle`` loaded: one per bundle per process (through ``_shared_context``).

    It checks host names itself (botocore's turns that off and leaves it to urllib3, which then leaves it to the
    context): the lean JSON clients' ``http.client`` connections share it and have no check of their own.
    """
    context: ssl.SSLContext = create_urllib3_context()
    context.check_hostname = True
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
def _session() -> botocore.session.Session:
    """One botocore session per process: each new session re-reads botocore's service models (~75 ms a client).
    Not boto3's: its clients are botocore's, and importing boto3 (with s3transfer) costs every cold start."""
    core = botocore.session.get_session()
    data_path = core.get_config_variable("data_path")  # AWS_DATA_PATH, honoured as botocore's own loader does
    extra_paths = (
        [os.path.expanduser(os.path.expandvars(path)) for path in data_path.split(os.pathsep)] if data_path else []
    )
    core.register_component("data_loader", OwnServicesLoader(extra_search_paths=extra_paths))
    core.register_component("response_parser_factory", ReusedParsers())
    return core


def share_ca_bundle(client: Any) -> None:
    """Make ``client``'s HTTP session a SharedCaSession: the same session and state, its connections verified
    against a CA bundle loaded once. botocore has no setting for the class of the sessions it makes."""
    session = client._endpoint.http_session
    if type(session) is URLLib3Session:
        session.__class__ = SharedCaSession


def _client(service: str, config: Config) -> Any:
    """Sessions are not thread-safe (the local stack runs functions on threads); clients are."""
    with _SESSION_LOCK:
        client = _session().create_client(service, config=config)
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
    json_clients.close_all()


def _json_endpoint(core: botocore.session.Session, service: str, region: str) -> Endpoint:
    """Where boto3 would send ``service``'s calls: a configured endpoint URL (``AWS_ENDPOINT_URL_<SERVICE>``,
    ``AWS_ENDPOINT_URL``, the shared config) unless told to ignore them, else the region's endpoint in its
    partition (FIPS and dual-stack as configured), signed for the partition's credential scope."""
    if not core.get_config_variable("ignore_configured_endpoint_urls"):
        configured = ConfiguredEndpointProvider(core.full_config, core.get_scoped_config(), service).provide()
        if configured:
            return Endpoint(configured.rstrip("/"), region, service)
    resolver = core._get_internal_component("endpoint_resolver")  # type: ignore[attr-defined]  # not in its stubs
    resolved = resolver.construct_endpoint(
        service,
        region,
        use_dualstack_endpoint=bool(core.get_config_variable("use_dualstack_endpoint")),
        use_fips_endpoint=bool(core.get_config_variable("use_fips_endpoint")),
    )
    if not resolved:
        raise NoRegionError()
    scope = resolved.get("credentialScope", {})
    return Endpoint(f"https://{resolved['hostname']}", scope.get("region", region), scope.get("service", service))


def _proxy(url: str) -> Proxy | None:
    """The proxy botocore would send ``url``'s calls through (``HTTPS_PROXY``/``HTTP_PROXY``, ``NO_PROXY``)."""
    settings = ProxyConfiguration(proxies=get_environ_proxies(url))
    proxy_url = settings.proxy_url_for(url)
    if not proxy_url:
        return None
    parts = urlsplit(proxy_url)
    return Proxy(f"{parts.scheme}://{parts.hostname}:{parts.port or 80}", settings.proxy_headers_for(proxy_url))


def _json_client(
    kind: type[json_clients.JsonClient], protocol: JsonProtocol, budget: TimeBudget, endpoint_url: str | None
) -> Any:
    """A lean client of ``protocol``'s service with the session's credentials, region, endpoint and CA bundle;
    ``endpoint_url`` overrides the endpoint, as boto3's argument of that name does."""
    # Not at load: the CLI and the local stack import this module before the POWERTOOLS_* variables are set.
    from adserve.core.observability import tracer, tracing_enabled  # noqa: PLC0415

    with _SESSION_LOCK:
        core = _session()
        credentials = core.get_credentials()
        region = core.get_config_variable("region")
        if region is None:
            raise NoRegionError()
        endpoint = (
            Endpoint(endpoint_url.rstrip("/"), region, protocol.service)
            if endpoint_url
            else _json_endpoint(core, protocol.service, region)
        )
        ca_bundle = get_cert_path(core.get_config_variable("ca_bundle") or True)
    if credentials is None:
        raise NoCredentialsError()
    if ca_bundle is None:
        raise ValueError("no CA bundle to verify AWS's certificates against")

    def frozen() -> Credentials:
        """botocore refreshes them when they are about to expire (container credentials under SnapStart)."""
        current = credentials.get_frozen_credentials()
        if current.access_key is None or current.secret_key is None:
            raise NoCredentialsError()
        return Credentials(current.access_key, current.secret_key, current.token)

    return kind(
        protocol,
        endpoint,
        frozen,
        budget,
        proxy=_proxy(endpoint.url),
        tls=lambda: _shared_context(ca_bundle),
        user_agent=f"adserve-json-client Botocore/{botocore.__version__} {protocol.service}",
        tracing=tracer.provider if tracing_enabled() else None,
    )


def botocore_client(service: str, *, connect_timeout: float = 1.0, read_timeout: float = 2.0, attempts: int = 3) -> Any:
    """A botocore client of any of SERVICES as adserve makes them (session, loader, parsers, CA bundle): S3's for
    the functions, the others for tools and for the bench's peer of the lean clients."""
    return _client(service, _config(connect_timeout, read_timeout, attempts))


def sqs_client(*, connect_timeout: float = 1.0, read_timeout: float = 2.0, attempts: int = 3) -> "SQSClient":
    """All of SQS, for tools; the functions send through ``sqs_send_client``."""
    client: SQSClient = botocore_client(
        "sqs", connect_timeout=connect_timeout, read_timeout=read_timeout, attempts=attempts
    )
    return client


def dynamodb_client(
    *, connect_timeout: float = 1.0, read_timeout: float = 2.0, attempts: int = 3, endpoint_url: str | None = None
) -> DynamoDBJsonClient:
    """DynamoDB without botocore's per-call CPU (``json_clients``): every item read and write of every function,
    the caps read of each decision and Record's transactions among them."""
    budget = TimeBudget(connect_timeout, read_timeout, attempts)
    client: DynamoDBJsonClient = _json_client(DynamoDBJsonClient, DYNAMODB, budget, endpoint_url)
    return client


def sqs_send_client(
    *, connect_timeout: float = 1.0, read_timeout: float = 2.0, attempts: int = 3, endpoint_url: str | None = None
) -> SQSJsonClient:
    """SQS's sends without botocore's per-call CPU (``json_clients``): a decision's record, a beacon's event."""
    budget = TimeBudget(connect_timeout, read_timeout, attempts)
    client: SQSJsonClient = _json_client(SQSJsonClient, SQS, budget, endpoint_url)
    return client


def s3_client(*, connect_timeout: float = 1.0, read_timeout: float = 5.0, attempts: int = 3) -> "S3Client":
    client: S3Client = botocore_client(
        "s3", connect_timeout=connect_timeout, read_timeout=read_timeout, attempts=attempts
    )
    return client


def secretsmanager_client(
    *, connect_timeout: float = 0.5, read_timeout: float = 0.5, attempts: int = 1, endpoint_url: str | None = None
) -> SecretsManagerJsonClient:
    """GetSecretValue through a lean client (``json_clients``): no botocore client for the keys' reads. Tight by
    default: keys are reloaded inline on a request, and a failed reload keeps the cached keys."""
    budget = TimeBudget(connect_timeout, read_timeout, attempts)
    client: SecretsManagerJsonClient = _json_client(SecretsManagerJsonClient, SECRETS_MANAGER, budget, endpoint_url)
    return client
