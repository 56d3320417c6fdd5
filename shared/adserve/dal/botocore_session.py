"""botocore's session as adserve uses it: for the tools' and benches' botocore clients, and for resolving what a lean
client needs (``aws_clients``) wherever the environment alone does not say it.

Imported only when needed: importing botocore's session costs a cold start ~90 ms, and a function in Lambda's
environment resolves its lean clients without it.
"""

import os
import threading
import weakref
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import botocore.session
from botocore.config import Config
from botocore.configprovider import ConfiguredEndpointProvider
from botocore.exceptions import DataNotFoundError, NoCredentialsError, NoRegionError
from botocore.httpsession import ProxyConfiguration, URLLib3Session, get_cert_path
from botocore.loaders import JSONFileLoader, Loader
from botocore.parsers import ResponseParser, ResponseParserFactory
from botocore.utils import get_environ_proxies

from adserve.dal.aws_http import Endpoint, Proxy, Resolved, shared_context
from adserve.dal.sdk_models import SERVICES, read_json, read_parsed
from adserve.dal.sigv4 import Credentials

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


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
            conn.conn_kw["ssl_context"] = shared_context(conn.ca_certs)  # what the pool's connections use
            conn.ca_certs = None  # already in the context: urllib3 loads what it is given, every connection


@cache
def session() -> botocore.session.Session:
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
        client = session().create_client(service, config=config)
        share_ca_bundle(client)
        _CLIENTS.add(client)
        return client


def drop_connections() -> None:
    """Close every botocore client's pooled connections (they stay usable and reconnect on their next call)."""
    with _SESSION_LOCK:
        clients = list(_CLIENTS)
    for client in clients:
        client.close()


def _endpoint(core: botocore.session.Session, service: str, region: str) -> tuple[Endpoint, bool]:
    """Where boto3 would send ``service``'s calls, and whether it is a configured URL: one of
    ``AWS_ENDPOINT_URL_<SERVICE>``, ``AWS_ENDPOINT_URL``, the shared config, unless told to ignore them; else the
    region's endpoint in its partition (FIPS and dual-stack as configured), signed for its credential scope."""
    if not core.get_config_variable("ignore_configured_endpoint_urls"):
        configured = ConfiguredEndpointProvider(core.full_config, core.get_scoped_config(), service).provide()
        if configured:
            return Endpoint(configured.rstrip("/"), region, service), True
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
    endpoint = Endpoint(f"https://{resolved['hostname']}", scope.get("region", region), scope.get("service", service))
    return endpoint, False


def _proxy(url: str) -> Proxy | None:
    """The proxy botocore would send ``url``'s calls through (``HTTPS_PROXY``/``HTTP_PROXY``, ``NO_PROXY``)."""
    settings = ProxyConfiguration(proxies=get_environ_proxies(url))
    proxy_url = settings.proxy_url_for(url)
    if not proxy_url:
        return None
    parts = urlsplit(proxy_url)
    return Proxy(f"{parts.scheme}://{parts.hostname}:{parts.port or 80}", settings.proxy_headers_for(proxy_url))


def resolve(service: str, endpoint_url: str | None) -> Resolved:
    """What a lean client of ``service`` needs, as botocore's session resolves it: credentials (refreshed as
    botocore refreshes them), region, endpoint, CA bundle, proxy; ``endpoint_url`` overrides the endpoint."""
    with _SESSION_LOCK:
        core = session()
        credentials = core.get_credentials()
        region = core.get_config_variable("region")
        if region is None:
            raise NoRegionError()
        endpoint, configured = (
            (Endpoint(endpoint_url.rstrip("/"), region, service), True)
            if endpoint_url
            else _endpoint(core, service, region)
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

    return Resolved(frozen, endpoint, configured, ca_bundle, _proxy(endpoint.url))


def botocore_client(service: str, *, connect_timeout: float = 1.0, read_timeout: float = 2.0, attempts: int = 3) -> Any:
    """A botocore client of any of SERVICES as adserve makes them (session, loader, parsers, CA bundle): for tools,
    and for the bench's peer of the lean clients."""
    return _client(service, _config(connect_timeout, read_timeout, attempts))


def sqs_client(*, connect_timeout: float = 1.0, read_timeout: float = 2.0, attempts: int = 3) -> "SQSClient":
    """All of SQS, for tools; the functions send through ``aws_clients.sqs_send_client``."""
    client: SQSClient = botocore_client(
        "sqs", connect_timeout=connect_timeout, read_timeout=read_timeout, attempts=attempts
    )
    return client
