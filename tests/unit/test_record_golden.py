"""Record's effects, byte for byte, on fixed batches: what the speed work must not change.

Seeded batches of impressions (capped by their own or a sibling's advertiser cap, uncapped, unknown
campaigns; redelivered ones), other outcomes, decision records (every other one compact: schema 2) and
invalid bodies, some with correlation
ids, some into a failing log prefix, for a listener whose counters fail or for a campaign whose delivery
counters fail. For every batch the golden file holds the partial batch response and the metrics; at the end
the counters, the markers, every delivery group handed to the store (campaign, hour, shard, markers, their
expiry, totals), the delivery totals and markers, and every log object (its key, the SHA-256 of its bytes
and its lines). Written by the code before the speed work; regenerate only for an intended change:
``ADSERVE_WRITE_GOLDEN=1 .venv/bin/pytest tests/unit/test_record_golden.py``.
"""

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from adserve.campaigns.directory import CampaignDirectory
from adserve.core.errors import DeliveryStoreUnavailableError
from adserve.core.observability import metrics
from adserve.core.vocabulary import EventType
from adserve.delivery.counting import DeliveryGroup, GroupResult
from adserve.outcomes.decision_records import (
    DecisionRecord,
    LoggedCandidate,
    LoggedChoice,
    LoggedPolicy,
)
from adserve.outcomes.events import OutcomeEvent
from adserve.outcomes.logs import decode_object
from adserve.outcomes.recording import OutcomeRecorder

from devstack.fakes import InMemoryCampaigns, InMemoryDeliveryCounter, InMemoryImpressionCounter, InMemoryLogStore
from tests.support.builders import NOW, campaign
from tests.support.compact_records import compacted
from tests.support.privacy import pseudonym
from tests.support.record_messages import redelivered, sqs_event, sqs_record

GOLDEN = Path(__file__).parent / "golden" / "record.json"
CAMPAIGNS = [
    campaign(
        campaign_id=f"cmp-{i}",
        advertiser_id=f"adv-{i % 3}",
        value_cpm=2.5 + 1.75 * i,
        frequency_caps=[{"max": 3, "window": "session"}, {"max": 5, "window": "day", "scope": "advertiser"}]
        if i % 2 == 0
        else [{"max": 2, "window": "hour"}, {"max": 9, "window": "week"}, {"max": 20, "window": "month"}]
        if i % 3 == 0
        else [],
    )
    for i in range(8)
]


@dataclass
class RecordingDeliveryCounter(InMemoryDeliveryCounter):
    """The delivery store, keeping every group it was handed; `failing_campaigns` fails their groups."""

    failing_campaigns: set[str] = field(default_factory=set)
    groups: list[dict[str, Any]] = field(default_factory=list)

    def count_once(self, group: DeliveryGroup) -> GroupResult:
        self.groups.append(
            {
                "campaign_id": group.campaign_id,
                "hour": group.hour.isoformat(),
                "shard": group.shard,
                "markers": [event.marker_key for event in group.events],
                "marker_expires_at": group.marker_expires_at.isoformat(),
                "totals": repr(group.totals),
            }
        )
        if group.campaign_id in self.failing_campaigns:
            raise DeliveryStoreUnavailableError("table unreachable")
        return super().count_once(group)


class Batches:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._count = 0
        self._decisions = 0
        self.sent: list[dict[str, Any]] = []

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{self._rng.getrandbits(64):016x}"

    def _outcome(self) -> OutcomeEvent:
        rng = self._rng
        index = rng.randrange(len(CAMPAIGNS) + 1)
        campaign_id = f"cmp-{index}" if index < len(CAMPAIGNS) else "unknown"
        occurred = NOW + timedelta(minutes=rng.randrange(-90, 90), microseconds=rng.randrange(10**6))
        listener = f"listener-{rng.randrange(5)}"
        return OutcomeEvent(
            event_id=self._id("e"),
            event_type=EventType.IMPRESSION if rng.random() < 0.7 else rng.choice(list(EventType)),
            decision_id=self._id("d"),
            ad_id=f"{campaign_id}-ad-1",
            campaign_id=campaign_id,
            advertiser_id=f"adv-{index % 3}",
            listener=pseudonym(listener),
            session=rng.choice((f"s:{listener}", "d:2026-11-25")),
            occurred_at=occurred,
            received_at=occurred + timedelta(milliseconds=rng.randrange(-500, 3000)),
        )

    def _decision(self) -> DecisionRecord:
        rng = self._rng
        ads = rng.sample(range(len(CAMPAIGNS)), 4)
        record = DecisionRecord(
            decision_id=self._id("d"),
            decided_at=NOW + timedelta(minutes=rng.randrange(-90, 90)),
            model_version="golden",
            policy=LoggedPolicy(epsilon=0.1),
            listener_hash=pseudonym(f"listener-{rng.randrange(5)}"),
            listener_features={"country": "SE", "device": "mobile", "genre": "pop"},
            placement="audio_midroll",
            max_ads=2,
            cap_check=rng.choice(("ok", "not_needed", "unavailable")),
            candidates=[
                LoggedCandidate(
                    ad_id=f"cmp-{i}-ad-1",
                    campaign_id=f"cmp-{i}",
                    advertiser_id=f"adv-{i % 3}",
                    features={"category": "retail", "format": "audio"},
                    score=rng.random() / 7,
                    value_cpm=round(rng.uniform(1, 30), 2),
                )
                for i in ads
            ],
            chosen=[LoggedChoice(ad_id=f"cmp-{ads[0]}-ad-1", rank=1, score=0.1, propensity=0.925)],
        )
        self._decisions += 1
        return compacted(record) if self._decisions % 2 == 0 else record

    def _body(self) -> str:
        roll = self._rng.random()
        if roll < 0.04:
            return self._rng.choice(('{"kind": "outcome"}', "not json", '{"kind":"decision","decision_id":5}'))
        return (self._decision() if roll < 0.15 else self._outcome()).model_dump_json()

    def batch(self, size: int) -> dict[str, Any]:
        records = []
        for _ in range(size):
            if self.sent and self._rng.random() < 0.08:
                records.append(redelivered(self._rng.choice(self.sent)))
                continue
            self._count += 1
            record = sqs_record(self._body(), message_id=f"m-{self._count:05d}")
            if self._rng.random() < 0.3:
                record["messageAttributes"] = {
                    "correlation_id": {"stringValue": f"c-{self._count}", "dataType": "String"}
                }
            records.append(record)
            self.sent.append(record)
        return sqs_event(*records)


def _metrics() -> dict[str, Any]:
    added = {name: metric["Value"] for name, metric in sorted(metrics.metric_set.items())}
    metrics.clear_metrics()
    return added


def golden_document() -> str:
    counter, logs, delivery = InMemoryImpressionCounter(), InMemoryLogStore(), RecordingDeliveryCounter()
    directory = CampaignDirectory(InMemoryCampaigns(CAMPAIGNS), ttl_seconds=3600)
    recorder = OutcomeRecorder(counter=counter, campaigns=directory, logs=logs, delivery=delivery, clock=lambda: NOW)
    batches = Batches(seed=13)
    metrics.clear_metrics()
    results = []
    for number in range(12):
        logs.failing_prefixes = {"logs/outcomes/dt=2026-11-25/hour=12/"} if number == 4 else set()
        counter.failing_listeners = {pseudonym("listener-2")} if number == 7 else set()
        delivery.failing_campaigns = {"cmp-3", "cmp-6"} if number == 9 else set()
        response = recorder.process_batch(batches.batch(40 if number % 3 == 0 or number in (4, 7) else 10), None)
        results.append({"response": response, "metrics": _metrics()})
    state = {
        "batches": results,
        "counts": {listener: dict(sorted(counts.items())) for listener, counts in sorted(counter.counts.items())},
        "markers": sorted(counter.markers),
        "delivery_groups": delivery.groups,
        "delivery_hours": {
            f"{campaign_id}|{hour.isoformat()}": repr(totals)
            for (campaign_id, hour), totals in sorted(delivery.hours.items())
        },
        "delivery_markers": sorted(delivery.markers),
        "objects": {
            key: {"sha256": hashlib.sha256(body).hexdigest(), "lines": list(decode_object(body))}
            for key, body in sorted(logs.objects.items())
        },
    }
    return json.dumps(state, indent=1, sort_keys=False) + "\n"


def test_record_effects_are_byte_identical_to_the_golden_file() -> None:
    produced = golden_document()
    if os.environ.get("ADSERVE_WRITE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(produced)
    assert produced == GOLDEN.read_text()


def test_the_record_golden_file_covers_what_it_guards() -> None:
    document = json.loads(GOLDEN.read_text())
    responses = [batch["response"]["batchItemFailures"] for batch in document["batches"]]
    added = [batch["metrics"] for batch in document["batches"]]
    assert all(responses[n] for n in (4, 7, 9)), "failed log puts, counter and delivery writes are reported"
    assert sum(metric["RecordsInvalid"][0] for metric in added) >= 3
    assert sum(metric["DuplicatesDropped"][0] for metric in added) >= 3
    assert sum(metric["ImpressionsCounted"][0] for metric in added) >= 50
    assert added[9]["DeliveryEventsFailed"][0] > 0
    assert sum(metric["DeliveryDuplicatesDropped"][0] for metric in added) >= 3
    assert any("#cmp-1-ad-1#" in marker for marker in document["markers"]), (
        "impressions of cmp-1, which declares no cap, counted in the advertiser cap its sibling cmp-4 declares"
    )
    keys = list(document["objects"])
    assert any("/decisions/" in key for key in keys)
    decisions = [json.loads(line) for key in keys if "/decisions/" in key for line in document["objects"][key]["lines"]]
    assert {decision.get("schema_version", 1) for decision in decisions} == {1, 2}, "inline and compact logged"
    assert any("/outcomes/" in key for key in keys)
