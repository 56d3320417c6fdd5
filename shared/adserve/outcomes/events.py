"""Outcome events: what Track puts on the outcomes queue once a tracking token has been verified.

Track and Record share this model; together with the decision record it is everything Record consumes.
An outcome's identity is (decision_id, ad_id, event_type): one listener cannot see the same ad twice in one
decision, so a second event with the same identity is a redelivery or a replayed beacon, never a new fact.
"""

import json
from datetime import datetime, timedelta
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from adserve.core.identifiers import Identifier
from adserve.core.vocabulary import EventType
from adserve.outcomes.decision_records import DecisionRecord
from adserve.outcomes.tokens import TrackingClaims

MAX_CLOCK_SKEW: Final = timedelta(minutes=5)
"""How far in the future a reported occurred_at may lie: clocks on phones drift."""

MAX_EVENT_AGE: Final = timedelta(days=7)
"""The longest lifetime Decide may give a token (DecideSettings.token_ttl_seconds <= 7 days): an event older
than that cannot have happened after its token was issued."""

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
    occurred_at: AwareDatetime
    received_at: AwareDatetime

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

_QUEUE_MESSAGE: TypeAdapter[DecisionRecord | OutcomeEvent] = TypeAdapter(QueueMessage)


def parse_queue_message(body: str) -> DecisionRecord | OutcomeEvent:
    """A queue message body as its model; raises ValidationError.

    An outcome queued before pseudonyms names a raw listener id: it goes no further (no counter is kept, the
    event still counts toward delivery). Those are told apart only when a body fails, so a current one is
    validated in one pass over its JSON: a before-validator on the model made pydantic build a dict of every
    event first (~2 us an event, nearly half its validation).
    """
    try:
        return _QUEUE_MESSAGE.validate_json(body)
    except ValidationError:
        legacy = _without_raw_listener_id(body)
        if legacy is None:
            raise
    return OutcomeEvent.model_validate(legacy)


def _without_raw_listener_id(body: str) -> dict[str, object] | None:
    """A pre-pseudonym outcome's fields without its raw listener id, session or pseudonym; None for any other body."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("kind") != OUTCOME_KIND or "listener_id" not in data:
        return None
    return {key: value for key, value in data.items() if key != "listener_id"} | {"listener": None, "session": ""}
