"""The track handler in-process against moto in server mode over HTTP, resources from template.yaml.

Tokens come from real decisions (DecideFunction) or are signed with the stack's own key from Secrets Manager.
SQS traffic goes through a counting, fault-injecting HTTP proxy, so a test can see that a refused event
never even reached SQS, and can throttle or cut the queue mid-batch.
"""

import base64
import json
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import boto3
import pytest
from adserve.dal.aws_clients import dynamodb_client
from adserve.dal.campaign_store import CampaignStore
from adserve.outcomes.events import OutcomeEvent
from adserve.outcomes.tokens import TokenSigner, TrackingClaims

from tests.support.aws_proxy import AwsProxy, aws_proxy
from tests.support.builders import campaign

EVENTS = Path(__file__).parents[2] / "events"
TRACK = "TrackFunction"


def sample_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def beacon_event(event_type: str, token: str | None) -> dict[str, Any]:
    """The sample beacon event, retargeted at *event_type* and carrying *token* (no `t` at all when None)."""
    event = sample_event("track_beacon_impression.json")
    path = f"/v1/events/{event_type}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {"event_type": event_type}
    if token is None:
        event["rawQueryString"] = ""
        event.pop("queryStringParameters")
    else:
        event["rawQueryString"] = urlencode({"t": token})
        event["queryStringParameters"] = {"t": token}
    return event


def batch_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    event = sample_event("track_post_events.json")
    event["body"] = json.dumps({"events": events})
    return event


@pytest.fixture(scope="module")
def sqs_proxy(local_stack: Any) -> Iterator[AwsProxy]:
    """Route the track function's SQS calls through a proxy; a fresh execution environment sees it."""
    with aws_proxy(local_stack.endpoint_url) as proxy, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_SQS", proxy.url)
        local_stack.reset_function(TRACK)
        yield proxy
    local_stack.reset_function(TRACK)


@pytest.fixture(scope="module")
def seeded(local_stack: Any) -> Iterator[None]:
    """Uncapped campaigns every decision of the sample listener gets; removed again for the worker's other tests."""
    store = CampaignStore(
        dynamodb_client(endpoint_url=local_stack.endpoint_url), local_stack.physical_name("CampaignsTable")
    )
    campaign_ids = [f"track-{index}" for index in range(3)]
    for index, campaign_id in enumerate(campaign_ids):
        store.put(campaign(campaign_id=campaign_id, advertiser_id=f"adv-{campaign_id}", value_cpm=500 - index))
    local_stack.reset_function("DecideFunction")  # a warm catalog would not see them for up to its TTL
    yield
    for campaign_id in campaign_ids:
        store.delete(campaign_id)
    local_stack.reset_function("DecideFunction")


@pytest.fixture
def proxy(local_stack: Any, sqs_proxy: AwsProxy, seeded: None) -> Iterator[AwsProxy]:
    """The counting proxy, reset; the worker's shared outcomes queue is left empty, as the test found it."""
    queued_outcomes(local_stack, decision_id="")
    sqs_proxy.reset()
    yield sqs_proxy
    queued_outcomes(local_stack, decision_id="")


@pytest.fixture
def signer(local_stack: Any) -> TokenSigner:
    """The stack's real signing key, read the way an attacker who stole it would: from Secrets Manager."""
    secrets = boto3.client("secretsmanager", endpoint_url=local_stack.endpoint_url)
    secret = secrets.get_secret_value(SecretId=local_stack.env["SIGNING_KEY_SECRET_ID"])["SecretString"]
    return TokenSigner(secret.encode())


def decide(local_stack: Any, proxy: AwsProxy | None = None) -> dict[str, Any]:
    """A real decision; its own SendMessage (the decision record) is not counted against Track."""
    response: dict[str, Any] = local_stack.invoke("DecideFunction", sample_event("decide_post_decision.json"))
    if proxy is not None:
        proxy.calls.clear()
    assert response["statusCode"] == 200, response
    body: dict[str, Any] = json.loads(response["body"])
    assert body["ads"], "the seeded campaigns should give the sample listener at least one ad"
    return body


def token_of(url: str) -> str:
    [token] = parse_qs(urlparse(url).query)["t"]
    return token


def claims_of(token: str) -> TrackingClaims:
    _, payload, _ = token.split(".")
    return TrackingClaims(**json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def queued_outcomes(local_stack: Any, decision_id: str) -> list[OutcomeEvent]:
    """Drain the outcomes queue (shared by this worker's tests) and keep this decision's outcome events."""
    sqs = boto3.client("sqs", endpoint_url=local_stack.endpoint_url)
    queue_url = local_stack.env["OUTCOMES_QUEUE_URL"]
    outcomes = []
    while messages := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
    ).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            if message["MessageAttributes"]["kind"]["StringValue"] != "outcome":
                continue
            outcome = OutcomeEvent.model_validate_json(message["Body"])
            if outcome.decision_id == decision_id:
                outcomes.append(outcome)
    return outcomes


def error_of(response: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(response["body"])["error"]
    return error


def test_the_impression_beacon_queues_exactly_one_outcome(local_stack: Any, proxy: AwsProxy) -> None:
    # Given a real decision and its first ad's impression URL
    decision = decide(local_stack, proxy)
    ad = decision["ads"][0]
    # When the app fires the beacon
    response = local_stack.invoke(TRACK, beacon_event("impression", token_of(ad["tracking"]["impression"])))
    # Then it gets an empty, uncacheable 204 and exactly one outcome is on the queue
    assert response["statusCode"] == 204, response
    assert not response.get("body")
    assert response["headers"]["Cache-Control"] == "no-store"
    [outcome] = queued_outcomes(local_stack, decision["decision_id"])
    assert outcome.identity == (decision["decision_id"], ad["ad_id"], "impression")
    assert (outcome.campaign_id, outcome.advertiser_id, outcome.listener) == (
        ad["campaign_id"],
        ad["advertiser_id"],
        local_stack.pseudonyms().listener("listener-42"),
    )
    assert dict(proxy.calls) == {"SendMessage": 1}


def test_a_replayed_beacon_carries_the_same_event_id(local_stack: Any, proxy: AwsProxy) -> None:
    decision = decide(local_stack, proxy)
    event = beacon_event("click", token_of(decision["ads"][0]["tracking"]["click"]))
    assert local_stack.invoke(TRACK, event)["statusCode"] == 204
    assert local_stack.invoke(TRACK, event)["statusCode"] == 204
    first, second = queued_outcomes(local_stack, decision["decision_id"])
    assert first.event_id == second.event_id
    assert first.identity == second.identity


def forged(token: str, signer: TokenSigner) -> str:
    return TokenSigner(b"not-the-stack-key" * 2).sign(claims_of(token))


def tampered(token: str, signer: TokenSigner) -> str:
    kid, payload, signature = token.split(".")
    changed = json.dumps({**json.loads(base64.urlsafe_b64decode(payload + "==")), "ad_id": "someone-elses-ad"})
    return f"{kid}.{base64.urlsafe_b64encode(changed.encode()).rstrip(b'=').decode()}.{signature}"


def expired(token: str, signer: TokenSigner) -> str:
    return signer.sign(replace(claims_of(token), expires_at=int(datetime.now(UTC).timestamp()) - 60))


def truncated(token: str, signer: TokenSigner) -> str:
    return token[: len(token) // 2]


def non_ascii(token: str, signer: TokenSigner) -> str:
    return token[:-1] + "\u00e9"


@pytest.mark.parametrize(
    "case",
    [
        (forged, "impression", "invalid_token"),
        (tampered, "impression", "invalid_token"),
        (truncated, "impression", "invalid_token"),
        (non_ascii, "impression", "invalid_token"),
        (expired, "impression", "expired_token"),
        (None, "click", "wrong_event_type"),
    ],
    ids=["forged", "tampered", "truncated", "non-ascii", "expired", "wrong-type"],
)
def test_a_bad_token_gets_a_403_and_nothing_is_queued(
    local_stack: Any, proxy: AwsProxy, signer: TokenSigner, case: tuple[Any, str, str]
) -> None:
    spoil, route, code = case
    # Given an impression token that was forged, tampered with, truncated, given a non-ASCII character or expired,
    # or used for a click
    decision = decide(local_stack, proxy)
    token = token_of(decision["ads"][0]["tracking"]["impression"])
    bad = spoil(token, signer) if spoil else token
    # When it is fired
    response = local_stack.invoke(TRACK, beacon_event(route, bad))
    # Then the app learns why, and SQS never heard of it
    assert response["statusCode"] == 403
    assert error_of(response)["code"] == code
    assert error_of(response)["message"]
    assert sum(proxy.calls.values()) == 0
    assert queued_outcomes(local_stack, decision["decision_id"]) == []


@pytest.mark.parametrize(
    ("event_type", "token"),
    [("view", "abc.def"), ("\u20ac", "abc.def"), ("impression", None), ("impression", ""), ("impression", "t" * 1025)],
)
def test_an_unknown_type_or_a_missing_token_gets_a_422(
    local_stack: Any, proxy: AwsProxy, event_type: str, token: str | None
) -> None:
    response = local_stack.invoke(TRACK, beacon_event(event_type, token))
    assert response["statusCode"] == 422
    assert error_of(response)["code"] == "invalid_request"
    assert sum(proxy.calls.values()) == 0


def test_a_throttled_queue_answers_the_beacon_with_a_503(local_stack: Any, proxy: AwsProxy) -> None:
    decision = decide(local_stack, proxy)
    proxy.throttle.add("SendMessage")
    response = local_stack.invoke(
        TRACK, beacon_event("impression", token_of(decision["ads"][0]["tracking"]["impression"]))
    )
    assert response["statusCode"] == 503
    assert error_of(response)["code"] == "queue_unavailable"
    assert response["headers"]["Retry-After"]


def test_a_mixed_batch_reports_every_event_and_queues_only_the_valid_ones(
    local_stack: Any, proxy: AwsProxy, signer: TokenSigner
) -> None:
    # Given valid impression and complete events, and forged, expired, non-ASCII, wrong-type and duplicate ones
    decision = decide(local_stack, proxy)
    tracking = decision["ads"][0]["tracking"]
    now = datetime.now(UTC).isoformat()
    impression, complete = token_of(tracking["impression"]), token_of(tracking["complete"])
    events = [
        {"event_id": "ok-1", "type": "impression", "token": impression, "occurred_at": now},
        {"event_id": "ok-2", "type": "complete", "token": complete, "occurred_at": now},
        {"event_id": "forged", "type": "impression", "token": forged(impression, signer), "occurred_at": now},
        {"event_id": "expired", "type": "impression", "token": expired(impression, signer), "occurred_at": now},
        {"event_id": "non-ascii", "type": "impression", "token": non_ascii(impression, signer), "occurred_at": now},
        {"event_id": "wrong-type", "type": "skip", "token": impression, "occurred_at": now},
        {"event_id": "ok-1", "type": "impression", "token": impression, "occurred_at": now},
    ]
    # When they are posted in one batch
    response = local_stack.invoke(TRACK, batch_event(events))
    # Then the answer is a 202 with one verdict per event, and only the valid two are on the queue
    assert response["statusCode"] == 202, response
    body = json.loads(response["body"])
    assert [(r["event_id"], r["status"], r.get("code")) for r in body["results"]] == [
        ("ok-1", "accepted", None),
        ("ok-2", "accepted", None),
        ("forged", "rejected", "invalid_token"),
        ("expired", "rejected", "expired_token"),
        ("non-ascii", "rejected", "invalid_token"),
        ("wrong-type", "rejected", "wrong_type"),
        ("ok-1", "rejected", "duplicate"),
    ]
    assert (body["accepted"], body["rejected"], body["failed"]) == (2, 5, 0)
    queued = queued_outcomes(local_stack, decision["decision_id"])
    assert sorted((o.event_id, o.event_type.value) for o in queued) == [("ok-1", "impression"), ("ok-2", "complete")]
    assert dict(proxy.calls) == {"SendMessageBatch": 1}


def test_the_sample_batch_event_is_a_valid_request(local_stack: Any, proxy: AwsProxy) -> None:
    # The sample's placeholders are not tokens: every event is refused, but the request itself is well formed
    response = local_stack.invoke(TRACK, sample_event("track_post_events.json"))
    assert response["statusCode"] == 202
    assert {r["status"] for r in json.loads(response["body"])["results"]} == {"rejected"}


def test_a_batch_of_more_than_100_events_gets_a_422(local_stack: Any, proxy: AwsProxy) -> None:
    now = datetime.now(UTC).isoformat()
    events = [{"event_id": f"e{i}", "type": "click", "token": "a.b", "occurred_at": now} for i in range(101)]
    response = local_stack.invoke(TRACK, batch_event(events))
    assert response["statusCode"] == 422
    assert "events" in [detail["field"] for detail in error_of(response)["details"]]
    assert sum(proxy.calls.values()) == 0


def valid_batch(local_stack: Any, count: int, proxy: AwsProxy | None = None) -> tuple[str, list[dict[str, Any]]]:
    """*count* valid events of one decision, spread over its ads and event types."""
    decision = decide(local_stack, proxy)
    now = datetime.now(UTC).isoformat()
    urls = [(kind, url) for ad in decision["ads"] for kind, url in ad["tracking"].items()]
    events = [
        {"event_id": f"evt-{index}", "type": kind, "token": token_of(url), "occurred_at": now}
        for index, (kind, url) in enumerate((urls * count)[:count])
    ]
    return decision["decision_id"], events


def test_a_batch_is_sent_ten_entries_per_call(local_stack: Any, proxy: AwsProxy) -> None:
    decision_id, events = valid_batch(local_stack, 25, proxy)
    response = local_stack.invoke(TRACK, batch_event(events))
    assert json.loads(response["body"])["accepted"] == 25
    assert dict(proxy.calls) == {"SendMessageBatch": 3}
    assert len(queued_outcomes(local_stack, decision_id)) == 25


def test_a_throttled_queue_fails_the_batch_events_and_claims_none_accepted(local_stack: Any, proxy: AwsProxy) -> None:
    # Given SQS throttling every SendMessageBatch
    decision_id, events = valid_batch(local_stack, 12, proxy)
    proxy.throttle.add("SendMessageBatch")
    # When a valid batch is posted
    response = local_stack.invoke(TRACK, batch_event(events))
    # Then every event is reported failed (retry), none accepted, none queued
    assert response["statusCode"] == 202
    body = json.loads(response["body"])
    assert (body["accepted"], body["failed"]) == (0, 12)
    assert {r["status"] for r in body["results"]} == {"failed"}
    assert queued_outcomes(local_stack, decision_id) == []


def test_a_fault_mid_batch_fails_only_the_unsent_events(local_stack: Any, proxy: AwsProxy) -> None:
    # Given SQS that takes the first SendMessageBatch call and throttles every later one
    decision_id, events = valid_batch(local_stack, 25, proxy)
    proxy.throttle_after["SendMessageBatch"] = 1
    # When 25 valid events are posted (three calls of 10, 10 and 5)
    body = json.loads(local_stack.invoke(TRACK, batch_event(events))["body"])
    # Then the first ten are accepted and queued, the other fifteen reported failed, none lost or overclaimed
    assert [r["status"] for r in body["results"]] == ["accepted"] * 10 + ["failed"] * 15
    assert (body["accepted"], body["failed"]) == (10, 15)
    queued = queued_outcomes(local_stack, decision_id)
    assert sorted(o.event_id for o in queued) == sorted(e["event_id"] for e in events[:10])


@pytest.fixture
def unreachable_sqs(local_stack: Any, sqs_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the track function's SQS endpoint at a closed port for one test."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://127.0.0.1:{port}")
    local_stack.reset_function(TRACK)
    yield
    monkeypatch.undo()
    local_stack.reset_function(TRACK)


def test_an_unreachable_queue_fails_the_batch_events(local_stack: Any, proxy: AwsProxy, unreachable_sqs: None) -> None:
    decision_id, events = valid_batch(local_stack, 3)
    response = local_stack.invoke(TRACK, batch_event(events))
    body = json.loads(response["body"])
    assert response["statusCode"] == 202
    assert (body["accepted"], body["failed"]) == (0, 3)
    assert queued_outcomes(local_stack, decision_id) == []


def test_tokens_never_reach_the_logs(
    local_stack: Any, proxy: AwsProxy, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given an accepted, a refused and an unqueued beacon
    decision = decide(local_stack, proxy)
    token = token_of(decision["ads"][0]["tracking"]["impression"])
    local_stack.invoke(TRACK, beacon_event("impression", token))
    local_stack.invoke(TRACK, beacon_event("skip", token))
    proxy.throttle.add("SendMessage")
    local_stack.invoke(TRACK, beacon_event("impression", token))
    # Then no log record, nor anything printed (EMF metrics), holds the token's signature
    records = [json.dumps(record.__dict__, default=str) for record in caplog.records]
    assert any("beacon rejected" in record for record in records)
    assert any("beacon not queued" in record for record in records)
    captured = capfd.readouterr()
    signature = token.rpartition(".")[2]
    assert all(signature not in text for text in [*records, captured.out, captured.err])
