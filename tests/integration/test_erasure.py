"""Erasure end to end on the local stack: Record counts a consenting listener's impressions and logs its
decisions, then `POST /v1/erasures` (the ListenersFunction handler) and `adserve forget` erase it.

Counters are written by Record itself (an SQS batch, as Lambda delivers it) under the listener's pseudonym, and
under its raw id as Record wrote them before pseudonyms existed. Record puts an impression's dedupe marker in a
partition of its own, which names no listener; the markers older versions put in the listener's partition are
written here as they left them. The rotation test rotates the stack's pseudonym
key with put-secret-value and puts the original value back afterwards, so the other tests of this worker (and
Decide's cached key) see the key they expect.
"""

import json
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from adserve.campaigns.model import Campaign
from adserve.cli.main import main
from adserve.dal.aws_clients import dynamodb_client
from adserve.dal.erasure_store import LEDGER_PREFIX, DynamoCounterPartitions, S3ErasureLedger
from adserve.dal.log_store import S3LogStore
from adserve.outcomes.logs import ReadStats, read_decisions
from adserve.privacy.pseudonyms import legacy_listener_hash

from devstack.stack import LocalStack
from tests.support.aws_proxy import aws_proxy
from tests.support.builders import campaign
from tests.support.log_lines import powertools_log_lines
from tests.support.record_messages import decision, failed_ids, message_records, outcome, sqs_event
from tests.support.stored_campaigns import stored_campaigns

EVENTS = Path(__file__).parents[2] / "events"
FUNCTION = "ListenersFunction"
CAPPED = campaign(
    campaign_id="erase-capped",
    advertiser_id="adv-erase",
    frequency_caps=[{"max": 50, "window": "day"}, {"max": 100, "window": "lifetime", "scope": "advertiser"}],
)
COUNTERS_PER_IMPRESSION = 2
"""CAPPED's two caps: one counter each."""


@pytest.fixture(scope="module")
def seeded(local_stack: LocalStack) -> Iterator[Campaign]:
    with stored_campaigns(local_stack, [CAPPED], reset=["RecordFunction"]):
        yield CAPPED


def client(local_stack: LocalStack, service: str) -> Any:
    return boto3.client(service, endpoint_url=local_stack.endpoint_url)  # type: ignore[call-overload]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def record_impression(local_stack: LocalStack, key: str, *, listener_hash: str | None = None) -> str:
    """Record one decision (logged with `listener_hash`) and its impression, counted under partition `key`."""
    decision_id = unique("d")
    ad_id = CAPPED.creatives[0].ad_id
    logged = decision(decision_id=decision_id, decided_at=datetime.now(UTC), ads=(ad_id,))
    logged = logged.model_copy(update={"listener_hash": listener_hash})
    seen = outcome(
        decision_id=decision_id,
        listener=key,
        campaign_id=CAPPED.campaign_id,
        advertiser_id=CAPPED.advertiser_id,
        ad_id=ad_id,
        occurred_at=datetime.now(UTC),
        session=unique("s:session"),
    )
    response = local_stack.invoke("RecordFunction", sqs_event(*message_records(logged, seen)))
    assert failed_ids(response) == set(), response
    return decision_id


def put_legacy_marker(local_stack: LocalStack, key: str, decision_id: str) -> None:
    """A dedupe marker where Record put it before markers had partitions of their own: the listener's."""
    expires_at = int((datetime.now(UTC) + timedelta(days=14)).timestamp())
    client(local_stack, "dynamodb").put_item(
        TableName=local_stack.physical_name("FrequencyCapsTable"),
        Item={
            "listener_id": {"S": key},
            "counter_key": {"S": f"seen#{decision_id}#{CAPPED.creatives[0].ad_id}#impression"},
            "expires_at": {"N": str(expires_at)},
        },
    )


def marker_of(local_stack: LocalStack, decision_id: str) -> dict[str, Any] | None:
    """The impression's dedupe marker in its own partition, as Record puts it now."""
    key = {"S": f"seen#{decision_id}#{CAPPED.creatives[0].ad_id}#impression"}
    item: dict[str, Any] | None = (
        client(local_stack, "dynamodb")
        .get_item(
            TableName=local_stack.physical_name("FrequencyCapsTable"),
            Key={"listener_id": key, "counter_key": {"S": "seen"}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return item


def partition(local_stack: LocalStack, key: str) -> list[str]:
    """Every sort key in a FrequencyCaps partition, counters and markers alike."""
    items = client(local_stack, "dynamodb").query(
        TableName=local_stack.physical_name("FrequencyCapsTable"),
        KeyConditionExpression="listener_id = :key",
        ExpressionAttributeValues={":key": {"S": key}},
    )["Items"]
    return sorted(item["counter_key"]["S"] for item in items)


def erase_event(listener_id: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "listeners_post_erasure.json").read_text())
    event["body"] = json.dumps({"listener_id": listener_id})
    return event


def erase(local_stack: LocalStack, listener_id: str) -> dict[str, Any]:
    response: dict[str, Any] = local_stack.invoke(FUNCTION, erase_event(listener_id))
    assert response["statusCode"] == 200, response
    body: dict[str, Any] = json.loads(response["body"])
    return body


def forget_flags(local_stack: LocalStack) -> list[str]:
    """`adserve forget`'s flags naming this stack's table, bucket and pseudonym secret."""
    return [
        "--table",
        local_stack.physical_name("FrequencyCapsTable"),
        "--bucket",
        local_stack.physical_name("LogsBucket"),
        "--pseudonym-secret",
        local_stack.physical_name("PseudonymKeySecret"),
    ]


def ledger(local_stack: LocalStack) -> S3ErasureLedger:
    return S3ErasureLedger(client(local_stack, "s3"), local_stack.physical_name("LogsBucket"))


@pytest.fixture
def rotated_key(local_stack: LocalStack) -> Iterator[None]:
    """Rotate the pseudonym key for the test, then make the original value current again."""
    secretsmanager = client(local_stack, "secretsmanager")
    secret_id = local_stack.physical_name("PseudonymKeySecret")
    original = secretsmanager.get_secret_value(SecretId=secret_id)["SecretString"]
    secretsmanager.put_secret_value(SecretId=secret_id, SecretString=secrets.token_hex(32))
    try:
        yield
    finally:
        secretsmanager.put_secret_value(SecretId=secret_id, SecretString=original)


def test_the_sample_event_erases(local_stack: LocalStack) -> None:
    event = json.loads((EVENTS / "listeners_post_erasure.json").read_text())
    response = local_stack.invoke(FUNCTION, event)
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["erased"] is True


def test_erasure_deletes_counters_and_markers_under_both_keys_and_the_raw_id_and_nothing_else(
    local_stack: LocalStack, seeded: Campaign, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    # Given a listener counted under the old key's pseudonym, then (after a rotation) the new key's, and under its
    # raw id as before pseudonyms existed; and another listener counted under the old key
    listener, other = unique("listener"), unique("listener")
    old, other_pseudonym = local_stack.pseudonyms().listener(listener), local_stack.pseudonyms().listener(other)
    decisions = [record_impression(local_stack, old, listener_hash=old)]
    other_decision = record_impression(local_stack, other_pseudonym, listener_hash=other_pseudonym)
    decisions.append(record_impression(local_stack, listener))  # the legacy partition: the raw id was the key
    request.getfixturevalue("rotated_key")
    new = local_stack.pseudonyms().listener(listener)
    assert new != old
    decisions.append(record_impression(local_stack, new, listener_hash=new))
    # and markers older versions left in the listener's partitions (old key, raw id) and the other's
    for key, decision_id in ((old, decisions[0]), (listener, decisions[1]), (other_pseudonym, other_decision)):
        put_legacy_marker(local_stack, key, decision_id)
    written = {key: partition(local_stack, key) for key in (old, new, listener, other_pseudonym)}
    assert [len(written[key]) for key in (old, new, listener, other_pseudonym)] == [
        COUNTERS_PER_IMPRESSION + 1,
        COUNTERS_PER_IMPRESSION,
        COUNTERS_PER_IMPRESSION + 1,
        COUNTERS_PER_IMPRESSION + 1,
    ], written
    capsys.readouterr()

    # When the listener is erased
    with powertools_log_lines() as lines:
        body = erase(local_stack, listener)

    # Then its three partitions are empty, the other listener's untouched, and the counts say so
    assert {key: partition(local_stack, key) for key in (old, new, listener)} == {old: [], new: [], listener: []}
    assert partition(local_stack, other_pseudonym) == written[other_pseudonym]
    assert body == {
        "erased": True,
        "partitions_searched": 3,
        "counters_deleted": 3 * COUNTERS_PER_IMPRESSION,
        "markers_deleted": 2,  # the legacy ones: Record's markers now are in partitions of their own
        "ledger_entries_added": 2,  # both pseudonyms (no rows from before pseudonyms here: PrePseudonymLogs)
        "training_logs": body["training_logs"],
    }
    assert "dropped from every training run" in body["training_logs"]
    # and the ledger holds both pseudonyms (never the id), the log line the pseudonym and never the id
    assert {old, new} <= ledger(local_stack).erased()
    assert listener not in ledger(local_stack).erased()
    assert [line["pseudonym"] for line in lines if line["message"] == "listener erased"] == [new]
    assert listener not in json.dumps(lines)
    assert "ListenersErased" in capsys.readouterr().out  # the EMF document
    # and the markers Record put now, which erasure cannot find, name neither the listener nor its pseudonyms
    for decision_id in decisions:
        marker = marker_of(local_stack, decision_id)
        assert marker is not None
        assert not {listener, old, new} & {value for attribute in marker.values() for value in attribute.values()}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ('{"listener_id": "no spaces"}', 422, "invalid_request"),
        ('{"listener_id": "user:42", "also": "more"}', 422, "invalid_request"),
        ('{"listener": {"id": "user:42"}}', 422, "invalid_request"),
        ("user:42", 400, "malformed_json"),
    ],
)
def test_a_request_that_names_no_listener_id_erases_nothing(
    local_stack: LocalStack, seeded: Campaign, body: str, status: int, code: str
) -> None:
    # Given a counted listener
    listener = "user:42"
    pseudonym = local_stack.pseudonyms().listener(listener)
    record_impression(local_stack, pseudonym, listener_hash=pseudonym)
    kept = partition(local_stack, pseudonym)
    # When an erasure arrives whose body is not exactly {"listener_id": <an id>}
    event = erase_event(listener)
    event["body"] = body
    response = local_stack.invoke(FUNCTION, event)
    # Then it is refused in the documented shape, and the listener's counters stay
    assert (response["statusCode"], json.loads(response["body"])["error"]["code"]) == (status, code)
    assert partition(local_stack, pseudonym) == kept
    erase(local_stack, listener)


def test_a_second_erasure_succeeds_and_changes_nothing(local_stack: LocalStack, seeded: Campaign) -> None:
    listener = unique("listener")
    pseudonym = local_stack.pseudonyms().listener(listener)
    record_impression(local_stack, pseudonym, listener_hash=pseudonym)
    # a pseudonym per key (2 once a test has rotated the key)
    keys = len(local_stack.pseudonyms().every_listener_pseudonym(listener))
    first = erase(local_stack, listener)
    assert (first["counters_deleted"], first["markers_deleted"], first["ledger_entries_added"]) == (2, 0, keys)

    second = erase(local_stack, listener)

    assert (second["counters_deleted"], second["markers_deleted"], second["ledger_entries_added"]) == (0, 0, 0)
    versions = client(local_stack, "s3").list_object_versions(
        Bucket=local_stack.physical_name("LogsBucket"), Prefix=f"{LEDGER_PREFIX}{pseudonym}"
    )
    assert len(versions.get("Versions", [])) == 1  # not even rewritten


@pytest.fixture
def pre_pseudonym_logs(local_stack: LocalStack) -> Iterator[None]:
    """ListenersFunction as a deployment upgraded from a release before pseudonyms has it (PrePseudonymLogs=true)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRE_PSEUDONYM_LOGS", "true")
        local_stack.reset_function(FUNCTION)
        try:
            yield
        finally:
            local_stack.reset_function(FUNCTION)


@pytest.mark.usefixtures("pre_pseudonym_logs")
def test_the_log_readers_drop_an_erased_listeners_decisions(
    local_stack: LocalStack, seeded: Campaign, capsys: pytest.CaptureFixture[str]
) -> None:
    listener, other = unique("listener"), unique("listener")
    pseudonym, other_pseudonym = (local_stack.pseudonyms().listener(name) for name in (listener, other))
    erased_decision = record_impression(local_stack, pseudonym, listener_hash=pseudonym)
    # a row logged before pseudonyms, under the unkeyed hash of the same listener
    legacy_decision = record_impression(local_stack, pseudonym, listener_hash=legacy_listener_hash(listener))
    kept_decision = record_impression(local_stack, other_pseudonym, listener_hash=other_pseudonym)
    store = S3LogStore(client(local_stack, "s3"), local_stack.physical_name("LogsBucket"))
    now = datetime.now(UTC)

    erase(local_stack, listener)
    stats = ReadStats()
    since = now - timedelta(hours=1)  # the decisions' hour, should the clock have passed one since
    read = {row.decision_id for row in read_decisions(store, since, now, stats, erased=ledger(local_stack).erased())}

    assert kept_decision in read
    assert not {erased_decision, legacy_decision} & read
    assert stats.dropped_erased >= 2
    # and `adserve logs` (the export) reads the ledger too, and says how many rows it dropped
    bucket = local_stack.physical_name("LogsBucket")
    capsys.readouterr()
    hours = ["--from", f"{since:%Y-%m-%dT%H}", "--to", f"{now:%Y-%m-%dT%H}"]
    assert main(["logs", *hours, "--kind", "decisions", "--bucket", bucket]) == 0
    printed = capsys.readouterr()
    exported = {json.loads(line)["decision_id"] for line in printed.out.splitlines()}
    assert kept_decision in exported
    assert erased_decision not in exported
    assert json.loads(printed.err.splitlines()[-1])["dropped_erased"] >= 1


@pytest.mark.parametrize("listener_id", ["-leading-dash", "x" * 65, "spaces here", "ünïcode", "semi;colon"])
def test_an_invalid_id_is_refused_with_the_error_shape_and_nothing_is_recorded(
    local_stack: LocalStack, listener_id: str
) -> None:
    before = ledger(local_stack).erased()
    response = local_stack.invoke(FUNCTION, erase_event(listener_id))
    assert response["statusCode"] == 422, response
    error = json.loads(response["body"])["error"]
    assert error["code"] == "invalid_request"
    assert error["details"][0]["field"].endswith("listener_id")
    assert listener_id not in response["body"]
    assert ledger(local_stack).erased() == before


def test_adserve_forget_erases_like_the_route(
    local_stack: LocalStack, seeded: Campaign, capsys: pytest.CaptureFixture[str]
) -> None:
    listener = unique("listener")
    pseudonym = local_stack.pseudonyms().listener(listener)
    record_impression(local_stack, pseudonym, listener_hash=pseudonym)
    flags = forget_flags(local_stack)
    # a pseudonym per key (2 once a test has rotated the key)
    keys = len(local_stack.pseudonyms().every_listener_pseudonym(listener))
    capsys.readouterr()

    assert main(["forget", listener, *flags]) == 0

    printed = json.loads(capsys.readouterr().out)
    assert (printed["counters_deleted"], printed["markers_deleted"], printed["ledger_entries_added"]) == (2, 0, keys)
    assert partition(local_stack, pseudonym) == []
    assert pseudonym in ledger(local_stack).erased()
    assert main(["forget", listener, *flags]) == 0
    assert json.loads(capsys.readouterr().out)["ledger_entries_added"] == 0


@pytest.mark.parametrize("setting", ["true", "True", "1"])
def test_adserve_forget_records_what_the_route_records_on_a_stack_with_pre_pseudonym_logs(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str], setting: str
) -> None:
    # The runbook's export line takes PRE_PSEUDONYM_LOGS from the stack's output: the command reads it as the
    # function reads its variable, so an erasure by either records the unkeyed hash of rows before pseudonyms
    listener = unique("listener")
    flags = forget_flags(local_stack)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRE_PSEUDONYM_LOGS", setting)
        assert main(["forget", listener, *flags]) == 0
        assert legacy_listener_hash(listener) in ledger(local_stack).erased()
        patch.setenv("PRE_PSEUDONYM_LOGS", "perhaps")
        capsys.readouterr()
        assert main(["forget", listener, *flags]) == 2
    assert "PRE_PSEUDONYM_LOGS" in capsys.readouterr().err
    # and the flag says it where the variable is not set
    other = unique("listener")
    assert main(["forget", other, *flags, "--pre-pseudonym-logs", "true"]) == 0
    assert legacy_listener_hash(other) in ledger(local_stack).erased()


def test_adserve_forget_refuses_an_invalid_id_before_any_call(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_status:
        main(["forget", "not an id", "--table", "t", "--bucket", "b", "--pseudonym-secret", "s"])
    assert exit_status.value.code == 2
    error = capsys.readouterr().err
    assert "not a listener id" in error
    assert "not an id" not in error


def test_the_partition_is_read_consistently_so_a_counter_written_a_moment_before_is_deleted(
    local_stack: LocalStack,
) -> None:
    # Given the erasure's partition reader, through a proxy that keeps what it is asked
    with aws_proxy(local_stack.endpoint_url, keep_traffic=True) as proxy:
        table = local_stack.physical_name("FrequencyCapsTable")
        partitions = DynamoCounterPartitions(dynamodb_client(endpoint_url=proxy.url), table)
        # When a partition is deleted
        partitions.delete_partition(unique("erased"))
    # Then its Query was a strongly consistent read: an eventually consistent one could miss a fresh counter
    queries = proxy.json_requests("Query")
    assert queries
    assert all(query["ConsistentRead"] is True for query in queries)
