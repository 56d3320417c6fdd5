"""Where the environment alone says what botocore's session would resolve for a lean client, aws_clients reads it
from there, and the answer is the session's; anywhere else it leaves the answer to the session."""

import os
from pathlib import Path

import pytest
from adserve.dal import botocore_session
from adserve.dal.aws_clients import from_environment
from adserve.dal.aws_http import Resolved
from adserve.dal.sdk_models import SERVICES
from botocore.exceptions import NoCredentialsError
from botocore.httpsession import get_cert_path

LAMBDA = {"AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token"}


@pytest.fixture
def lambda_like(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Lambda's variables and no shared config file; nothing else of the host's AWS settings."""
    for name in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_CA_BUNDLE",
        "AWS_USE_FIPS_ENDPOINT",
        "AWS_USE_DUALSTACK_ENDPOINT",
        *(f"AWS_ENDPOINT_URL_{name}" for name in ("DYNAMODB", "SQS", "SECRETS_MANAGER", "S3")),
        *(name for name in os.environ if name.lower().endswith("_proxy")),
    ]:
        monkeypatch.delenv(name, raising=False)
    environ = {**LAMBDA, "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no")}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return environ


def sessions_answer(service: str, region: str, monkeypatch: pytest.MonkeyPatch) -> Resolved:
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    botocore_session.session.cache_clear()
    try:
        return botocore_session.resolve(service, None)
    finally:
        botocore_session.session.cache_clear()


@pytest.mark.parametrize("service", SERVICES)
def test_in_every_region_of_the_aws_partition_the_endpoint_is_the_sessions(
    service: str, lambda_like: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    regions = botocore_session.session().get_available_regions(service)
    assert len(regions) > 20
    for region in regions:
        ours = from_environment(service, None, {**lambda_like, "AWS_DEFAULT_REGION": region})
        theirs = sessions_answer(service, region, monkeypatch)
        assert ours is not None, region
        assert (ours.endpoint, ours.configured, ours.ca_bundle) == (theirs.endpoint, False, theirs.ca_bundle)
        assert ours.credentials() == theirs.credentials() == ("ASIAEXAMPLE", "secret", "token")


def test_configured_endpoints_and_bundles_are_the_sessions(
    lambda_like: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = {
        **lambda_like,
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566/",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
        "AWS_CA_BUNDLE": "/etc/ssl/own-bundle.pem",
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    for service in SERVICES:
        ours = from_environment(service, None, environ)
        theirs = sessions_answer(service, "eu-west-1", monkeypatch)
        assert ours is not None
        assert (ours.endpoint, ours.configured, ours.ca_bundle) == (theirs.endpoint, True, theirs.ca_bundle)
    assert from_environment("s3", None, environ).endpoint.url == "http://127.0.0.1:9000"  # type: ignore[union-attr]
    given = from_environment("sqs", "http://localhost:1234", environ)
    assert given is not None
    assert given.endpoint.url == "http://localhost:1234"


def test_the_default_bundle_is_botocores(lambda_like: dict[str, str]) -> None:
    resolved = from_environment("dynamodb", None, {**lambda_like, "AWS_DEFAULT_REGION": "us-east-1"})
    assert resolved is not None
    assert resolved.ca_bundle == get_cert_path(True)


@pytest.mark.parametrize(
    "change",
    [
        {"AWS_PROFILE": "other"},
        {"AWS_USE_FIPS_ENDPOINT": "true"},
        {"AWS_USE_DUALSTACK_ENDPOINT": "true"},
        {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
        {"HTTPS_PROXY": "http://proxy:3128"},
        {"no_proxy": "example.com"},
        {"AWS_DEFAULT_REGION": "cn-north-1"},
        {"AWS_DEFAULT_REGION": "us-gov-west-1"},
        {"AWS_DEFAULT_REGION": ""},
        {"AWS_ACCESS_KEY_ID": ""},
        {"AWS_SECRET_ACCESS_KEY": ""},
    ],
)
def test_anything_the_environment_path_does_not_follow_is_left_to_the_session(
    change: dict[str, str], lambda_like: dict[str, str]
) -> None:
    environ = {**lambda_like, "AWS_DEFAULT_REGION": "eu-west-1"}
    assert from_environment("dynamodb", None, environ) is not None
    assert from_environment("dynamodb", None, {**environ, **change}) is None


def test_a_shared_config_file_is_left_to_the_session(lambda_like: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\nendpoint_url = http://127.0.0.1:4566\n")
    environ = {**lambda_like, "AWS_DEFAULT_REGION": "eu-west-1", "AWS_CONFIG_FILE": str(config)}
    assert from_environment("dynamodb", None, environ) is None


def test_credentials_are_read_at_each_signature() -> None:
    environ = {**LAMBDA, "AWS_DEFAULT_REGION": "eu-west-1", "AWS_CONFIG_FILE": "/no/such/config"}
    resolved = from_environment("sqs", None, environ)
    assert resolved is not None
    environ.update(AWS_ACCESS_KEY_ID="ASIAROTATED", AWS_SESSION_TOKEN="token-2")
    assert resolved.credentials() == ("ASIAROTATED", "secret", "token-2")
    del environ["AWS_SECRET_ACCESS_KEY"]
    with pytest.raises(NoCredentialsError):
        resolved.credentials()
