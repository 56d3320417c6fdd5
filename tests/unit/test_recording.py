"""Record's batch logic on in-memory ports: exactly-once counting, isolation of failures, the log objects."""

import gc
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from adserve.campaigns.directory import LISTING_LAG, CampaignDirectory
from adserve.campaigns.frequency_caps import AdvertiserCaps, CounterCap, within_caps
from adserve.campaigns.model import Campaign, CapScope, CapWindow, FrequencyCap
from adserve.core.observability import logger, metrics
from adserve.core.refreshing import FIRST_LOAD_RETRY_SECONDS
from adserve.core.vocabulary import EventType
from adserve.outcomes.logs import decode_object, read_decisions, read_outcomes
from adserve.outcomes.recording import (
    COUNTING_HORIZON,
    MARKER_LIFETIME,
    CountResult,
    OutcomeRecorder,
    marker_expiry,
    marker_key,
)

from devstack.fakes import InMemoryCampaigns, InMemoryDeliveryCounter, InMemoryImpressionCounter, InMemoryLogStore
from tests.support.builders import NOW, campaign, decision_id_at, impression_counters
from tests.support.record_messages import (
    decision,
    failed_ids,
    message_records,
    outcome,
    sqs_event,
    sqs_record,
)

CAPPED = campaign(
    campaign_id="cmp-1",
    advertiser_id="adv-1",
    frequency_caps=[{"max": 3, "window": "day"}, {"max": 1, "window": "week", "scope": "advertiser"}],
)
FREE = campaign(campaign_id="free", advertiser_id="adv-2")
SIBLING = campaign(campaign_id="sibling", advertiser_id="adv-1")
"""CAPPED's advertiser's other campaign, which declares no cap of its own."""


@dataclass
class Ports:
    counter: InMemoryImpressionCounter
    logs: InMemoryLogStore
    recorder: OutcomeRecorder
    delivery: InMemoryDeliveryCounter

    def process(self, *records: dict[str, Any], context: Any = None) -> dict[str, Any]:
        return dict(self.recorder.process_batch(sqs_event(*records), context))


@pytest.fixture
def ports() -> Ports:
    counter, logs, delivery = InMemoryImpressionCounter(), InMemoryLogStore(), InMemoryDeliveryCounter()
    directory = CampaignDirectory(InMemoryCampaigns([CAPPED, FREE, SIBLING]), ttl_seconds=60)
    return Ports(
        counter,
        logs,
        OutcomeRecorder(counter=counter, campaigns=directory, logs=logs, delivery=delivery, clock=lambda: NOW),
        delivery,
    )


@dataclass
class AlmostOutOfTime:
    remaining_ms: int = 1_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_an_impression_increments_every_counter_decide_reads(ports: Ports) -> None:
    # Given an impression of a campaign with a campaign cap and an advertiser cap
    event = outcome(listener="listener-a")
    # When it is recorded
    response = ports.process(*message_records(event))
    # Then both counters Decide checks moved by one
    assert response == {"batchItemFailures": []}
    counts = ports.counter.read_counters("listener-a", NOW)
    assert sorted(counts) == sorted(
        slot.key for slot in impression_counters(CAPPED, CAPPED.frequency_caps, NOW, event.session)
    )
    assert set(counts.values()) == {1}
    assert (
        within_caps(CAPPED, CAPPED.frequency_caps, counts, NOW, event.session) is False
    )  # the weekly advertiser cap of 1 is reached


def test_an_impression_of_an_uncapped_sibling_counts_toward_the_advertiser_cap(ports: Ports) -> None:
    # Given CAPPED's weekly advertiser cap of 1, and an impression of its uncapped sibling campaign
    event = outcome(listener="listener-sib", campaign_id=SIBLING.campaign_id, ad_id="sibling-ad-1")
    # When it is recorded
    assert ports.recorder.record_impression(event) is CountResult.COUNTED
    # Then it landed in the advertiser's counter only (not in CAPPED's campaign counter), and CAPPED is at its cap
    counts = ports.counter.read_counters("listener-sib", NOW)
    [advertiser_cap] = [cap for cap in CAPPED.frequency_caps if cap.scope is CapScope.ADVERTISER]
    assert sorted(counts) == [slot.key for slot in impression_counters(CAPPED, [advertiser_cap], NOW, event.session)]
    assert within_caps(CAPPED, CAPPED.frequency_caps, counts, NOW, event.session) is False


def test_the_same_message_delivered_three_times_counts_once_and_reads_back_once(ports: Ports) -> None:
    [record] = message_records(outcome(listener="listener-b"))
    for _ in range(3):
        assert ports.process(record) == {"batchItemFailures": []}
    assert set(ports.counter.read_counters("listener-b", NOW).values()) == {1}
    assert len(ports.logs.objects) == 1  # the same batch overwrote its own object
    assert len(list(read_outcomes(ports.logs, NOW, NOW))) == 1


def test_a_replayed_event_in_another_batch_counts_once_and_the_reader_drops_its_copy(ports: Ports) -> None:
    event = outcome(listener="listener-c")
    ports.process(*message_records(event))
    ports.process(*message_records(event), *message_records(decision()))  # a new message with the same identity
    assert set(ports.counter.read_counters("listener-c", NOW).values()) == {1}
    outcomes = list(read_outcomes(ports.logs, NOW, NOW))
    assert [row.identity for row in outcomes] == [event.identity]


@pytest.mark.parametrize("event_type", [EventType.CLICK, EventType.COMPLETE, EventType.SKIP])
def test_only_impressions_count(ports: Ports, event_type: EventType) -> None:
    response = ports.process(*message_records(outcome(listener="listener-d", event_type=event_type)))
    assert response == {"batchItemFailures": []}
    assert ports.counter.writes == 0
    assert [row.event_type for row in read_outcomes(ports.logs, NOW, NOW)] == [event_type]


@pytest.mark.parametrize("campaign_id", ["free", "deleted-campaign"])
def test_impressions_of_uncapped_or_unknown_campaigns_count_nothing_but_are_logged(
    ports: Ports, campaign_id: str
) -> None:
    # (of FREE's advertiser, which no active campaign caps)
    event = outcome(listener="listener-e", campaign_id=campaign_id, ad_id=f"{campaign_id}-ad-1", advertiser_id="adv-2")
    assert ports.recorder.record_impression(event) is CountResult.NOT_COUNTED
    assert ports.process(*message_records(event)) == {"batchItemFailures": []}
    assert ports.counter.writes == 0
    assert len(list(read_outcomes(ports.logs, NOW, NOW))) == 1


def test_an_impression_of_a_campaign_deleted_since_it_was_served_counts_in_its_advertisers_caps(ports: Ports) -> None:
    # Given an impression of a campaign of CAPPED's advertiser that was deleted after the ad was served
    event = outcome(listener="listener-gone", campaign_id="deleted-sibling", ad_id="deleted-sibling-ad-1")
    # When it is recorded
    assert ports.recorder.record_impression(event) is CountResult.COUNTED
    # Then it counts in the advertiser's weekly cap of 1, which CAPPED, its sibling, now finds full
    counts = ports.counter.read_counters("listener-gone", NOW)
    [advertiser_cap] = [cap for cap in CAPPED.frequency_caps if cap.scope is CapScope.ADVERTISER]
    assert sorted(counts) == [slot.key for slot in impression_counters(CAPPED, [advertiser_cap], NOW, event.session)]
    assert within_caps(CAPPED, CAPPED.frequency_caps, counts, NOW, event.session) is False


def test_a_campaign_created_after_the_directory_loaded_is_found(ports: Ports) -> None:
    source = InMemoryCampaigns([FREE])
    clock = [0.0]
    directory = CampaignDirectory(source, ttl_seconds=60, miss_refresh_seconds=5, monotonic=lambda: clock[0])
    assert directory.campaign("cmp-1") is None
    source.campaigns.append(CAPPED)
    clock[0] = 1.0
    assert directory.campaign("cmp-1") is None  # misses reload at most every 5 s
    clock[0] = 6.0
    assert directory.campaign("cmp-1") == CAPPED


def test_an_outcome_of_a_campaign_created_after_the_load_fails_until_the_directory_lists_it() -> None:
    # Given Record's directory loaded at NOW, and a campaign created a moment later, served, its impression
    # reported at once (within the directory's miss-refresh interval)
    source, clock = InMemoryCampaigns([FREE]), [0.0]
    directory = CampaignDirectory(
        source, ttl_seconds=60, miss_refresh_seconds=5, monotonic=lambda: clock[0], clock=lambda: NOW
    )
    counter, delivery = InMemoryImpressionCounter(), InMemoryDeliveryCounter()
    recorder = OutcomeRecorder(
        counter=counter, campaigns=directory, logs=InMemoryLogStore(), delivery=delivery, clock=lambda: NOW
    )
    assert directory.campaign(FREE.campaign_id) == FREE
    source.campaigns.append(CAPPED)
    clock[0] = 1.0
    event = outcome(listener="listener-new", decision_id=decision_id_at(NOW + timedelta(seconds=2)))
    # When its batch is processed, its record fails (SQS redelivers it), nothing counted or acknowledged
    records = message_records(event)
    assert failed_ids(dict(recorder.process_batch(sqs_event(*records), None))) == {records[0]["messageId"]}
    assert delivery.lifetime(CAPPED.campaign_id).impressions == 0
    # And redelivered once the directory lists the campaign, it is counted
    clock[0] = 6.0
    assert failed_ids(dict(recorder.process_batch(sqs_event(*records), None))) == set()
    assert delivery.lifetime(CAPPED.campaign_id).impressions == 1
    # While an outcome of a campaign its decision named before the load (less the listing lag) that is no longer
    # listed is a deleted campaign's: acknowledged, its delivery not counted
    gone = outcome(campaign_id="gone", ad_id="gone-ad-1", decision_id=decision_id_at(NOW - 2 * LISTING_LAG))
    assert failed_ids(dict(recorder.process_batch(sqs_event(*message_records(gone)), None))) == set()


class FailingFirst(InMemoryCampaigns):
    """The campaigns table, failing its first Scan (or every Scan until told otherwise)."""

    def __init__(self, campaigns: list[Campaign]) -> None:
        super().__init__(campaigns)
        self.scans, self.failing = 0, True

    def list_campaigns(self) -> list[Campaign]:
        self.scans += 1
        if self.failing:
            raise ConnectionError("campaigns table unreachable")
        return super().list_campaigns()


def test_a_directory_that_never_loaded_answers_a_batch_with_one_failed_scan_not_one_per_record() -> None:
    # Given Record's directory, its first Scan failing
    source, clock = FailingFirst([CAPPED]), [0.0]
    directory = CampaignDirectory(source, ttl_seconds=60, monotonic=lambda: clock[0])
    # When a batch's hundred records each ask for their campaign
    for _ in range(100):
        with pytest.raises(ConnectionError):
            directory.campaign("cmp-1")
    # Then the table was scanned once, and after the retry interval, once it answers, the directory loads
    assert source.scans == 1
    source.failing = False
    clock[0] = FIRST_LOAD_RETRY_SECONDS
    assert directory.campaign("cmp-1") == CAPPED
    assert source.scans == 2


def test_a_malformed_record_fails_alone_and_its_content_is_not_logged(
    ports: Ports, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a batch with a good impression, a decision, and records that are not valid messages
    good = message_records(outcome(listener="listener-f"), decision(decision_id="d-f"))
    secret = outcome(listener="listener-secret").model_dump(mode="json") | {"token": "tok.SECRET-SIGNATURE"}
    bad = [sqs_record(json.dumps(secret)), sqs_record("{not json"), sqs_record('{"kind": "teleport"}')]
    # When the batch is processed
    response = ports.process(good[0], *bad, good[1])
    # Then only the bad ones fail, the others are counted and logged
    assert failed_ids(response) == {record["messageId"] for record in bad}
    assert set(ports.counter.read_counters("listener-f", NOW).values()) == {1}
    assert [record.decision_id for record in read_decisions(ports.logs, NOW, NOW)] == ["d-f"]
    # And the logs name the message ids, never the token or the listener
    output = " ".join(str(vars(entry)) for entry in caplog.records)
    assert all(record["messageId"] in output for record in bad)
    assert "SECRET" not in output
    assert "listener-secret" not in output


def test_the_envelope_is_checked_for_what_record_reads_and_nothing_else(ports: Ports) -> None:
    # Given a record without the envelope fields Record never reads, and one without its body
    bare = message_records(outcome(listener="listener-e"))[0]
    for unread in ("attributes", "md5OfBody", "eventSource", "eventSourceARN", "awsRegion", "receiptHandle"):
        del bare[unread]
    bodiless = message_records(outcome(listener="listener-e2"))[0]
    del bodiless["body"]
    # When the batch is processed
    response = ports.process(bare, bodiless)
    # Then the first is counted and the second fails alone, by its message id
    assert failed_ids(response) == {bodiless["messageId"]}
    assert set(ports.counter.read_counters("listener-e", NOW).values()) == {1}
    assert ports.counter.read_counters("listener-e2", NOW) == {}


def test_an_unavailable_counter_store_fails_only_its_records_which_succeed_on_redelivery(ports: Ports) -> None:
    # Given the counters of one listener cannot be written
    ports.counter.failing_listeners.add("listener-sick")
    sick, healthy = message_records(outcome(listener="listener-sick"), outcome(listener="listener-ok"))
    # When the batch is processed
    response = ports.process(sick, healthy)
    # Then only the sick record fails, and its row is not logged yet
    assert failed_ids(response) == {sick["messageId"]}
    assert len(list(read_outcomes(ports.logs, NOW, NOW))) == 1
    # When the store recovers and SQS redelivers the failed record
    ports.counter.failing_listeners.clear()
    assert ports.process(sick) == {"batchItemFailures": []}
    # Then everything is there exactly once
    assert set(ports.counter.read_counters("listener-sick", NOW).values()) == {1}
    assert set(ports.counter.read_counters("listener-ok", NOW).values()) == {1}
    assert len(list(read_outcomes(ports.logs, NOW, NOW))) == 2


def test_a_failed_log_write_fails_its_records_and_the_retry_doubles_nothing(ports: Ports) -> None:
    # Given outcome objects cannot be written
    ports.logs.failing_prefixes.add("logs/outcomes/")
    records = message_records(outcome(listener="listener-g"), decision(decision_id="d-g"))
    # When the batch is processed
    response = ports.process(*records)
    # Then the impression (already counted) is reported failed with its object; the decision is logged
    assert failed_ids(response) == {records[0]["messageId"]}
    assert [record.decision_id for record in read_decisions(ports.logs, NOW, NOW)] == ["d-g"]
    # When the bucket recovers and the record is redelivered
    ports.logs.failing_prefixes.clear()
    assert ports.process(records[0]) == {"batchItemFailures": []}
    # Then it is counted once and logged once
    assert set(ports.counter.read_counters("listener-g", NOW).values()) == {1}
    assert len(list(read_outcomes(ports.logs, NOW, NOW))) == 1


def test_a_batch_that_fails_entirely_is_reported_not_raised(ports: Ports) -> None:
    ports.logs.available = False
    records = message_records(decision(decision_id="d-h1"), decision(decision_id="d-h2"))
    assert failed_ids(ports.process(*records)) == {record["messageId"] for record in records}


def test_a_sick_counter_store_is_not_called_for_the_rest_of_the_batch(ports: Ports) -> None:
    ports.counter.available = False
    records = message_records(*(outcome(listener=f"listener-i{n}") for n in range(10)))
    response = ports.process(*records)
    assert len(failed_ids(response)) == 10
    assert ports.counter.writes == ports.recorder.breaker_threshold


def test_the_next_batch_starts_clean_after_the_breaker_tripped(ports: Ports) -> None:
    # Given a batch in which the counter store failed until the breaker stopped calling it
    ports.counter.available = False
    tripped = message_records(*(outcome(listener=f"listener-r{n}") for n in range(5)))
    assert len(failed_ids(ports.process(*tripped))) == 5
    # When the store recovers and the next batch comes, to the same recorder
    ports.counter.available = True
    writes = ports.counter.writes
    fresh = message_records(outcome(listener="listener-r9"), decision(decision_id="d-r9"))
    # Then it is counted, logged and reported on its own: nothing of the first batch carried over
    assert ports.process(*fresh) == {"batchItemFailures": []}
    assert ports.counter.writes == writes + 1
    assert set(ports.counter.read_counters("listener-r9", NOW).values()) == {1}
    assert [record.decision_id for record in read_decisions(ports.logs, NOW, NOW)] == ["d-r9"]


def test_a_batch_leaves_nothing_for_the_cyclic_collector(ports: Ports) -> None:
    # Given a warm recorder and batches of impressions, other outcomes and decision records
    batches = [
        message_records(
            *(outcome(listener=f"listener-k{b}-{n}") for n in range(8)),
            outcome(listener=f"listener-k{b}", event_type=EventType.CLICK),
            decision(decision_id=f"d-k{b}"),
        )
        for b in range(6)
    ]
    ports.process(*batches[0])
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        # When five more batches are processed with the collector off
        for records in batches[1:]:
            assert ports.process(*records) == {"batchItemFailures": []}
        left = gc.collect()
    finally:
        if collecting:
            gc.enable()
    # Then reference counting freed every batch: the collector, which runs inside some batch, has nothing to do
    assert left == 0, f"{left} objects in cycles after 5 batches"


def test_counting_stops_close_to_the_timeout(ports: Ports) -> None:
    records = message_records(outcome(listener="listener-j"), decision(decision_id="d-j"))
    response = ports.process(*records, context=AlmostOutOfTime())
    assert failed_ids(response) == {records[0]["messageId"]}
    assert ports.counter.writes == 0


def test_a_sick_counter_store_fails_no_impression_that_writes_nothing_to_it(ports: Ports) -> None:
    # Given a counter store that fails, and after three capped impressions (which trip the breaker) two that
    # write no counter: one of an uncapped campaign, one without capping consent
    ports.counter.available = False
    capped = message_records(*(outcome(listener=f"listener-t{n}") for n in range(3)))
    free, unconsented = message_records(
        outcome(campaign_id="free", advertiser_id="adv-2", ad_id="free-ad-1"), outcome(listener=None)
    )
    # When the batch is processed
    response = ports.process(*capped, free, unconsented)
    # Then only the capped ones fail: the other two's delivery and rows do not depend on the counter store
    assert failed_ids(response) == {record["messageId"] for record in capped}
    assert len(list(read_outcomes(ports.logs, NOW, NOW))) == 2


def test_a_sick_delivery_store_is_not_called_for_the_rest_of_the_batch(ports: Ports) -> None:
    # Given a delivery store that fails, and clicks of three campaigns in ten hours (thirty groups)
    ports.delivery.available = False
    clicks = message_records(
        *(
            outcome(
                event_type=EventType.CLICK, campaign_id=c, advertiser_id="adv-1", occurred_at=NOW - timedelta(hours=n)
            )
            for n in range(10)
            for c in ("cmp-1", "free", "sibling")
        )
    )
    decided = message_records(decision(decision_id="d-u"))
    # When the batch is processed
    response = ports.process(*clicks, *decided)
    # Then the store is called until three campaigns' writes failed in a row, every click fails, and the
    # decision is logged
    assert ports.delivery.writes == ports.recorder.breaker_threshold
    assert failed_ids(response) == {record["messageId"] for record in clicks}
    assert [record.decision_id for record in read_decisions(ports.logs, NOW, NOW)] == ["d-u"]


def test_delivery_stops_close_to_the_timeout(ports: Ports) -> None:
    clicks = message_records(outcome(event_type=EventType.CLICK), decision(decision_id="d-v"))
    response = ports.process(*clicks, context=AlmostOutOfTime())
    assert failed_ids(response) == {clicks[0]["messageId"]}
    assert ports.delivery.writes == 0


class RequestCountsOverflow(InMemoryDeliveryCounter):
    """A store whose request counts raise what a decision decided at the calendar's end did: the expiry of its
    hour's count is past ``datetime.max``."""

    def add_requests(self, counts: Any) -> None:
        raise OverflowError("date value out of range")


def test_a_request_count_that_cannot_be_written_fails_no_record(ports: Ports) -> None:
    # Given request counts that raise something other than an unavailable store
    ports.recorder.delivery = RequestCountsOverflow()
    records = message_records(decision(decision_id="d-w1"), decision(decision_id="d-w2"))
    # When the batch is processed, then both decisions are logged and none fails: the counts are best effort (a
    # failed batch would be redelivered, logged again and its other counts added again)
    assert ports.process(*records) == {"batchItemFailures": []}
    assert {record.decision_id for record in read_decisions(ports.logs, NOW, NOW)} == {"d-w1", "d-w2"}


def test_rows_are_partitioned_by_their_own_hour_and_outcomes_carry_no_listener_id(ports: Ports) -> None:
    later = NOW + timedelta(hours=2)
    ports.process(*message_records(outcome(listener="listener-k"), outcome(listener="listener-k", occurred_at=later)))
    keys = sorted(ports.logs.objects)
    assert [key.rsplit("/", 1)[0] for key in keys] == [
        "logs/outcomes/dt=2026-11-25/hour=13",
        "logs/outcomes/dt=2026-11-25/hour=15",
    ]
    rows = [json.loads(line) for key in keys for line in decode_object(ports.logs.objects[key])]
    assert all(not {"listener", "listener_id", "listener_hash", "session"} & row.keys() for row in rows)
    assert "listener-k" not in json.dumps(rows)


def test_an_impression_without_capping_consent_counts_toward_delivery_but_keeps_no_counter(ports: Ports) -> None:
    # Given an impression whose token carried no listener pseudonym (no capping consent)
    event = outcome(listener=None, session="")
    # When it is recorded
    response = ports.process(*message_records(event))
    # Then nothing is written about the listener, and the campaign's delivery still counts it
    assert response == {"batchItemFailures": []}
    assert ports.counter.counts == {}
    assert ports.counter.markers == set()
    assert ports.delivery.lifetime(CAPPED.campaign_id).impressions == 1


def test_an_outcome_queued_before_pseudonyms_is_recorded_without_its_raw_listener_id(ports: Ports) -> None:
    legacy = outcome().model_dump(mode="json") | {"listener_id": "listener-raw", "session": "s:raw-session"}
    del legacy["listener"]
    response = ports.process(sqs_record(json.dumps(legacy)))
    assert response == {"batchItemFailures": []}
    assert ports.counter.counts == {}
    [key] = ports.logs.objects
    assert not any("raw" in line for line in decode_object(ports.logs.objects[key]))


def test_an_outcome_queued_before_pseudonyms_needs_no_session_and_is_still_checked(ports: Ports) -> None:
    legacy = outcome().model_dump(mode="json") | {"listener_id": "listener-raw"}
    del legacy["listener"], legacy["session"]
    broken = legacy | {"event_type": "purchase"}
    response = ports.process(sqs_record(json.dumps(legacy)), sqs_record(json.dumps(broken), message_id="m-broken"))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-broken"}]}
    assert ports.counter.counts == {}
    assert ports.delivery.lifetime(CAPPED.campaign_id).impressions == 1


def test_an_outcome_decided_longer_ago_than_its_markers_live_is_logged_but_not_counted_twice_or_at_all(
    ports: Ports,
) -> None:
    # Given an impression counted when it was fresh, whose markers then expired (DynamoDB's TTL), and the same
    # impression again 20 days after its decision (a beacon replayed until its token expired, then a DLQ redrive,
    # which resets a message's retention)
    decided = NOW - timedelta(days=20)
    first = outcome(listener="listener-late", decision_id=decision_id_at(decided), occurred_at=decided)
    fresh = OutcomeRecorder(
        counter=ports.counter,
        campaigns=CampaignDirectory(InMemoryCampaigns([CAPPED]), ttl_seconds=60),
        logs=InMemoryLogStore(),
        delivery=ports.delivery,
        clock=lambda: decided + timedelta(minutes=1),
    )
    assert fresh.process_batch(sqs_event(*message_records(first)), None) == {"batchItemFailures": []}
    ports.counter.markers.clear()
    ports.delivery.markers.clear()
    counted, delivered = ports.counter.read_counters("listener-late", NOW), ports.delivery.lifetime("cmp-1")
    assert set(counted.values()) == {1}
    # When Record gets the copy, next to an outcome decided within the horizon
    recent = outcome(
        listener="listener-recent", decision_id=decision_id_at(NOW - COUNTING_HORIZON + timedelta(hours=1))
    )
    metrics.clear_metrics()
    response = ports.process(
        *message_records(first.model_copy(update={"event_id": "e-replayed"})), *message_records(recent)
    )
    emitted = dict(metrics.metric_set)
    # Then the copy is logged but counts in no cap and no delivery, and says so; the recent one counts
    assert response == {"batchItemFailures": []}
    assert ports.counter.read_counters("listener-late", NOW) == counted
    assert ports.delivery.lifetime("cmp-1").impressions == delivered.impressions + 1  # the recent one only
    assert set(ports.counter.read_counters("listener-recent", NOW).values()) == {1}
    assert [row.event_id for row in read_outcomes(ports.logs, decided, NOW)] == ["e-replayed", recent.event_id]
    assert emitted["OutcomesTooLateToCount"]["Value"] == [1.0]
    assert COUNTING_HORIZON < MARKER_LIFETIME


def test_the_marker_names_the_impression_not_the_listener_and_outlives_any_redelivery(ports: Ports) -> None:
    event = outcome(listener="listener-l")
    ports.recorder.record_impression(event)
    assert marker_key(event) in ports.counter.markers
    assert marker_key(event) == f"seen#{event.decision_id}#{event.ad_id}#impression"
    assert timedelta(days=14) <= MARKER_LIFETIME


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (NOW, NOW.replace(minute=0) + MARKER_LIFETIME + timedelta(hours=1)),
        (NOW.replace(minute=0), NOW.replace(minute=0) + MARKER_LIFETIME),
        (NOW.replace(minute=0, microsecond=1), NOW.replace(minute=0) + MARKER_LIFETIME + timedelta(hours=1)),
        (
            NOW.astimezone(timezone(timedelta(hours=5, minutes=30))),
            NOW.replace(minute=0) + MARKER_LIFETIME + timedelta(hours=1),
        ),
    ],
)
def test_a_markers_expiry_is_a_whole_hour_at_least_its_lifetime_away(now: datetime, expected: datetime) -> None:
    # The marker names its decision, as the decision rows do: its expiry must not tell the second it was counted
    expires = marker_expiry(now)
    assert expires == expected
    assert expires.timestamp() % 3600 == 0
    assert now + MARKER_LIFETIME <= expires < now + MARKER_LIFETIME + timedelta(hours=1)


def test_a_future_occurred_at_counts_in_the_window_it_was_received(ports: Ports) -> None:
    event = outcome(listener="listener-m").model_copy(update={"occurred_at": NOW + timedelta(days=3)})
    ports.recorder.record_impression(event)
    counted = ports.counter.read_counters("listener-m", NOW)
    assert sorted(counted) == sorted(
        slot.key for slot in impression_counters(CAPPED, CAPPED.frequency_caps, event.received_at, event.session)
    )


def test_campaign_fixture_is_capped() -> None:
    assert isinstance(CAPPED, Campaign)
    assert CAPPED.is_capped
    assert not FREE.is_capped


def test_the_directory_resolves_each_campaigns_caps_at_load_as_advertiser_caps_does() -> None:
    # Given an advertiser cap one campaign declares, a sibling declaring none, and another advertiser
    campaigns = [
        campaign(
            campaign_id="a", advertiser_id="adv", frequency_caps=[{"max": 4, "window": "day", "scope": "advertiser"}]
        ),
        campaign(campaign_id="b", advertiser_id="adv"),
        campaign(campaign_id="c", advertiser_id="other", frequency_caps=[{"max": 2, "window": "session"}]),
    ]
    directory = CampaignDirectory(InMemoryCampaigns(campaigns), ttl_seconds=3600)
    expected = AdvertiserCaps(campaigns)
    # Then the caps resolved at load are the ones AdvertiserCaps gives, for every campaign
    for declared in campaigns:
        found = directory.campaign(declared.campaign_id)
        assert found is not None
        assert directory.counter_caps_of(found) == counter_caps(expected, declared) != ()
    # And a campaign object the snapshot does not hold (e.g. from an earlier load) is resolved, not looked up
    edited = campaigns[1].model_copy(update={"frequency_caps": [FrequencyCap(max=1, window=CapWindow.HOUR)]})
    assert directory.counter_caps_of(edited) == counter_caps(expected, edited) != counter_caps(expected, campaigns[1])


def counter_caps(caps: AdvertiserCaps, of: Campaign) -> tuple[CounterCap, ...]:
    return tuple(CounterCap.of(cap, of) for cap in caps.caps_of(of))


def test_each_handled_record_is_logged_at_debug_and_not_at_info(ports: Ports, caplog: pytest.LogCaptureFixture) -> None:
    # Given a batch of an outcome and a decision
    records = message_records(outcome(), decision(decision_id="d-debug"))
    previous = logger.log_level
    try:
        # When it is processed at DEBUG, then at INFO
        logger.setLevel(logging.DEBUG)
        with caplog.at_level(logging.DEBUG):
            ports.process(*records)
        at_debug = [vars(entry) for entry in caplog.records if entry.getMessage() == "record handled"]
        caplog.clear()
        logger.setLevel(logging.INFO)
        with caplog.at_level(logging.DEBUG):
            ports.process(*records)
    finally:
        logger.setLevel(previous)
    # Then DEBUG names each record's message id and kind, and INFO leaves the line out
    assert [(entry["message_id"], entry["kind"]) for entry in at_debug] == [
        (records[0]["messageId"], "outcome"),
        (records[1]["messageId"], "decision"),
    ]
    assert not [entry for entry in caplog.records if entry.getMessage() == "record handled"]
