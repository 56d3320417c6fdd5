"""The decide handler in-process against moto in server mode over HTTP, resources from template.yaml.

DynamoDB and SQS traffic goes through a counting, fault-injecting HTTP proxy so the tests can see how many
requests a decision makes and what happens when the caps table or the outcomes queue throttles or hangs.
"""

import contextlib
import io
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from adserve.campaigns.frequency_caps import session_key
from adserve.dal import aws_http
from adserve.dal.aws_clients import s3_client
from adserve.dal.log_store import S3LogStore
from adserve.outcomes.catalog_snapshots import CATALOG_PREFIX, CatalogSnapshots, snapshot_key
from adserve.outcomes.decision_records import DecisionRecord
from adserve.wiring import snapstart
from adserve.wiring.init_build import INIT_TYPE_VARIABLE

from tests.support.aws_proxy import AwsProxy, aws_proxy
from tests.support.builders import campaign, impression_counters
from tests.support.stored_campaigns import stored_campaigns

EVENTS = Path(__file__).parents[2] / "events"
LISTENER = "listener-42"


def sample_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def decision_event(**changes: Any) -> dict[str, Any]:
    event = sample_event("decide_post_decision.json")
    body = json.loads(event["body"])
    body.update(changes)
    event["body"] = json.dumps(body)
    return event


@pytest.fixture(scope="module")
def dynamodb_proxy(local_stack: Any) -> Iterator[AwsProxy]:
    """Route the decide function's DynamoDB and SQS calls through a proxy; a fresh execution environment sees it."""
    with aws_proxy(local_stack.endpoint_url) as proxy, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        patch.setenv("AWS_ENDPOINT_URL_SQS", proxy.url)
        local_stack.reset_function("DecideFunction")
        yield proxy
    local_stack.reset_function("DecideFunction")


@pytest.fixture(scope="module")
def seeded(local_stack: Any, dynamodb_proxy: AwsProxy) -> Iterator[dict[str, Any]]:
    campaigns = {
        "capped": campaign(
            campaign_id="capped",
            advertiser_id="adv-capped",
            value_cpm=100,
            targeting={"countries": ["SE"]},
            frequency_caps=[{"max": 2, "window": "day"}],
        ),
        "advertiser-capped": campaign(
            campaign_id="advertiser-capped",
            advertiser_id="adv-busy",
            value_cpm=90,
            frequency_caps=[{"max": 1, "window": "week", "scope": "advertiser"}],
        ),
        "free": campaign(campaign_id="free", advertiser_id="adv-free", value_cpm=1),
    }
    with stored_campaigns(local_stack, campaigns.values()):
        yield campaigns


@pytest.fixture
def proxy(dynamodb_proxy: AwsProxy, seeded: dict[str, Any]) -> AwsProxy:
    dynamodb_proxy.reset()
    return dynamodb_proxy


def decide(local_stack: Any, **changes: Any) -> dict[str, Any]:
    response: dict[str, Any] = local_stack.invoke("DecideFunction", decision_event(**changes))
    assert response["statusCode"] == 200, response
    body: dict[str, Any] = json.loads(response["body"])
    return body


def record_impression(local_stack: Any, seeded_campaign: Any, session_id: str) -> None:
    """What Record does for an impression (issue 3 makes it exactly-once); here a plain counter bump."""
    now = datetime.now(UTC)
    dynamodb = boto3.client("dynamodb", endpoint_url=local_stack.endpoint_url)
    pseudonyms = local_stack.pseudonyms()
    session = session_key(pseudonyms.session(session_id), now)
    for slot in impression_counters(seeded_campaign, seeded_campaign.frequency_caps, now, session):
        dynamodb.update_item(
            TableName=local_stack.physical_name("FrequencyCapsTable"),
            Key={"listener_id": {"S": pseudonyms.listener(LISTENER)}, "counter_key": {"S": slot.key}},
            UpdateExpression="ADD impressions :one SET expires_at = :expires",
            ExpressionAttributeValues={":one": {"N": "1"}, ":expires": {"N": str(int(slot.expires_at.timestamp()))}},
        )


def test_capped_campaigns_stop_at_their_cap(local_stack: Any, seeded: dict[str, Any], proxy: AwsProxy) -> None:
    served: list[str] = []
    for _ in range(6):
        ads = decide(local_stack, max_ads=3)["ads"]
        for ad in ads:
            served.append(ad["campaign_id"])
            record_impression(local_stack, seeded[ad["campaign_id"]], "session-9f2c")
    assert served.count("capped") == 2
    assert served.count("advertiser-capped") == 1
    assert served.count("free") == 6


def test_one_dynamodb_request_and_one_send_per_decision(local_stack: Any, proxy: AwsProxy) -> None:
    decide(local_stack)  # the first decision of an environment may also load the catalog
    proxy.reset()
    for _ in range(5):
        decide(local_stack, max_ads=3)
    assert dict(proxy.calls) == {"Query": 5, "SendMessage": 5}


def test_a_fresh_environment_creates_one_lean_client_per_service_and_time_budget(
    local_stack: Any, proxy: AwsProxy
) -> None:
    # No botocore client at all: DynamoDB (the catalog's Scans, the caps Query), SQS, Secrets Manager (one client
    # for both secrets) and S3 (the model store's and the snapshot archive's budgets) go through lean clients,
    # which read no service model
    existing = list(aws_http._CLIENTS)
    local_stack.reset_function("DecideFunction")
    decide(local_stack)
    created = [client for client in list(aws_http._CLIENTS) if all(client is not old for old in existing)]
    assert sorted(type(client).__name__ for client in created) == [
        "DynamoDBJsonClient",
        "DynamoDBJsonClient",
        "S3RestClient",
        "S3RestClient",
        "SQSJsonClient",
        "SecretsManagerJsonClient",
    ]
    budgets = [(client.service, client._budget) for client in created]
    assert len(set(budgets)) == len(budgets)


def test_in_a_lambda_init_the_service_is_built_while_the_handler_module_imports(
    local_stack: Any, proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lambda sets AWS_LAMBDA_INITIALIZATION_TYPE: the first request's reads then run in the init, started before
    # the HTTP layer's import, and the module's import waits for them (its lambda_handler is not defined yet)
    monkeypatch.setenv(INIT_TYPE_VARIABLE, "on-demand")
    handler_defined_at_scan: list[bool] = []

    def on_scan() -> None:  # the handler runs in this process: its module is in sys.modules as it imports
        module = sys.modules.get("adserve_function_decidefunction")
        handler_defined_at_scan.append(hasattr(module, "lambda_handler"))

    proxy.observers["Scan"] = on_scan
    local_stack.reset_function("DecideFunction")
    assert decide(local_stack, max_ads=3)["ads"]
    assert handler_defined_at_scan == [False, False]  # the campaigns' Scan and the pacing states', both in the init
    proxy.reset()
    assert decide(local_stack, max_ads=3)["ads"]
    assert proxy.calls["Scan"] == 0  # and the requests use the service the init built


def test_after_a_snapstart_restore_the_next_decision_reloads_the_catalog_over_new_connections(
    local_stack: Any, proxy: AwsProxy
) -> None:
    # Given a warm environment, whose next decision would not Scan (catalog TTL 30 s)
    decide(local_stack)
    proxy.reset()
    decide(local_stack)
    assert proxy.calls["Scan"] == 0
    # When SnapStart's after-restore hook runs (the sockets it held are closed)
    snapstart.restored()
    # Then the next decision Scans the campaigns and the pacing states again, and serves
    assert decide(local_stack, max_ads=3)["ads"]
    assert proxy.calls["Scan"] == 2


def test_a_cold_start_that_cannot_read_the_campaigns_answers_retry_then_serves(
    local_stack: Any, proxy: AwsProxy
) -> None:
    # Given a fresh environment whose campaigns table throttles every Scan
    local_stack.reset_function("DecideFunction")
    proxy.throttle.add("Scan")
    # When a decision is asked for, Then it is a 503 with Retry-After, not a 500
    response = local_stack.invoke("DecideFunction", decision_event())
    assert response["statusCode"] == 503, response
    assert json.loads(response["body"])["error"]["code"] == "campaigns_unavailable"
    assert response["headers"]["Retry-After"] == "1"
    # And once the table answers, the retry loads the catalog and serves
    proxy.throttle.clear()
    assert decide(local_stack, max_ads=3)["ads"]


def test_throttled_caps_table_fails_closed(local_stack: Any, proxy: AwsProxy) -> None:
    decide(local_stack)
    proxy.throttle.add("Query")
    ads = decide(local_stack, max_ads=3)["ads"]
    assert [ad["campaign_id"] for ad in ads] == ["free"]


def test_hanging_caps_table_answers_within_budget_and_fails_closed(local_stack: Any, proxy: AwsProxy) -> None:
    decide(local_stack)
    proxy.delay["Query"] = 2.0
    started = datetime.now(UTC)
    ads = decide(local_stack, max_ads=3)["ads"]
    assert (datetime.now(UTC) - started).total_seconds() < 1.5
    assert [ad["campaign_id"] for ad in ads] == ["free"]


def test_hanging_queue_answers_within_budget_and_counts_the_lost_record(local_stack: Any, proxy: AwsProxy) -> None:
    # Given a warm environment and an outcomes queue that holds every send far longer than the function's 3 s
    decide(local_stack)
    proxy.reset()
    proxy.delay["SendMessage"] = 5.0
    # When a decision is made
    printed = io.StringIO()
    started = datetime.now(UTC)
    with contextlib.redirect_stdout(printed):
        body = decide(local_stack, max_ads=3)
    elapsed = (datetime.now(UTC) - started).total_seconds()
    # Then it is served well inside the function's timeout (the default budgets took ~9 s), after one attempt,
    # and the unlogged decision is counted
    assert elapsed < 2.0
    assert body["ads"]
    assert proxy.calls["SendMessage"] == 1
    assert emitted_metric(printed.getvalue(), "DecisionLogFailures") == [1.0]


def emitted_metric(stdout: str, name: str) -> list[float]:
    """The values of one metric in the EMF documents an invocation printed."""
    values: list[float] = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line and name in (document := json.loads(line)):
            value = document[name]
            values.extend(value if isinstance(value, list) else [value])
    return values


def test_the_decision_record_reaches_the_queue(local_stack: Any, proxy: AwsProxy) -> None:
    sqs = boto3.client("sqs", endpoint_url=local_stack.endpoint_url)
    queue_url = local_stack.env["OUTCOMES_QUEUE_URL"]
    body = decide(local_stack, listener={"id": "listener-record", "country": "SE", "device": "tv"}, max_ads=2)
    records = []
    for _ in range(10):
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        for message in messages:
            if json.loads(message["Body"]).get("kind") != "decision":
                continue  # outcome events of other tests sharing this worker's queue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            records.append(DecisionRecord.model_validate_json(message["Body"]))
        if any(record.decision_id == body["decision_id"] for record in records):
            break
    [record] = [record for record in records if record.decision_id == body["decision_id"]]
    assert [choice.ad_id for choice in record.chosen] == [ad["ad_id"] for ad in body["ads"]]
    assert record.model_version == body["model_version"]
    assert record.listener_features["device"] == "tv"
    # compact: the features are in the catalog snapshot Decide wrote to the logs bucket
    assert record.schema_version == 2
    assert record.catalog_version is not None
    logs = S3LogStore(s3_client(endpoint_url=local_stack.endpoint_url), local_stack.env["LOGS_BUCKET_NAME"])
    assert snapshot_key(record.catalog_version) in set(logs.list_keys(CATALOG_PREFIX))
    joined = record.with_features(CatalogSnapshots(logs.read_object).ads(record.catalog_version))
    assert [c.features["ad_id"] for c in joined.inline_candidates] == [c.ad_id for c in joined.inline_candidates]


def body_with(**changes: Any) -> str:
    document: dict[str, Any] = {
        "listener": {"id": "l", "country": "SE", "device": "mobile"},
        "placement": "audio_midroll",
    }
    document.update(changes)
    return json.dumps(document)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ("{not json", 400, None),
        (body_with(placement="billboard"), 422, "placement"),
        (body_with(max_ads=0), 422, "max_ads"),
        (body_with(max_ads=11), 422, "max_ads"),
        (body_with(max_ads="three"), 422, "max_ads"),
        (body_with(max_ads=True), 422, "max_ads"),  # lax mode read true as 1 ad
        (body_with(max_ads="3"), 422, "max_ads"),
        (body_with(listener={"id": "l", "country": "Sweden", "device": "mobile"}), 422, "listener.country"),
        (body_with(listener={"id": "x" * 100, "country": "SE", "device": "mobile"}), 422, "listener.id"),
        (body_with(listener={"id": "l", "country": "SE", "device": "fridge"}), 422, "listener.device"),
        (body_with(exclude_ads=["a"] * 101), 422, "exclude_ads"),
        (body_with(surprise=True), 422, "surprise"),
        (body_with(consent={"tcf": "not a TC string"}), 422, "consent.tcf"),
        (body_with(consent={"tcf": "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA"[:12]}), 422, "consent.tcf"),
        (body_with(consent={"personalise": "yes please"}), 422, "consent.personalise"),
        (body_with(consent={"cap_frequency": "yes"}), 422, "consent.cap_frequency"),  # lax mode read it as consent
        ("[]", 422, "body"),
        (body_with(pad="x" * 70_000), 413, None),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_writes_nothing(
    local_stack: Any, proxy: AwsProxy, body: str, status: int, field: str | None
) -> None:
    event = sample_event("decide_post_decision.json")
    event["body"] = body
    response = local_stack.invoke("DecideFunction", event)
    assert response["statusCode"] == status
    error = json.loads(response["body"])["error"]
    assert error["code"]
    assert error["message"]
    if field is not None:
        assert field in [detail["field"] for detail in error["details"]]
    assert sum(proxy.calls.values()) == 0


def test_hanging_catalog_refresh_keeps_serving_the_snapshot_within_budget(
    local_stack: Any, proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an environment that refreshes its catalog on every request, loaded once
    monkeypatch.setenv("CATALOG_TTL_SECONDS", "0")
    local_stack.reset_function("DecideFunction")
    decide(local_stack)
    # When the campaigns table holds every Scan far longer than the function's 3 s
    proxy.reset()
    proxy.delay["Scan"] = 5.0
    started = datetime.now(UTC)
    ads = decide(local_stack, max_ads=3)["ads"]
    elapsed = (datetime.now(UTC) - started).total_seconds()
    # Then the refresh gives up after one short attempt (the default budgets took ~6 s) and the snapshot serves
    assert elapsed < 2.5
    assert proxy.calls["Scan"] == 1
    assert {ad["campaign_id"] for ad in ads} >= {"free"}
    local_stack.reset_function("DecideFunction")
