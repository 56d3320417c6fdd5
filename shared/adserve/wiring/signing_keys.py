"""The tracking-token keys, wired the same way for Decide (which signs) and Track (which verifies)."""

from adserve.dal.aws_clients import secretsmanager_client
from adserve.dal.signing_key import read_signer
from adserve.outcomes.key_cache import UNKNOWN_KEY_REFRESH_SECONDS, SigningKeyCache


def signing_keys(secret_id: str, unknown_key_refresh_seconds: float = UNKNOWN_KEY_REFRESH_SECONDS) -> SigningKeyCache:
    """One cache per execution environment, reading AWSCURRENT and AWSPREVIOUS of *secret_id*."""
    client = secretsmanager_client()
    return SigningKeyCache(
        lambda: read_signer(client, secret_id), unknown_key_refresh_seconds=unknown_key_refresh_seconds
    )
