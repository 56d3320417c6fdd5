"""Which key Decide signs with after a rotation: the new one only once every Track can have loaded it."""

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from adserve.dal.json_clients import SecretsManagerJsonClient
from adserve.dal.secret_keys import read_signer
from adserve.outcomes.key_cache import KEY_ADOPTION_SECONDS
from adserve.outcomes.tokens import key_id
from adserve.wiring.settings import DecideSettings, TrackSettings
from annotated_types import Le
from botocore.exceptions import ClientError

ROTATED_AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
OLD, NEW = b"o" * 64, b"n" * 64


class Versions:
    """GetSecretValue of a secret with these versions by stage, as the lean client answers it."""

    def __init__(self, **stages: tuple[bytes, datetime]) -> None:
        self.stages = stages

    def get_secret_value(self, *, SecretId: str, VersionStage: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        if VersionStage not in self.stages:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no"}}, "GetSecretValue")
        key, created = self.stages[VersionStage]
        return {"SecretString": key.decode(), "CreatedDate": created}


def client(versions: Versions) -> SecretsManagerJsonClient:
    return cast("SecretsManagerJsonClient", versions)


ADOPTION = timedelta(seconds=KEY_ADOPTION_SECONDS)
ROTATED = Versions(AWSCURRENT=(NEW, ROTATED_AT), AWSPREVIOUS=(OLD, ROTATED_AT - timedelta(days=30)))


@pytest.mark.parametrize(
    ("age", "signs_with"), [(timedelta(seconds=10), OLD), (timedelta(seconds=329), OLD), (timedelta(seconds=330), NEW)]
)
def test_a_rotated_key_signs_only_once_it_is_older_than_the_adoption_delay(age: timedelta, signs_with: bytes) -> None:
    signer = read_signer(client(ROTATED), "s", adopt_after=ADOPTION, now=ROTATED_AT + age)
    # Both keys verify either way; the first is the one that signs
    assert set(signer.key_ids) == {key_id(OLD), key_id(NEW)}
    assert signer.key_ids[0] == key_id(signs_with)


def test_a_secret_never_rotated_signs_with_its_only_key_however_young() -> None:
    fresh = Versions(AWSCURRENT=(NEW, ROTATED_AT))
    signer = read_signer(client(fresh), "s", adopt_after=ADOPTION, now=ROTATED_AT)
    assert signer.key_ids == (key_id(NEW),)


def test_the_delay_outlasts_the_longest_reload_interval_track_allows() -> None:
    longest = [
        bound.le
        for bound in TrackSettings.model_fields["unknown_key_refresh_seconds"].metadata
        if isinstance(bound, Le)
    ]
    assert longest == [300.0]
    assert KEY_ADOPTION_SECONDS > 300.0
    assert DecideSettings.model_fields["signing_key_adoption_seconds"].default == KEY_ADOPTION_SECONDS
