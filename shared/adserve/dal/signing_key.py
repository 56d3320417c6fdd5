"""The tracking-token HMAC key, from Secrets Manager, cached per execution environment."""

from aws_lambda_powertools.utilities import parameters

from adserve.outcomes.tokens import TokenSigner

KEY_CACHE_SECONDS = 300


def load_signer(secret_id: str) -> TokenSigner:
    """Re-reads the secret at most every KEY_CACHE_SECONDS, so a rotated key reaches warm functions."""
    secret = parameters.get_secret(secret_id, max_age=KEY_CACHE_SECONDS)
    return TokenSigner(secret.encode() if isinstance(secret, str) else secret)
