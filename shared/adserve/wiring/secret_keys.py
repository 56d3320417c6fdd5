"""The HMAC keys from Secrets Manager: tracking-token keys (Decide signs, Track verifies) and pseudonym keys."""

from datetime import timedelta

from adserve.core.observability import MetricName, counting_failures
from adserve.core.refreshing import RefreshingValue
from adserve.dal.json_clients import SecretsManagerJsonClient
from adserve.dal.secret_keys import read_pseudonymizer, read_signer
from adserve.outcomes.key_cache import (
    KEY_ADOPTION_SECONDS,
    KEY_CACHE_SECONDS,
    UNKNOWN_KEY_REFRESH_SECONDS,
    SigningKeyCache,
)
from adserve.privacy.pseudonyms import Pseudonymizer

FIRST_LOAD_ATTEMPTS = 3
"""Reads of a secret an environment holds no keys of yet: its client has a tight budget and one attempt, right for
a reload (the cached keys serve meanwhile), but without keys nothing can be signed, verified or pseudonymised, so
a cold start's read tries again at once (at most 3 x 1 s against Secrets Manager) instead of failing the request."""


def signing_keys(
    client: SecretsManagerJsonClient,
    secret_id: str,
    *,
    unknown_key_refresh_seconds: float = UNKNOWN_KEY_REFRESH_SECONDS,
    adoption_seconds: float = KEY_ADOPTION_SECONDS,
) -> SigningKeyCache:
    """One cache per execution environment, reading AWSCURRENT and AWSPREVIOUS of *secret_id*; a new key signs
    once it is *adoption_seconds* old (``read_signer``)."""
    adopt_after = timedelta(seconds=adoption_seconds)
    return SigningKeyCache(
        lambda: read_signer(client, secret_id, adopt_after=adopt_after),
        unknown_key_refresh_seconds=unknown_key_refresh_seconds,
        first_load_attempts=FIRST_LOAD_ATTEMPTS,
    )


def pseudonym_keys(client: SecretsManagerJsonClient, secret_id: str) -> RefreshingValue[Pseudonymizer]:
    """The pseudonym keys, reloaded every few minutes so a rotation reaches every environment; a failed reload
    keeps the cached keys (a listener's counters must not move to another pseudonym because of an outage) and is
    counted (PseudonymKeyRefreshFailures)."""
    return RefreshingValue(
        counting_failures(lambda: read_pseudonymizer(client, secret_id), MetricName.PSEUDONYM_KEY_REFRESH_FAILURES),
        KEY_CACHE_SECONDS,
        name="pseudonym keys",
        first_load_attempts=FIRST_LOAD_ATTEMPTS,
    )
