"""Builders of Record's inputs: outcome events, decision records and the SQS events that carry them.

SQS records are the sample event's (events/record_sqs_batch.json) with a new body and a fresh message id, so
every test batch has the shape Lambda really delivers.
"""

import copy
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adserve.core.vocabulary import EventType
from adserve.outcomes.decision_records import DecisionRecord, LoggedCandidate, LoggedChoice, LoggedPolicy
from adserve.outcomes.events import OutcomeEvent

from tests.support.privacy import pseudonym

SAMPLE_EVENT = Path(__file__).parents[2] / "events" / "record_sqs_batch.json"
NOW = datetime(2026, 11, 25, 13, 30, tzinfo=UTC)


def outcome(
    *,
    decision_id: str | None = None,
    ad_id: str = "cmp-1-ad-1",
    campaign_id: str = "cmp-1",
    advertiser_id: str = "adv-1",
    listener: str | None = pseudonym("listener-1"),
    event_type: EventType = EventType.IMPRESSION,
    occurred_at: datetime = NOW,
    received_at: datetime | None = None,
    session: str = "s:session-1",
) -> OutcomeEvent:
    """Received 120 ms after it occurred unless *received_at* says when (an app reporting late)."""
    return OutcomeEvent(
        event_id=f"e-{uuid.uuid4().hex[:16]}",
        event_type=event_type,
        decision_id=decision_id or f"d-{uuid.uuid4().hex[:16]}",
        ad_id=ad_id,
        campaign_id=campaign_id,
        advertiser_id=advertiser_id,
        listener=listener,
        session=session,
        occurred_at=occurred_at,
        received_at=received_at or occurred_at + timedelta(milliseconds=120),
    )


def decision(
    *, decision_id: str = "d-1", decided_at: datetime = NOW, ads: tuple[str, ...] = ("cmp-1-ad-1",)
) -> DecisionRecord:
    return DecisionRecord(
        decision_id=decision_id,
        decided_at=decided_at,
        model_version="constant",
        policy=LoggedPolicy(epsilon=0.1),
        listener_hash=pseudonym("listener-1"),
        listener_features={"country": "SE", "device": "mobile"},
        placement="audio_midroll",
        max_ads=len(ads),
        cap_check="ok",
        candidates=[
            LoggedCandidate(
                ad_id=ad_id,
                campaign_id=ad_id.rsplit("-ad-", 1)[0],
                advertiser_id="adv-1",
                features={"ad_id": ad_id},
                score=0.05,
                value_cpm=10.0,
            )
            for ad_id in ads
        ],
        chosen=[LoggedChoice(ad_id=ad_id, rank=rank, score=0.05, propensity=0.9) for rank, ad_id in enumerate(ads, 1)],
    )


def sqs_record(body: str, message_id: str | None = None) -> dict[str, Any]:
    """One SQS record carrying *body*; a fresh message id unless one is given (a redelivery keeps its id)."""
    record: dict[str, Any] = copy.deepcopy(json.loads(SAMPLE_EVENT.read_text())["Records"][0])
    record["messageId"] = message_id or str(uuid.uuid4())
    record["body"] = body
    record["md5OfBody"] = hashlib.md5(body.encode()).hexdigest()
    return record


def redelivered(record: dict[str, Any]) -> dict[str, Any]:
    """*record* as SQS delivers it again: the same message id and body, its receive count one higher."""
    again = copy.deepcopy(record)
    attributes = again.setdefault("attributes", {})
    attributes["ApproximateReceiveCount"] = str(int(attributes.get("ApproximateReceiveCount", "1")) + 1)
    return again


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def message_records(*messages: OutcomeEvent | DecisionRecord) -> list[dict[str, Any]]:
    return [sqs_record(message.model_dump_json()) for message in messages]


def failed_ids(response: dict[str, Any]) -> set[str]:
    return {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
