"""Outcome events: what Track puts on the outcomes queue once a tracking token has been verified.

Track and Record share this model; together with the decision record it is everything Record consumes.
An outcome's identity is (decision_id, ad_id, event_type): one listener cannot see the same ad twice in one
decision, so a second event with the same identity is a redelivery or a replayed beacon, never a new fact.
"""

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adserve.core.identifiers import Identifier
from adserve.core.vocabulary import EventType
from adserve.outcomes.decision_records import DecisionRecord
from adserve.outcomes.tokens import TrackingClaims

OUTCOME_KIND: Final = "outcome"


class OutcomeEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["outcome"] = "outcome"
    event_id: Identifier
    event_type: EventType
    decision_id: Identifier
    ad_id: Identifier
    campaign_id: Identifier
    advertiser_id: Identifier
    listener: Identifier | None = None
    """The listener's keyed pseudonym when it consented to frequency capping: the key of its counters."""
    session: Annotated[str, Field(max_length=80)]
    occurred_at: datetime
    received_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _drop_raw_listener_id(cls, data: object) -> object:
        """Events queued before pseudonyms name a raw listener id: it goes no further (no counter is kept)."""
        if isinstance(data, dict) and "listener_id" in data:
            data = {key: value for key, value in data.items() if key != "listener_id"}
            data.update(listener=None, session="")
        return data

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.decision_id, self.ad_id, self.event_type.value)

    @classmethod
    def from_claims(
        cls, claims: TrackingClaims, *, event_id: str, occurred_at: datetime, received_at: datetime
    ) -> "OutcomeEvent":
        return cls(
            event_id=event_id,
            event_type=EventType(claims.event_type),
            decision_id=claims.decision_id,
            ad_id=claims.ad_id,
            campaign_id=claims.campaign_id,
            advertiser_id=claims.advertiser_id,
            listener=claims.listener,
            session=claims.session,
            occurred_at=occurred_at,
            received_at=received_at,
        )


QueueMessage = Annotated[DecisionRecord | OutcomeEvent, Field(discriminator="kind")]
"""Every message body on the outcomes queue is one of these, told apart by `kind`."""
