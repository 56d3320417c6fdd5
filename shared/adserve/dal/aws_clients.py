"""The functions' AWS clients: lean ones (``json_clients``, ``s3_rest``) with explicit time budgets.

A lean client needs, besides its budget, what botocore's session would resolve: credentials, region, endpoint,
CA bundle, proxy. In Lambda's environment the environment alone says all of it (credentials and region in
variables, no shared config file, no proxy, AWS's endpoints or ``AWS_ENDPOINT_URL*``), and it is read from there:
a function then never imports botocore's session, ~90 ms of its cold start. Anywhere else (a profile, a config
file, FIPS or dual-stack, a proxy, SnapStart's container credentials) botocore's session resolves it
(``botocore_session``), as it would for boto3. ``tests/unit/test_aws_environment.py`` holds the two to the same
answers.

botocore honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>, which is how the local stack and the tests
point every client at moto without a line of code here; both paths resolve them alike.
"""

import os
import re
import sys
from collections.abc import Mapping

import botocore
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from adserve.dal import aws_http
from adserve.dal.aws_http import ClientSettings, Endpoint, Resolved, TimeBudget, shared_context
from adserve.dal.json_clients import (
    DYNAMODB,
    SECRETS_MANAGER,
    SQS,
    DynamoDBJsonClient,
    SecretsManagerJsonClient,
    SQSJsonClient,
)
from adserve.dal.s3_rest import S3RestClient
from adserve.dal.sigv4 import Credentials

# What a failed AWS call raises, for callers outside dal/ that report it rather than handle it.
AWS_ERRORS: tuple[type[Exception], ...] = (BotoCoreError, ClientError)


_ENDPOINT_VARIABLE = {"dynamodb": "DYNAMODB", "sqs": "SQS", "secretsmanager": "SECRETS_MANAGER", "s3": "S3"}
"""Each service's ``AWS_ENDPOINT_URL_<id>`` (botocore's service id, upper case, spaces as underscores)."""
_AWS_PARTITION_REGION = re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+$")
"""The regions of the ``aws`` partition, as botocore's endpoints data matches them: hosts
``{service}.{region}.amazonaws.com``."""
_SESSION_SETTINGS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)
"""Variables that change what botocore's session resolves in ways the environment path does not follow."""


def _default_ca_bundle() -> str:
    """botocore's default CA bundle: certifi's where it is installed, else the one botocore ships."""
    try:
        from certifi import where  # noqa: PLC0415 - botocore's own choice, made the same way
    except ImportError:
        return os.path.join(os.path.dirname(botocore.__file__), "cacert.pem")
    return str(where())


def from_environment(
    service: str, endpoint_url: str | None, environ: Mapping[str, str] = os.environ
) -> Resolved | None:
    """What botocore's session would resolve for ``service``, read from ``environ`` alone, or None where anything
    outside it could change the answer (see the module docstring)."""
    config_file = os.path.expanduser(environ.get("AWS_CONFIG_FILE", "~/.aws/config"))
    region = environ.get("AWS_DEFAULT_REGION", "")
    if (
        not environ.get("AWS_ACCESS_KEY_ID")
        or not environ.get("AWS_SECRET_ACCESS_KEY")
        or not region
        or any(environ.get(name) for name in _SESSION_SETTINGS)
        or any(name.lower().endswith("_proxy") for name in environ)
        or os.path.isfile(config_file)
    ):
        return None
    configured = (
        endpoint_url
        or environ.get(f"AWS_ENDPOINT_URL_{_ENDPOINT_VARIABLE[service]}")
        or environ.get("AWS_ENDPOINT_URL")
    )
    if configured:
        endpoint = Endpoint(configured.rstrip("/"), region, service)
    elif _AWS_PARTITION_REGION.match(region):
        endpoint = Endpoint(f"https://{service}.{region}.amazonaws.com", region, service)
    else:
        return None

    def credentials() -> Credentials:
        """Read at each signature, as they are in the environment now."""
        access_key, secret_key = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
        if not access_key or not secret_key:
            raise NoCredentialsError()
        return Credentials(
            access_key, secret_key, environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN")
        )

    return Resolved(credentials, endpoint, bool(configured), environ.get("AWS_CA_BUNDLE") or _default_ca_bundle(), None)


def resolve(service: str, endpoint_url: str | None) -> Resolved:
    """From the environment where it says everything, else from botocore's session; ``endpoint_url`` overrides the
    endpoint, as boto3's argument of that name does."""
    resolved = from_environment(service, endpoint_url)
    if resolved is not None:
        return resolved
    from adserve.dal import botocore_session  # noqa: PLC0415 - ~90 ms of import, only where it is needed

    return botocore_session.resolve(service, endpoint_url)


def _settings(service: str, resolved: Resolved, budget: TimeBudget) -> ClientSettings:
    """A lean client's settings for ``service``, as resolved."""
    # Not at load: the CLI and the local stack import this module before the POWERTOOLS_* variables are set.
    from adserve.core.observability import tracer, tracing_enabled  # noqa: PLC0415

    ca_bundle = resolved.ca_bundle
    return ClientSettings(
        resolved.endpoint,
        resolved.credentials,
        budget,
        tls=lambda: shared_context(ca_bundle),
        user_agent=f"adserve-lean-client Botocore/{botocore.__version__} {service}",
        tracing=tracer.provider if tracing_enabled() else None,
        proxy=resolved.proxy,
    )


def drop_connections() -> None:
    """Close every client's kept-alive connections (the clients stay usable and reconnect on their next call).

    After a SnapStart restore the sockets opened before the snapshot are dead; a call on one would spend
    its one attempt (caps read, decision send) failing.
    """
    aws_http.close_all()
    botocore_clients = sys.modules.get("adserve.dal.botocore_session")  # none were made if it was never imported
    if botocore_clients is not None:
        botocore_clients.drop_connections()


def dynamodb_client(
    *, connect_timeout: float = 1.0, read_timeout: float = 2.0, attempts: int = 3, endpoint_url: str | None = None
) -> DynamoDBJsonClient:
    """DynamoDB without botocore's per-call CPU (``json_clients``): every item read and write of every function,
    the caps read of each decision and Record's transactions among them."""
    budget = TimeBudget(connect_timeout, read_timeout, attempts)
    return DynamoDBJsonClient(DYNAMODB, _settings(DYNAMODB.service, resolve(DYNAMODB.service, endpoint_url), budget))


def sqs_send_client(
    *, connect_timeout: float = 1.0, read_timeout: float = 2.0, attempts: int = 3, endpoint_url: str | None = None
) -> SQSJsonClient:
    """SQS's sends without botocore's per-call CPU (``json_clients``): a decision's record, a beacon's event."""
    budget = TimeBudget(connect_timeout, read_timeout, attempts)
    return SQSJsonClient(SQS, _settings(SQS.service, resolve(SQS.service, endpoint_url), budget))


def secretsmanager_client(
    *, connect_timeout: float = 0.5, read_timeout: float = 0.5, attempts: int = 1, endpoint_url: str | None = None
) -> SecretsManagerJsonClient:
    """GetSecretValue through a lean client (``json_clients``). Tight by default: keys are reloaded inline on a
    request, and a failed reload keeps the cached keys."""
    budget = TimeBudget(connect_timeout, read_timeout, attempts)
    return SecretsManagerJsonClient(
        SECRETS_MANAGER, _settings(SECRETS_MANAGER.service, resolve(SECRETS_MANAGER.service, endpoint_url), budget)
    )


def s3_client(
    *, connect_timeout: float = 1.0, read_timeout: float = 5.0, attempts: int = 3, endpoint_url: str | None = None
) -> S3RestClient:
    """S3's object calls through a lean client (``s3_rest``): the model pointer and models, the catalog
    snapshots, Record's log objects, the erasure ledger, the readers' listings."""
    budget = TimeBudget(connect_timeout, read_timeout, attempts)
    resolved = resolve("s3", endpoint_url)
    return S3RestClient(_settings("s3", resolved, budget), virtual_hosted=not resolved.configured)
