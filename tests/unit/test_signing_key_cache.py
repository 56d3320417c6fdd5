"""The keys an execution environment holds across a rotation: cached, reloaded early (rate-limited) for a
token naming a key it lacks, and kept serving when a reload fails."""

from collections.abc import Iterator
from typing import Any

import pytest
from adserve.core.errors import SecretKeysUnavailableError, TokenError
from adserve.core.observability import MetricName, metrics
from adserve.core.vocabulary import EventType
from adserve.outcomes.api import EventBatchRequest, RejectionCode
from adserve.outcomes.key_cache import SigningKeyCache
from adserve.outcomes.tokens import TokenSigner, UnknownKeyError
from adserve.outcomes.tracking import TrackingService

from devstack.fakes import InMemoryOutcomeQueue
from tests.support.builders import NOW, tracking_claims

OLD = b"o" * 32
NEW = b"n" * 32
NEWER = b"w" * 32
CLAIMS = tracking_claims()


class SecretVersions:
    """Stands in for Secrets Manager: the current key and the previous one, rotated by the test."""

    def __init__(self) -> None:
        self.current: bytes = OLD
        self.previous: bytes | None = None
        self.loads = 0
        self.failing = False

    def rotate(self, key: bytes) -> None:
        self.current, self.previous = key, self.current

    def load(self) -> TokenSigner:
        self.loads += 1
        if self.failing:
            raise ConnectionError("secrets manager unreachable")
        return TokenSigner(self.current, self.previous)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def emitted() -> Iterator[dict[str, Any]]:
    metrics.clear_metrics()
    yield metrics.metric_set
    metrics.clear_metrics()


@pytest.fixture
def secret() -> SecretVersions:
    return SecretVersions()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def cache(secret: SecretVersions, clock: Clock) -> SigningKeyCache:
    return SigningKeyCache(secret.load, ttl_seconds=300, unknown_key_refresh_seconds=10, monotonic=clock)


def test_keys_are_read_once_per_ttl(secret: SecretVersions, clock: Clock) -> None:
    keys = cache(secret, clock)
    assert keys.signer() is keys.signer()
    clock.now = 299
    keys.signer()
    assert secret.loads == 1
    clock.now = 300
    keys.signer()
    assert secret.loads == 2


def test_a_token_of_a_key_newer_than_the_cache_reloads_it_at_most_every_interval(
    secret: SecretVersions, clock: Clock
) -> None:
    # Given Track's cache loaded before a rotation Decide has already picked up
    keys = cache(secret, clock)
    keys.signer()
    clock.now = 5
    secret.rotate(NEW)
    token = TokenSigner(NEW, OLD).sign(CLAIMS)
    with pytest.raises(UnknownKeyError):
        keys.signer().verify(token, EventType.IMPRESSION, NOW)
    # Within the interval an unknown key does not reload (a stream of forged ids costs nothing)
    assert keys.signer_after_unknown_key().key_ids == TokenSigner(OLD).key_ids
    assert secret.loads == 1
    # After it, the keys are reloaded once and the token verifies
    clock.now = 10
    assert keys.signer_after_unknown_key().verify(token, EventType.IMPRESSION, NOW) == CLAIMS
    assert keys.signer_after_unknown_key() is keys.signer()
    assert secret.loads == 2


def test_a_failed_reload_keeps_the_cached_keys_serving(
    secret: SecretVersions, clock: Clock, emitted: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    keys = cache(secret, clock)
    token = keys.signer().sign(CLAIMS)
    secret.failing = True
    clock.now = 300
    assert keys.signer().verify(token, EventType.IMPRESSION, NOW) == CLAIMS
    assert sum(emitted[MetricName.SIGNING_KEY_REFRESH_FAILURES]["Value"]) == 1
    assert any(record.msg == "refresh failed; serving the previous value" for record in caplog.records)
    # The next attempt waits: a Secrets Manager outage is not hammered, even by unknown key ids, whose tokens are
    # answered "retry" meanwhile (the key they name may be one the cache could not fetch), not refused for good
    with pytest.raises(SecretKeysUnavailableError):
        keys.signer_after_unknown_key()
    assert secret.loads == 2
    clock.now = 310
    with pytest.raises(SecretKeysUnavailableError):
        keys.signer_after_unknown_key()
    assert secret.loads == 3
    assert sum(emitted[MetricName.SIGNING_KEY_REFRESH_FAILURES]["Value"]) == 2


def test_with_nothing_cached_a_failed_load_is_an_error(secret: SecretVersions, clock: Clock) -> None:
    secret.failing = True
    with pytest.raises(ConnectionError):
        cache(secret, clock).signer()


def test_track_accepts_a_token_of_a_key_it_has_not_loaded_yet(secret: SecretVersions, clock: Clock) -> None:
    # Given Track warmed up on the old key, then a rotation, and a Decide that reloaded first
    queue = InMemoryOutcomeQueue()
    tracker = TrackingService(queue=queue, keys=cache(secret, clock), clock=lambda: NOW)
    tracker.record_beacon(EventType.IMPRESSION, TokenSigner(OLD).sign(CLAIMS))
    clock.now = 60
    secret.rotate(NEW)
    fresh = TokenSigner(NEW).sign(CLAIMS)
    # Then the new token is accepted at once (the keys are reloaded), and so is one of the old key
    assert tracker.record_beacon(EventType.IMPRESSION, fresh).decision_id == CLAIMS.decision_id
    assert tracker.record_beacon(EventType.IMPRESSION, TokenSigner(OLD).sign(CLAIMS)).ad_id == CLAIMS.ad_id
    assert secret.loads == 2
    # After a second rotation, once the cache has expired, the first key is gone: its tokens are refused,
    # in a batch as for a beacon
    clock.now = 360
    secret.rotate(NEWER)
    with pytest.raises(TokenError):
        tracker.record_beacon(EventType.IMPRESSION, TokenSigner(OLD).sign(CLAIMS))
    assert secret.loads == 3
    batch = EventBatchRequest.model_validate(
        {
            "events": [
                {"event_id": "old", "type": "impression", "token": TokenSigner(OLD).sign(CLAIMS), "occurred_at": NOW},
                {"event_id": "new", "type": "impression", "token": TokenSigner(NEW).sign(CLAIMS), "occurred_at": NOW},
            ]
        }
    )
    response = tracker.record_batch(batch)
    assert [(result.status, result.code) for result in response.results] == [
        ("rejected", RejectionCode.INVALID_TOKEN),
        ("accepted", None),
    ]
    assert len(queue.events) == 4
