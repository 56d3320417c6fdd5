"""The training logs bucket: put one gzip JSON Lines object (or a catalog snapshot, once); list and read objects
for the readers."""

from collections.abc import Iterator
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from adserve.core.errors import LogObjectMissingError, LogStoreUnavailableError
from adserve.dal.s3_rest import object_keys

if TYPE_CHECKING:
    from adserve.dal.s3_rest import S3RestClient

# The object is a gzip file (not ndjson with a transfer encoding), so HTTP clients never inflate it silently.
CONTENT_TYPE = "application/gzip"
_MISSING = frozenset({"NoSuchKey", "404"})
"""What S3 answers a GET of a key that does not exist (``404`` when the error has no body, as for a HEAD)."""


class S3LogStore:
    def __init__(self, client: "S3RestClient", bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def put_object(self, key: str, body: bytes) -> None:
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=CONTENT_TYPE)
        except (ClientError, BotoCoreError) as error:
            raise LogStoreUnavailableError(f"put s3://{self._bucket}/{key}: {error}") from error

    def put_if_absent(self, key: str, body: bytes) -> None:
        """Create the object unless it exists: environments racing to write one catalog snapshot write it once."""
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=CONTENT_TYPE, IfNoneMatch="*")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "PreconditionFailed":
                return
            raise LogStoreUnavailableError(f"put s3://{self._bucket}/{key}: {error}") from error
        except BotoCoreError as error:
            raise LogStoreUnavailableError(f"put s3://{self._bucket}/{key}: {error}") from error

    def list_keys(self, prefix: str) -> Iterator[str]:
        try:
            yield from object_keys(self._client, self._bucket, prefix)
        except (ClientError, BotoCoreError) as error:
            raise LogStoreUnavailableError(f"list s3://{self._bucket}/{prefix}: {error}") from error

    def read_object(self, key: str) -> bytes:
        """Raises LogObjectMissingError when the object does not exist, LogStoreUnavailableError otherwise."""
        try:
            return self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                raise LogObjectMissingError(f"get s3://{self._bucket}/{key}: no such object") from error
            raise LogStoreUnavailableError(f"get s3://{self._bucket}/{key}: {error}") from error
        except BotoCoreError as error:
            raise LogStoreUnavailableError(f"get s3://{self._bucket}/{key}: {error}") from error
