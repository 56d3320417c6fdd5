"""The tracking-token keys, wired the same way for Decide (which signs) and Track (which verifies)."""

from adserve.dal.aws_clients import secretsmanager_client
from adserve.dal.signing_key import read_signer
from adserve.outcomes.key_cache import SigningKeyCache


def signing_keys(secret_id: str) -> SigningKeyCache:
    """One cache per execution environment, reading AWSCURRENT and AWSPREVIOUS of *secret_id*."""
    client = secretsmanager_client()
    return SigningKeyCache(lambda: read_signer(client, secret_id))
