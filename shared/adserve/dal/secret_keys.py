"""HMAC keys from Secrets Manager: the versions staged AWSCURRENT and AWSPREVIOUS.

Writing a new value (`put-secret-value`, or a rotation) moves AWSCURRENT to it and AWSPREVIOUS to the value
it replaces. For the tracking-token key the pair is exactly what Track must accept while the old key's tokens
are still out; for the pseudonym key it is where erasure must look after a rotation.
"""

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from adserve.dal.json_clients import SecretsManagerJsonClient
from adserve.outcomes.tokens import TokenSigner
from adserve.privacy.pseudonyms import Pseudonymizer

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.type_defs import GetSecretValueResponseTypeDef


def read_signer(client: SecretsManagerJsonClient, secret_id: str) -> TokenSigner:
    """A signer with the current key and, once the secret has been rotated, the previous one."""
    return TokenSigner(*_current_and_previous(client, secret_id))


def read_pseudonymizer(client: SecretsManagerJsonClient, secret_id: str) -> Pseudonymizer:
    """Pseudonyms under the current key and, once the secret has been rotated, the previous one."""
    return Pseudonymizer(*_current_and_previous(client, secret_id))


def _current_and_previous(client: SecretsManagerJsonClient, secret_id: str) -> tuple[bytes, bytes | None]:
    current = _key(client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT"))
    try:
        previous = _key(client.get_secret_value(SecretId=secret_id, VersionStage="AWSPREVIOUS"))
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        previous = None  # the label exists only after a first rotation
    return current, previous


def _key(version: "GetSecretValueResponseTypeDef") -> bytes:
    return version["SecretString"].encode() if "SecretString" in version else version["SecretBinary"]
