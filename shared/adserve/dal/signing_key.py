"""The tracking-token HMAC keys from Secrets Manager: the versions staged AWSCURRENT and AWSPREVIOUS.

Writing a new value (`put-secret-value`, or a rotation) moves AWSCURRENT to it and AWSPREVIOUS to the value
it replaces, so the pair is exactly what Track must accept while the old key's tokens are still out.
"""

from typing import TYPE_CHECKING

from adserve.outcomes.tokens import TokenSigner

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import GetSecretValueResponseTypeDef


def read_signer(client: "SecretsManagerClient", secret_id: str) -> TokenSigner:
    """A signer with the current key and, once the secret has been rotated, the previous one."""
    current = _key(client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT"))
    try:
        previous = _key(client.get_secret_value(SecretId=secret_id, VersionStage="AWSPREVIOUS"))
    except client.exceptions.ResourceNotFoundException:  # the label exists only after a first rotation
        previous = None
    return TokenSigner(current, previous)


def _key(version: "GetSecretValueResponseTypeDef") -> bytes:
    return version["SecretString"].encode() if "SecretString" in version else version["SecretBinary"]
