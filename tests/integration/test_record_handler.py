"""The record handler in-process against moto in server mode over HTTP, resources from template.yaml.

Faults are real: DynamoDB traffic goes through a throttling proxy, S3 is pointed at a closed port. Each test
uses its own listeners and decisions, so tests can share the stack (and run in parallel workers).
"""

import hashlib
import json
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from adserve.campaigns.directory import CampaignDirectory
from adserve.campaigns.model import Campaign
from adserve.cli import main as cli
from adserve.dal.aws_clients import dynamodb_client, s3_client
from adserve.dal.campaign_store import CampaignStore
from adserve.dal.delivery_store import DynamoDeliveryStore
from adserve.dal.frequency_cap_store import FrequencyCapStore
from adserve.dal.impression_counter import DynamoImpressionCounter
from adserve.dal.json_clients import DynamoDBJsonClient
from adserve.dal.log_store import S3LogStore
from adserve.outcomes.catalog_snapshots import CatalogSnapshotFile
from adserve.outcomes.decision_records import DecisionRecord
from adserve.outcomes.events import OutcomeEvent
from adserve.outcomes.logs import LoggedOutcome, read_decisions, read_outcomes
from adserve.outcomes.recording import MARKER_LIFETIME, CountResult, OutcomeRecorder, marker_key

from devstack.fakes import InMemoryLogStore
from devstack.stack import LocalStack
from tests.support.aws_proxy import AwsProxy, aws_proxy
from tests.support.builders import campaign, impression_counters
from tests.support.compact_records import compacted, snapshot_of
from tests.support.privacy import pseudonym
from tests.support.record_messages import decision, failed_ids, message_records, outcome, sqs_event, sqs_record
from tests.support.stored_campaigns import stored_campaigns

EVENTS = Path(__file__).parents[2] / "events"
FUNCTION = "RecordFunction"
CAPPED = campaign(
    campaign_id="rec-capped",
    advertiser_id="adv-rec",
    frequency_caps=[{"max": 50, "window": "day"}, {"max": 100, "window": "lifetime", "scope": "advertiser"}],
)


@pytest.fixture(scope="module")
def seeded(local_stack: LocalStack) -> Iterator[Campaign]:
    with stored_campaigns(local_stack, [CAPPED], reset=[FUNCTION]):
        yield CAPPED


def dynamodb(local_stack: LocalStack) -> DynamoDBJsonClient:
    return dynamodb_client(endpoint_url=local_stack.endpoint_url)


def record(local_stack: LocalStack, *records: dict[str, Any]) -> set[str]:
    """Invoke Record with one SQS batch; the ids it reports failed."""
    response: dict[str, Any] = local_stack.invoke(FUNCTION, sqs_event(*records))
    return failed_ids(response)


def counters(local_stack: LocalStack, listener_id: str) -> dict[str, int]:
    """What Decide reads for the listener now: its live counters, in one Query."""
    return counters_at(local_stack, listener_id, datetime.now(UTC))


def expected_counts(event: OutcomeEvent, impressions: int) -> dict[str, int]:
    return {
        slot.key: impressions
        for slot in impression_counters(CAPPED, CAPPED.frequency_caps, event.occurred_at, event.session)
    }


def log_store(local_stack: LocalStack) -> S3LogStore:
    return S3LogStore(s3_client(endpoint_url=local_stack.endpoint_url), local_stack.physical_name("LogsBucket"))


def logged_outcomes(local_stack: LocalStack, decision_ids: set[str]) -> list[LoggedOutcome]:
    now = datetime.now(UTC)
    return [row for row in read_outcomes(log_store(local_stack), now, now) if row.decision_id in decision_ids]


def impression(listener_id: str, **changes: Any) -> OutcomeEvent:
    return outcome(
        listener=listener_id,
        campaign_id=CAPPED.campaign_id,
        advertiser_id=CAPPED.advertiser_id,
        ad_id=CAPPED.creatives[0].ad_id,
        **{"occurred_at": datetime.now(UTC)} | changes,
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def test_the_sample_event_is_accepted(local_stack: LocalStack, seeded: Campaign) -> None:
    event = json.loads((EVENTS / "record_sqs_batch.json").read_text())
    assert local_stack.invoke(FUNCTION, event) == {"batchItemFailures": []}


def test_impressions_increment_the_counters_decide_reads(local_stack: LocalStack, seeded: Campaign) -> None:
    listener = unique("listener")
    first, second = impression(listener), impression(listener)
    assert record(local_stack, *message_records(first, second)) == set()
    assert counters(local_stack, listener) == expected_counts(first, 2)


def test_one_message_delivered_three_times_counts_once_and_logs_once(local_stack: LocalStack, seeded: Campaign) -> None:
    listener = unique("listener")
    event = impression(listener)
    [delivery] = message_records(event)
    for _ in range(3):
        assert record(local_stack, delivery) == set()
    assert counters(local_stack, listener) == expected_counts(event, 1)
    assert [row.identity for row in logged_outcomes(local_stack, {event.decision_id})] == [event.identity]


def test_a_counted_impression_leaves_nothing_that_joins_its_decision_to_the_listener(
    local_stack: LocalStack, seeded: Campaign
) -> None:
    # Given an impression of a listener (a pseudonym, as Track queues it) counted by Record, then redelivered
    listener, before = pseudonym(unique("listener")), datetime.now(UTC)
    event = impression(listener)
    [delivery] = message_records(event)
    for _ in range(2):
        assert record(local_stack, delivery) == set()
    after = datetime.now(UTC)
    assert counters(local_stack, listener) == expected_counts(event, 1)
    client, table = dynamodb(local_stack), local_stack.physical_name("FrequencyCapsTable")
    # Then the listener's partition holds its counters and nothing that names the decision (which its decision
    # row carries even when it refused measurement)
    partition = [
        item
        for page in client.query_pages(
            TableName=table,
            KeyConditionExpression="listener_id = :listener",
            ExpressionAttributeValues={":listener": {"S": listener}},
            ConsistentRead=True,
        )
        for item in page["Items"]
    ]
    assert {item["counter_key"]["S"] for item in partition} == set(expected_counts(event, 1))
    assert event.decision_id not in json.dumps(partition)
    # And the marker, in a partition of its own, holds neither the pseudonym nor the second it was written
    marker = client.get_item(
        TableName=table,
        Key={"listener_id": {"S": marker_key(event)}, "counter_key": {"S": "seen"}},
        ConsistentRead=True,
    )["Item"]
    assert listener not in json.dumps(marker)
    assert set(marker) == {"listener_id", "counter_key", "expires_at"}
    expires_at = int(marker["expires_at"]["N"])
    assert expires_at % 3600 == 0
    assert (
        (before + MARKER_LIFETIME).timestamp()
        <= expires_at
        < (after + MARKER_LIFETIME + timedelta(hours=1)).timestamp()
    )
    # And no item of the table names both
    items = [item for page in client.scan_pages(TableName=table, ConsistentRead=True) for item in page["Items"]]
    assert not [item for item in map(json.dumps, items) if listener in item and event.decision_id in item]


def test_a_malformed_record_fails_alone(local_stack: LocalStack, seeded: Campaign) -> None:
    listener = unique("listener")
    event, logged = impression(listener), decision(decision_id=unique("d"), decided_at=datetime.now(UTC))
    good = message_records(event, logged)
    bad = sqs_record('{"kind": "outcome", "token": "forged"}')
    assert record(local_stack, good[0], bad, good[1]) == {bad["messageId"]}
    assert counters(local_stack, listener) == expected_counts(event, 1)
    now = datetime.now(UTC)
    assert logged.decision_id in {row.decision_id for row in read_decisions(log_store(local_stack), now, now)}


@pytest.fixture
def dynamodb_proxy(local_stack: LocalStack, seeded: Campaign) -> Iterator[AwsProxy]:
    """Record's DynamoDB calls go through a proxy for this test; a fresh environment sees it."""
    with aws_proxy(local_stack.endpoint_url) as proxy, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        local_stack.reset_function(FUNCTION)
        yield proxy
    local_stack.reset_function(FUNCTION)


def test_throttled_counters_mid_batch_fail_their_records_which_succeed_on_redelivery(
    local_stack: LocalStack, dynamodb_proxy: AwsProxy
) -> None:
    # Given DynamoDB starts throttling after two impressions of a batch
    listener = unique("listener")
    events = [impression(listener) for _ in range(4)]
    batch = message_records(*events)
    dynamodb_proxy.throttle_after["TransactWriteItems"] = 2
    # When the batch is processed
    failed = record(local_stack, *batch)
    # Then every record is reported failed: two were throttled counting caps, and the delivery transaction
    # of the two counted (after the per-record step) was throttled too; their caps were counted once
    assert failed == {delivery["messageId"] for delivery in batch}
    assert counters(local_stack, listener) == expected_counts(events[0], 2)
    # When DynamoDB recovers and SQS redelivers the failed records
    dynamodb_proxy.reset()
    assert record(local_stack, *(delivery for delivery in batch if delivery["messageId"] in failed)) == set()
    # Then every impression is counted and logged once
    assert counters(local_stack, listener) == expected_counts(events[0], 4)
    assert len(logged_outcomes(local_stack, {event.decision_id for event in events})) == 4


def test_unreachable_s3_fails_the_batch_and_the_redelivery_loses_and_doubles_nothing(
    local_stack: LocalStack, seeded: Campaign
) -> None:
    listener = unique("listener")
    event, logged = impression(listener), decision(decision_id=unique("d"), decided_at=datetime.now(UTC))
    batch = message_records(event, logged)
    # Given S3 is unreachable, when the batch is processed, then every record is reported failed
    with pytest.MonkeyPatch.context() as patch:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        patch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{closed_port}")
        local_stack.reset_function(FUNCTION)
        assert record(local_stack, *batch) == {delivery["messageId"] for delivery in batch}
    # When S3 is back and SQS redelivers the batch
    local_stack.reset_function(FUNCTION)
    assert record(local_stack, *batch) == set()
    # Then the impression was counted once and each row reads back once
    assert counters(local_stack, listener) == expected_counts(event, 1)
    assert len(logged_outcomes(local_stack, {event.decision_id})) == 1
    now = datetime.now(UTC)
    decisions = [
        row for row in read_decisions(log_store(local_stack), now, now) if row.decision_id == logged.decision_id
    ]
    assert len(decisions) == 1


def recorder(local_stack: LocalStack) -> OutcomeRecorder:
    """The domain service on the real DynamoDB adapters (one thread-safe client), logs kept in memory."""
    client = dynamodb(local_stack)
    return OutcomeRecorder(
        counter=DynamoImpressionCounter(client, local_stack.physical_name("FrequencyCapsTable")),
        campaigns=CampaignDirectory(CampaignStore(client, local_stack.physical_name("CampaignsTable")), 60),
        logs=InMemoryLogStore(),
        delivery=DynamoDeliveryStore(client, local_stack.physical_name("DeliveryTable")),
    )


def in_threads(events: list[OutcomeEvent], service: OutcomeRecorder) -> Counter[CountResult]:
    service.campaigns.campaign(CAPPED.campaign_id)  # load the directory once, outside the race
    results: Counter[CountResult] = Counter()
    lock, start = threading.Lock(), threading.Barrier(len(events))

    def run(event: OutcomeEvent) -> None:
        start.wait()
        result = service.record_impression(event)
        with lock:
            results[result] += 1

    threads = [threading.Thread(target=run, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_twenty_concurrent_impressions_give_the_exact_count(local_stack: LocalStack, seeded: Campaign) -> None:
    listener = unique("listener")
    events = [impression(listener) for _ in range(20)]
    assert in_threads(events, recorder(local_stack)) == {CountResult.COUNTED: 20}
    assert counters(local_stack, listener) == expected_counts(events[0], 20)


def test_one_impression_from_twenty_threads_counts_once(local_stack: LocalStack, seeded: Campaign) -> None:
    listener = unique("listener")
    event = impression(listener)
    results = in_threads([event] * 20, recorder(local_stack))
    assert results == {CountResult.COUNTED: 1, CountResult.DUPLICATE: 19}
    assert counters(local_stack, listener) == expected_counts(event, 1)


def test_the_replay_tool_joins_decisions_and_outcomes(
    local_stack: LocalStack, seeded: Campaign, capsys: pytest.CaptureFixture[str]
) -> None:
    listener, now = unique("listener"), datetime.now(UTC)
    logged = decision(decision_id=unique("d"), decided_at=now, ads=(CAPPED.creatives[0].ad_id,))
    assert record(local_stack, *message_records(logged, impression(listener, decision_id=logged.decision_id))) == set()
    hour = now.strftime("%Y-%m-%dT%H")
    bucket = local_stack.physical_name("LogsBucket")
    assert cli.main(["logs", "--from", hour, "--to", hour, "--kind", "joined", "--bucket", bucket]) == 0
    output = capsys.readouterr()
    lines = [json.loads(line) for line in output.out.splitlines()]
    rows = [line for line in lines if "propensity" in line]  # the handler's own log lines share stdout here
    [row] = [row for row in rows if row["decision_id"] == logged.decision_id]
    assert row["ad_id"] == CAPPED.creatives[0].ad_id
    assert (row["propensity"], row["impression"], row["click"], row["skip"]) == (0.9, True, False, False)
    summary = json.loads(output.err.strip().splitlines()[-1])
    assert summary["rows"] == len(rows)


def test_the_replay_tool_joins_a_compact_decisions_features_from_its_catalog_snapshot(
    local_stack: LocalStack, seeded: Campaign, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a compact decision record through Record, its catalog snapshot in the logs bucket (as Decide puts it)
    listener, now = unique("listener"), datetime.now(UTC)
    inline = decision(decision_id=unique("d"), decided_at=now, ads=(CAPPED.creatives[0].ad_id,))
    snapshot = snapshot_of([inline])
    log_store(local_stack).put_if_absent(snapshot.key, snapshot.body)
    compact = compacted(inline, snapshot)
    assert record(local_stack, *message_records(compact, impression(listener, decision_id=inline.decision_id))) == set()
    # Then `adserve logs` prints the decision as the inline record and the joined row with the ad's features
    hour = now.strftime("%Y-%m-%dT%H")
    bucket = local_stack.physical_name("LogsBucket")
    for kind in ("decisions", "joined"):
        assert cli.main(["logs", "--from", hour, "--to", hour, "--kind", kind, "--bucket", bucket]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [logged] = [line for line in lines if line.get("kind") == "decision" and line["decision_id"] == inline.decision_id]
    assert DecisionRecord.model_validate(logged) == inline
    [row] = [line for line in lines if "propensity" in line and line["decision_id"] == inline.decision_id]
    assert row["ad_features"] == inline.inline_candidates[0].features


def test_the_replay_tool_says_how_many_compact_decisions_it_could_not_join_to_their_snapshot(
    local_stack: LocalStack, seeded: Campaign, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a compact decision through Record whose catalog snapshot in the logs bucket is not what its name hashes to
    now = datetime.now(UTC)
    inline = decision(decision_id=unique("d"), decided_at=now, ads=(CAPPED.creatives[0].ad_id,))
    corrupt = CatalogSnapshotFile(version=hashlib.sha256(unique("catalog").encode()).hexdigest(), body=b"not gzip")
    log_store(local_stack).put_if_absent(corrupt.key, corrupt.body)
    assert record(local_stack, *message_records(compacted(inline, corrupt))) == set()
    # When `adserve logs` reads its hour
    hour = now.strftime("%Y-%m-%dT%H")
    bucket = local_stack.physical_name("LogsBucket")
    assert cli.main(["logs", "--from", hour, "--to", hour, "--kind", "decisions", "--bucket", bucket]) == 0
    output = capsys.readouterr()
    # Then the decision is not printed, and the summary counts it (other tests' rows may share the hour)
    assert inline.decision_id not in output.out
    assert json.loads(output.err.strip().splitlines()[-1])["unresolved_catalog"] >= 1


def test_a_counter_past_its_expiry_starts_again_though_ttl_has_not_deleted_it(
    local_stack: LocalStack, seeded: Campaign
) -> None:
    # Given a listener at 3 on the advertiser's lifetime counter 500 days ago (moto, like DynamoDB for days after
    # an item's expiry, still stores it)
    listener, service = unique("listener"), recorder(local_stack)
    then = datetime.now(UTC) - timedelta(days=500)
    for _ in range(3):
        service.record_impression(impression(listener, occurred_at=then))
    lifetime = next(key for key in counters_at(local_stack, listener, then) if "#lifetime#" in key)
    assert counters_at(local_stack, listener, then)[lifetime] == 3
    # When it is heard again after the counter expired (a lifetime counter lives 401 days after its last impression),
    # by twenty impressions at once, as Decide, reading the counter as absent, let them through
    later = then + timedelta(days=402)
    assert lifetime not in counters_at(local_stack, listener, later)
    events = [impression(listener, occurred_at=later) for _ in range(20)]
    assert in_threads(events, service) == {CountResult.COUNTED: 20}
    # Then the counter starts again from them, as Decide read it, and does not come back with its old count
    assert counters_at(local_stack, listener, later)[lifetime] == 20


def test_an_impression_counted_after_one_received_later_keeps_the_counters_later_expiry(
    local_stack: LocalStack, seeded: Campaign
) -> None:
    # Given a listener's impression received now, counted first (the advertiser's lifetime counter lives 401 days
    # from the next whole hour), and one received three days before it, counted after (a redriven batch)
    listener, service = unique("listener"), recorder(local_stack)
    now = datetime.now(UTC)
    assert service.record_impression(impression(listener, occurred_at=now)) is CountResult.COUNTED
    assert service.record_impression(impression(listener, occurred_at=now - timedelta(days=3))) is CountResult.COUNTED
    # Then both are on the lifetime counter, which still lives when the later one's window says it must: the earlier
    # impression's expiry, three days sooner, was not written over it
    in_399_days = counters_at(local_stack, listener, now + timedelta(days=399))
    assert [count for key, count in in_399_days.items() if "#lifetime#" in key] == [2]


def counters_at(local_stack: LocalStack, listener_id: str, now: datetime) -> dict[str, int]:
    """What Decide reads for the listener at ``now``: its counters live then."""
    store = FrequencyCapStore(dynamodb(local_stack), local_stack.physical_name("FrequencyCapsTable"))
    return store.read_counters(listener_id, now)
