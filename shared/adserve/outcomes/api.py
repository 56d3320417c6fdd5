"""Request and response models of the tracking API (`GET /v1/events/{type}`, `POST /v1/events`).

The OpenAPI document is generated from them. Whether `occurred_at` is plausible depends on the clock, so
that rule lives in the domain (`adserve.outcomes.tracking`) and rejects one event, not the whole batch.
"""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from adserve.core.identifiers import DateTimeText, Identifier
from adserve.core.vocabulary import EventType
from adserve.outcomes.tokens import MAX_TOKEN_LENGTH

MAX_EVENTS_PER_BATCH = 100
MAX_BATCH_BODY_BYTES = 160 * 1024
"""Track's body limit: a batch of 100 events at their longest (a 1,024-character token, a 64-character event id,
about 1.2 KB each in compact JSON) with room for indentation. The 64 KiB of the other routes refused a valid
batch of 100 ordinary events as a whole."""

TrackingToken = Annotated[
    str,
    Field(min_length=1, max_length=MAX_TOKEN_LENGTH, description="The `t` parameter of the ad's tracking URL"),
]


class RejectionCode(StrEnum):
    """Why an event was refused; a small closed set, also the `reason` dimension of EventsRejected."""

    INVALID_TOKEN = "invalid_token"  # noqa: S105 (a reason code, not a secret)
    EXPIRED_TOKEN = "expired_token"  # noqa: S105 (a reason code, not a secret)
    WRONG_TYPE = "wrong_type"
    DUPLICATE = "duplicate"
    INVALID_TIME = "invalid_time"


class EventIn(BaseModel):
    """One event the listener's app reports, with the token of the matching tracking URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Identifier = Field(description="The app's own id of this event; the same id on a retry")
    type: EventType
    token: TrackingToken
    occurred_at: Annotated[AwareDatetime, DateTimeText] = Field(
        description="When it happened, with a time zone; at most 5 minutes ahead of the server's clock and "
        "no older than 7 days, the longest a tracking token may live"
    )


class EventBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH)


class EventResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str
    status: Literal["accepted", "rejected", "failed"] = Field(
        description="`accepted`: queued. `rejected`: will never be accepted, do not retry. "
        "`failed`: not queued because of a transient fault, retry with the same event_id"
    )
    code: RejectionCode | None = Field(default=None, description="Why a rejected event was refused")
    reason: str | None = None


class EventBatchResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

    accepted: int = Field(ge=0)
    rejected: int = Field(ge=0)
    failed: int = Field(ge=0)
    results: list[EventResult] = Field(description="One result per event, in request order")
