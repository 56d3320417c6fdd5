"""HMAC keys from Secrets Manager: the versions staged AWSCURRENT and AWSPREVIOUS.

Writing a new value (`put-secret-value`, or a rotation) moves AWSCURRENT to it and AWSPREVIOUS to the value
it replaces. For the tracking-token key the pair is exactly what Track must accept while the old key's tokens
are still out; for the pseudonym key it is where erasure must look after a rotation.
"""

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from adserve.core.errors import SecretKeysUnavailableError
from adserve.dal.json_clients import SecretsManagerJsonClient
from adserve.outcomes.tokens import TokenSigner
from adserve.privacy.pseudonyms import Pseudonymizer

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.type_defs import GetSecretValueResponseTypeDef


def read_signer(
    client: SecretsManagerJsonClient, secret_id: str, *, adopt_after: timedelta, now: datetime | None = None
) -> TokenSigner:
    """A signer that verifies with the current key and, once the secret has been rotated, the previous one, and
    signs with the current key once it has been current for *adopt_after*, with the previous one until then.

    Track reloads its keys for a token naming one it does not hold, but at most every
    UNKNOWN_KEY_REFRESH_SECONDS (forged key ids must not buy a Secrets Manager read each). A token signed with a
    key minutes old met a Track environment that had just reloaded before the rotation and was refused until its
    next reload; signed only once the key is older than that interval, it meets environments that either loaded
    it already or may reload now. The previous key is accepted everywhere meanwhile.
    """
    current, previous = _current_and_previous(client, secret_id)
    created = current.get("CreatedDate")
    young = created is not None and (now or datetime.now(UTC)) - created < adopt_after
    if previous is not None and young:
        return TokenSigner(_key(previous), _key(current))
    return TokenSigner(_key(current), None if previous is None else _key(previous))


def read_pseudonymizer(client: SecretsManagerJsonClient, secret_id: str) -> Pseudonymizer:
    """Pseudonyms under the current key and, once the secret has been rotated, the previous one."""
    current, previous = _current_and_previous(client, secret_id)
    return Pseudonymizer(_key(current), None if previous is None else _key(previous))


def _current_and_previous(
    client: SecretsManagerJsonClient, secret_id: str
) -> tuple["GetSecretValueResponseTypeDef", "GetSecretValueResponseTypeDef | None"]:
    """Both versions; SecretKeysUnavailableError when Secrets Manager cannot be read (a cache serves the keys it
    holds meanwhile; with none, the request is answered "retry", not a 500)."""
    try:
        current = client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
        try:
            previous = client.get_secret_value(SecretId=secret_id, VersionStage="AWSPREVIOUS")
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            return current, None  # the label exists only after a first rotation
    except (ClientError, BotoCoreError) as error:
        raise SecretKeysUnavailableError(f"secret {secret_id} could not be read: {error}") from error
    return current, previous


def _key(version: "GetSecretValueResponseTypeDef") -> bytes:
    return version["SecretString"].encode() if "SecretString" in version else version["SecretBinary"]
