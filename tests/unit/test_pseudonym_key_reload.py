"""A failed reload of the pseudonym keys keeps the cached keys pseudonymising, and is counted: the cache hides the
failure from every request, so only the metric can page on a rotation that no environment adopts."""

from collections.abc import Iterator
from typing import Any, cast

import pytest
from adserve.core.observability import MetricName, metrics
from adserve.dal.json_clients import SecretsManagerJsonClient
from adserve.wiring.secret_keys import pseudonym_keys
from botocore.exceptions import ClientError

KEY = "k" * 48


class SecretsManager:
    """One secret, never rotated, that fails every read once ``down``."""

    down = False

    def get_secret_value(self, *, SecretId: str, VersionStage: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        if self.down:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetSecretValue")
        if VersionStage == "AWSPREVIOUS":
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "-"}}, "GetSecretValue")
        return {"SecretString": KEY, "Name": SecretId}


@pytest.fixture(autouse=True)
def emitted() -> Iterator[dict[str, Any]]:
    metrics.clear_metrics()
    yield metrics.metric_set
    metrics.clear_metrics()


def test_a_failed_reload_keeps_the_cached_keys_and_is_counted(emitted: dict[str, Any]) -> None:
    # Given an environment that loaded the pseudonym keys
    secrets = SecretsManager()
    keys = pseudonym_keys(cast("SecretsManagerJsonClient", secrets), "pseudonym-key")
    pseudonym = keys.get().listener("listener-1")
    assert MetricName.PSEUDONYM_KEY_REFRESH_FAILURES not in emitted
    # When Secrets Manager fails the next reload
    secrets.down = True
    keys.expire()
    # Then the cached keys still give the same pseudonym, and the failure is counted once
    assert keys.get().listener("listener-1") == pseudonym
    assert emitted[MetricName.PSEUDONYM_KEY_REFRESH_FAILURES]["Value"] == [1.0]
