"""The models bucket: publish verified models, download a version atomically, read and write the pointer.

A version is published model-first, manifest-last: the manifest is the commit marker, so a version is
listed (and downloadable) only once both files are in place, and an interrupted publish can be retried.
"""

import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from adserve.core.errors import (
    InvalidModelPointerError,
    ModelLoadError,
    ModelNotFoundError,
    ModelStoreUnavailableError,
    ModelVersionConflictError,
    PointerChangedError,
)
from adserve.dal.s3_rest import object_keys
from adserve.models.ctr_model import MANIFEST_FILE, MODEL_FILE, CtrModel
from adserve.models.features import FeatureSpec
from adserve.models.registry import (
    ACTIVE_POINTER_KEY,
    MODELS_PREFIX,
    UNREADABLE_POINTER,
    ActivePointer,
    StoredPointer,
    model_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import PutObjectRequestTypeDef

    from adserve.dal.s3_rest import S3RestClient

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_SWAPPED_MEANWHILE = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"})
"""A conditional PUT's refusals: the ETag no longer matches (412), a concurrent conditional write (409), or the
object compared was deleted (If-Match on a missing key: 404)."""
SHA256_METADATA = "sha256"


def _missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code", "") in _MISSING


def _checked_version(version: str) -> str:
    """A version is also a folder name here: refuse anything that could escape the target directory."""
    if not _VERSION.match(version):
        raise ModelNotFoundError(f"{version!r} is not a model version")
    return version


def verified_manifest(model_dir: Path) -> dict[str, object]:
    """The manifest of a model that loads with its own feature spec; raises ModelLoadError otherwise."""
    try:
        manifest = json.loads((model_dir / MANIFEST_FILE).read_text())
        spec = FeatureSpec.from_dict(manifest["feature_spec"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelLoadError(f"model manifest in {model_dir} is unusable: {error}") from error
    model = CtrModel.load(model_dir, spec)
    _checked_version(model.version)
    return dict(model.manifest)


class S3ModelStore:
    """ModelStore on S3 (the template's ModelsBucket); errors are domain errors, never botocore's."""

    def __init__(self, client: "S3RestClient", bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def publish(self, model_dir: Path) -> str:
        """Verify, then upload; publishing the same model again is a no-op, a different one under a published
        version a conflict.

        The same model is the same bytes: a version is named by its training minute and its bytes' hash, and
        training is seeded, so a second run over the same logs in the same minute (a scheduled run beside a manual
        one, or a rerun after a publish whose pointer write failed) trains the very model. Its manifest differs
        only in when and for how long it trained, and the first manifest stays, a true account of those bytes.
        """
        manifest = verified_manifest(model_dir)
        version = str(manifest["version"])
        sha256 = str(manifest["sha256"])
        manifest_bytes = (model_dir / MANIFEST_FILE).read_bytes()
        existing = self._read(model_key(version, MANIFEST_FILE))
        if existing is not None and self._model_sha256(version) == sha256:
            return version
        if existing is not None and existing != manifest_bytes:
            raise ModelVersionConflictError(f"model {version} is already published with a different model")
        self._put(model_key(version, MODEL_FILE), (model_dir / MODEL_FILE).read_bytes(), {SHA256_METADATA: sha256})
        self._put(model_key(version, MANIFEST_FILE), manifest_bytes, {})
        return version

    def manifest_bytes(self, version: str) -> bytes:
        body = self._read(model_key(_checked_version(version), MANIFEST_FILE))
        if body is None:
            raise ModelNotFoundError(f"model {version} has no {MANIFEST_FILE} in the models bucket")
        return body

    def download(self, version: str, target_dir: Path) -> Path:
        """Each file lands under a temporary name and is renamed into place (atomic on one filesystem)."""
        folder = target_dir / _checked_version(version)
        folder.mkdir(parents=True, exist_ok=True)
        for file_name in (MODEL_FILE, MANIFEST_FILE):
            body = self._read(model_key(version, file_name))
            if body is None:
                raise ModelNotFoundError(f"model {version} has no {file_name} in the models bucket")
            descriptor, partial = tempfile.mkstemp(dir=folder, prefix=f".{file_name}.", suffix=".part")
            try:
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(body)
                os.replace(partial, folder / file_name)
            except BaseException:
                Path(partial).unlink(missing_ok=True)
                raise
        return folder

    def versions(self) -> list[str]:
        """Published versions (those with a manifest), sorted."""
        suffix = f"/{MANIFEST_FILE}"
        found = []
        try:
            for key in object_keys(self._client, self._bucket, MODELS_PREFIX):
                if key.endswith(suffix) and key.count("/") == 2:
                    found.append(key[len(MODELS_PREFIX) : -len(suffix)])
        except (ClientError, BotoCoreError) as error:
            raise ModelStoreUnavailableError(f"list s3://{self._bucket}/{MODELS_PREFIX}: {error}") from error
        return sorted(found)

    def read_pointer(self) -> ActivePointer | None:
        body = self._read(ACTIVE_POINTER_KEY)
        return None if body is None else self._pointer(body)

    def write_pointer(self, pointer: ActivePointer, *, replacing: StoredPointer) -> None:
        """Compare by value, swap by ETag: the PUT carries the ETag of the pointer compared (``If-Match``; with
        none stored, ``If-None-Match: *``), so S3 refuses it if anything wrote the pointer since that read."""
        stored = self._read_tagged(ACTIVE_POINTER_KEY)
        current = None if stored is None else self._stored_pointer(stored[0])
        if current != replacing:
            now = (
                "no pointer"
                if current is None
                else "an unreadable pointer"
                if current is UNREADABLE_POINTER
                else f"champion {current.champion}, updated by {current.updated_by}"
            )
            raise PointerChangedError(
                f"s3://{self._bucket}/{ACTIVE_POINTER_KEY} changed since it was read ({now}); nothing was written"
            )
        put: PutObjectRequestTypeDef = {
            "Bucket": self._bucket,
            "Key": ACTIVE_POINTER_KEY,
            "Body": pointer.model_dump_json(indent=2).encode(),
            "ContentType": "application/json",
        }
        if stored is None:
            put["IfNoneMatch"] = "*"
        else:
            put["IfMatch"] = stored[1]
        try:
            self._client.put_object(**put)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code", "") in _SWAPPED_MEANWHILE:
                # The client retries a PUT whose answer was lost: a first attempt that landed changed the ETag the
                # retry names. The pointer written (its updated_at to the microsecond) is then this write's own.
                if self.read_pointer() == pointer:
                    return
                raise PointerChangedError(
                    f"s3://{self._bucket}/{ACTIVE_POINTER_KEY}: another writer wrote it meanwhile; nothing was written"
                ) from error
            raise ModelStoreUnavailableError(f"put s3://{self._bucket}/{ACTIVE_POINTER_KEY}: {error}") from error
        except BotoCoreError as error:
            raise ModelStoreUnavailableError(f"put s3://{self._bucket}/{ACTIVE_POINTER_KEY}: {error}") from error

    def _stored_pointer(self, body: bytes) -> StoredPointer:
        try:
            return self._pointer(body)
        except InvalidModelPointerError:
            return UNREADABLE_POINTER

    def _pointer(self, body: bytes) -> ActivePointer:
        try:
            return ActivePointer.model_validate_json(body)
        except ValidationError as error:
            reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'document'}: {e['msg']}" for e in error.errors())
            raise InvalidModelPointerError(
                f"s3://{self._bucket}/{ACTIVE_POINTER_KEY} is not a pointer: {reasons}"
            ) from error

    def _read(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        stored = self._read_tagged(key)
        return None if stored is None else stored[0]

    def _read_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None when it does not exist."""
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if _missing(error):
                return None
            raise ModelStoreUnavailableError(f"get s3://{self._bucket}/{key}: {error}") from error
        except BotoCoreError as error:
            raise ModelStoreUnavailableError(f"get s3://{self._bucket}/{key}: {error}") from error
        return answer["Body"].read(), answer["ETag"]

    def _model_sha256(self, version: str) -> str | None:
        key = model_key(version, MODEL_FILE)
        try:
            head = self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if _missing(error):
                return None
            raise ModelStoreUnavailableError(f"head s3://{self._bucket}/{key}: {error}") from error
        except BotoCoreError as error:
            raise ModelStoreUnavailableError(f"head s3://{self._bucket}/{key}: {error}") from error
        return head.get("Metadata", {}).get(SHA256_METADATA)

    def _put(self, key: str, body: bytes, metadata: dict[str, str]) -> None:
        content_type = "application/json" if key.endswith(".json") else "application/octet-stream"
        try:
            self._client.put_object(
                Bucket=self._bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata
            )
        except (ClientError, BotoCoreError) as error:
            raise ModelStoreUnavailableError(f"put s3://{self._bucket}/{key}: {error}") from error
