"""The model registry: published models and the active pointer that tells Decide which to serve.

Layout in the models bucket (one prefix per version, immutable once written):
    models/<version>/model.onnx
    models/<version>/manifest.json
    models/active.json      {"champion": <version>, "challenger": <version>|null, "challenger_share": 0..1,
                             "updated_at": <iso time>, "updated_by": <who>}
A listener is served by the challenger when the hash of its id falls in the challenger's share, so the
split is deterministic: the same listener always meets the same model while a pointer is in force (Decide splits
by the decision's id instead where the listener's data may not pick what it is served).
"""

import hashlib
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Final, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

MODELS_PREFIX = "models/"
ACTIVE_POINTER_KEY = "models/active.json"

ModelVersion = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")]


class ActivePointer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    champion: ModelVersion
    challenger: ModelVersion | None = None
    challenger_share: float = Field(default=0.0, ge=0.0, le=1.0)
    updated_at: datetime
    updated_by: Annotated[str, StringConstraints(max_length=200)] = "unknown"

    @model_validator(mode="after")
    def _challenger_needs_a_share(self) -> Self:
        if self.challenger is None and self.challenger_share:
            raise ValueError("challenger_share needs a challenger")
        if self.challenger is not None and self.challenger == self.champion:
            raise ValueError("the challenger must differ from the champion")
        return self

    def version_for(self, listener_pseudonym: str) -> str:
        """Champion or challenger for this listener, by a stable hash of its id."""
        if self.challenger is None or listener_bucket(listener_pseudonym) >= self.challenger_share:
            return self.champion
        return self.challenger


class _Unreadable(Enum):
    POINTER = "unreadable"


UNREADABLE_POINTER: Final = _Unreadable.POINTER
"""What a pointer that is stored but is no pointer (malformed JSON, a field missing) is replaced as: ``adserve
promote`` must be able to put a good one over it, and only over that very object."""

StoredPointer = ActivePointer | Literal[_Unreadable.POINTER] | None
"""A pointer as a compare-and-swap compares it: one, an unreadable one, or none stored."""


def listener_bucket(listener_pseudonym: str) -> float:
    """A stable number in [0, 1) per listener, independent of the exploration policy's randomness."""
    digest = hashlib.blake2b(listener_pseudonym.encode(), digest_size=8, person=b"adserve-split").digest()
    return int.from_bytes(digest, "big") / 2**64


def model_key(version: str, file_name: str) -> str:
    return f"{MODELS_PREFIX}{version}/{file_name}"


class ModelStore(Protocol):
    """Where published models and the active pointer live (S3 in AWS and on the local stack)."""

    def publish(self, model_dir: Path) -> str:
        """Upload model.onnx and manifest.json of a verified model; returns its version."""
        ...

    def download(self, version: str, target_dir: Path) -> Path:
        """Fetch a version's files into target_dir/<version>/ and return that folder."""
        ...

    def manifest_bytes(self, version: str) -> bytes:
        """A version's manifest.json as stored, without its model file (which may be the part that is missing)."""
        ...

    def versions(self) -> list[str]: ...

    def read_pointer(self) -> ActivePointer | None:
        """The active pointer, or None when nothing was ever promoted (serve the bootstrap model)."""
        ...

    def write_pointer(self, pointer: ActivePointer, *, replacing: StoredPointer) -> None:
        """Make *pointer* the active one if the stored pointer is still *replacing* (None: none is stored;
        UNREADABLE_POINTER: one that is no pointer), as one compare-and-swap: two writers that read the same pointer
        cannot both replace it, and neither undoes the other. Raises PointerChangedError, writing nothing, when it
        is not."""
        ...
