"""Erasure's wiring: the caps table, the ledger in the logs bucket, the pseudonym keys read per erasure."""

from adserve.core.errors import ErasureUnavailableError, SecretKeysUnavailableError
from adserve.dal.aws_clients import dynamodb_client, s3_client, secretsmanager_client
from adserve.dal.erasure_store import DynamoCounterPartitions, S3ErasureLedger
from adserve.dal.secret_keys import read_pseudonymizer
from adserve.privacy.erasure import ErasureService
from adserve.privacy.pseudonyms import Pseudonymizer


def erasure_service(
    caps_table: str, logs_bucket: str, pseudonym_secret_id: str, *, pre_pseudonym_logs: bool
) -> ErasureService:
    """What `POST /v1/erasures` and `adserve forget` both run."""
    secrets = secretsmanager_client(connect_timeout=1.0, read_timeout=2.0, attempts=3)

    def keys() -> Pseudonymizer:
        """Read on every erasure (they are rare): a rotation a moment ago must already be searched."""
        try:
            return read_pseudonymizer(secrets, pseudonym_secret_id)
        except SecretKeysUnavailableError as error:
            raise ErasureUnavailableError(f"reading the pseudonym keys: {error}") from error

    return ErasureService(
        keys,
        DynamoCounterPartitions(dynamodb_client(), caps_table),
        S3ErasureLedger(s3_client(), logs_bucket),
        pre_pseudonym_logs=pre_pseudonym_logs,
    )
