"""Delivery end to end on moto over HTTP, tables from template.yaml: Record's exactly-once counters under
redelivery, duplicate beacons and concurrent writers, the report route, and budgets refused before a write.
"""

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from adserve.campaigns.directory import CampaignDirectory
from adserve.campaigns.model import Campaign
from adserve.cli import main as cli
from adserve.core.vocabulary import EventType
from adserve.dal.aws_clients import dynamodb_client
from adserve.dal.campaign_store import CampaignStore
from adserve.dal.delivery_store import DynamoDeliveryStore
from adserve.dal.json_clients import DynamoDBJsonClient
from adserve.dal.pacing_store import DynamoPacingStore
from adserve.delivery.counting import DeliveryTotals, hour_of
from adserve.outcomes.events import OutcomeEvent
from adserve.outcomes.recording import OutcomeRecorder

from devstack.fakes import InMemoryImpressionCounter, InMemoryLogStore
from devstack.stack import LocalStack
from tests.support.aws_proxy import aws_proxy
from tests.support.builders import campaign, pacing_state
from tests.support.record_messages import failed_ids, message_records, outcome, sqs_event
from tests.support.stored_campaigns import stored_campaigns

EVENTS = Path(__file__).parents[2] / "events"
NOW = datetime.now(UTC)
PACING_EVENT = json.loads((Path(__file__).parents[2] / "events" / "pacing_schedule.json").read_text())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def dynamodb(local_stack: LocalStack) -> DynamoDBJsonClient:
    return dynamodb_client(endpoint_url=local_stack.endpoint_url)


def delivery_store(local_stack: LocalStack) -> DynamoDeliveryStore:
    return DynamoDeliveryStore(dynamodb(local_stack), local_stack.physical_name("DeliveryTable"))


@pytest.fixture
def seed(local_stack: LocalStack) -> Iterator[Callable[..., Campaign]]:
    """Books a campaign for the test (deleted after it), with these changes to a sample one."""
    with ExitStack() as booked_campaigns:

        def book(**changes: Any) -> Campaign:
            booked = campaign(campaign_id=unique("dlv"), value_cpm=12.5, **changes)
            booked_campaigns.enter_context(stored_campaigns(local_stack, [booked], reset=["RecordFunction"]))
            return booked

        yield book


def event_of(booked: Campaign, event_type: EventType = EventType.IMPRESSION, **changes: Any) -> OutcomeEvent:
    values: dict[str, Any] = {
        "decision_id": unique("d"),
        "campaign_id": booked.campaign_id,
        "advertiser_id": booked.advertiser_id,
        "ad_id": booked.creatives[0].ad_id,
        "occurred_at": NOW,
        "event_type": event_type,
    }
    values.update(changes)
    return outcome(**values)


def record(local_stack: LocalStack, *records: dict[str, Any]) -> set[str]:
    return failed_ids(local_stack.invoke("RecordFunction", sqs_event(*records)))


def test_a_batch_delivered_three_times_with_replayed_beacons_counts_each_outcome_once(
    local_stack: LocalStack, seed: Callable[..., Campaign]
) -> None:
    booked = seed()
    shown = [event_of(booked) for _ in range(30)]
    followups = [
        event_of(booked, EventType.CLICK, decision_id=shown[0].decision_id),
        event_of(booked, EventType.COMPLETE, decision_id=shown[1].decision_id),
        event_of(booked, EventType.SKIP, decision_id=shown[2].decision_id),
    ]
    batch = message_records(*shown, *followups)
    replayed = message_records(followups[0], shown[5], shown[5])  # the same identities as new messages
    for records in (batch, batch, replayed, batch + replayed):
        assert record(local_stack, *records) == set()
    expected = DeliveryTotals(impressions=30, clicks=1, completions=1, skips=1, spend_micros=30 * 12_500)
    store = delivery_store(local_stack)
    assert store.lifetime(booked.campaign_id) == expected
    assert store.hourly(booked.campaign_id, hour_of(NOW), hour_of(NOW)) == {hour_of(NOW): expected}


def test_concurrent_writers_give_exact_totals(local_stack: LocalStack, seed: Callable[..., Campaign]) -> None:
    """Twelve threads, each with its own batches of one campaign and hour, some replaying others' events."""
    booked = seed()
    client = dynamodb(local_stack)
    service = OutcomeRecorder(
        counter=InMemoryImpressionCounter(),
        campaigns=CampaignDirectory(CampaignStore(client, local_stack.physical_name("CampaignsTable")), 60),
        logs=InMemoryLogStore(),
        delivery=DynamoDeliveryStore(client, local_stack.physical_name("DeliveryTable")),
    )
    service.campaigns.campaign(booked.campaign_id)  # load the directory once, outside the race
    shown = [event_of(booked) for _ in range(120)]
    slices = [shown[index::6] for index in range(6)]
    work = slices + slices  # every event is written by two threads at once
    start, failures = threading.Barrier(len(work)), list[str]()

    def run(events: list[OutcomeEvent]) -> None:
        start.wait()
        for chunk in (events[:10], events[10:]):
            tally = service.record_delivery(chunk)
            failures.extend(tally.failed_markers)

    threads = [threading.Thread(target=run, args=(events,)) for events in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert delivery_store(local_stack).lifetime(booked.campaign_id) == DeliveryTotals(
        impressions=120, spend_micros=120 * 12_500
    )


def report_event(campaign_id: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "campaigns_get_delivery.json").read_text())
    path = f"/v1/campaigns/{campaign_id}/delivery"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {"campaign_id": campaign_id}
    event["queryStringParameters"] = query
    event["rawQueryString"] = "&".join(f"{key}={value}" for key, value in (query or {}).items())
    return event


def test_the_sample_report_event_is_answered(local_stack: LocalStack) -> None:
    event = json.loads((EVENTS / "campaigns_get_delivery.json").read_text())
    sample = campaign(campaign_id=event["pathParameters"]["campaign_id"])
    with stored_campaigns(local_stack, [sample]):
        response = local_stack.invoke("CampaignsFunction", event)
    assert response["statusCode"] == 200, response
    assert len(json.loads(response["body"])["rows"]) == 24


def test_the_report_shows_delivery_budget_and_pacing(local_stack: LocalStack, seed: Callable[..., Campaign]) -> None:
    flight = {
        "flight_start": (NOW - timedelta(days=1)).isoformat(),
        "flight_end": (NOW + timedelta(days=1)).isoformat(),
    }
    booked = seed(budget={"unit": "spend", "lifetime": 1000, "daily": 100}, **flight)
    shown = [event_of(booked) for _ in range(8)]
    clicked = event_of(booked, EventType.CLICK, decision_id=shown[0].decision_id)
    assert record(local_stack, *message_records(*shown, clicked)) == set()
    hour = hour_of(NOW).strftime("%Y-%m-%dT%H")
    response = local_stack.invoke("CampaignsFunction", report_event(booked.campaign_id, {"from": hour, "to": hour}))
    assert response["statusCode"] == 200, response
    report = json.loads(response["body"])
    assert [row["impressions"] for row in report["rows"]] == [8]
    assert report["totals"] | {"ctr": None} == {
        "impressions": 8,
        "clicks": 1,
        "completions": 0,
        "skips": 0,
        "spend": 0.1,
        "ctr": None,
        "completion_rate": 0.0,
    }
    assert report["totals"]["ctr"] == 0.125
    assert report["budget"]["lifetime_left"] == pytest.approx(999.9)
    assert (report["pacing_status"], report["serve_probability"]) == (None, None)  # no pacing step yet
    # When the pacing step runs (its scheduled event), the report shows its verdict
    assert local_stack.invoke("PacingFunction", PACING_EVENT)["paced"] >= 1
    response = local_stack.invoke("CampaignsFunction", report_event(booked.campaign_id, {"from": hour, "to": hour}))
    report = json.loads(response["body"])
    assert report["pacing_status"] in {"behind", "on_track", "ahead"}
    assert 0 < report["serve_probability"] <= 1
    state = report["pacing_state"]
    assert (state["delivered_today"], state["delivered_lifetime"]) == (100_000, 100_000)  # micro-units
    assert state["goal_today"] == 100_000_000  # the daily 100 is tighter than 999.9 over two days
    assert state["checkpoint"] == {"read_at": state["updated_at"], "today": 100_000, "lifetime": 100_000}
    # And the next step, before the campaign's next exact read, counts today's new impressions from its lifetime
    assert record(local_stack, *message_records(*[event_of(booked) for _ in range(2)])) == set()
    assert local_stack.invoke("PacingFunction", PACING_EVENT)["paced"] >= 1
    response = local_stack.invoke("CampaignsFunction", report_event(booked.campaign_id, {"from": hour, "to": hour}))
    later = json.loads(response["body"])["pacing_state"]
    assert (later["delivered_today"], later["delivered_lifetime"]) == (125_000, 125_000)  # 12,500 an impression
    assert later["checkpoint"]["read_at"] in {state["updated_at"], later["updated_at"]}  # its slot may have come
    daily = local_stack.invoke("CampaignsFunction", report_event(booked.campaign_id, {"granularity": "day"}))
    assert daily["statusCode"] == 200, daily
    assert sum(row["impressions"] for row in json.loads(daily["body"])["rows"]) == 10


def test_a_campaign_stored_in_a_currency_since_withdrawn_is_still_counted_reported_and_kept_in_it(
    local_stack: LocalStack, seed: Callable[..., Campaign]
) -> None:
    # Given a campaign stored in BGN by an earlier release (ISO 4217 withdrew it for EUR in 2026: no write takes it)
    booked = seed(currency="BGN")
    # When an impression of it reaches Record
    assert record(local_stack, *message_records(event_of(booked))) == set()
    # Then it is counted (read as an unknown campaign's, it was acknowledged and dropped), and reported in its
    # currency, as not served for want of a rate rather than a 404
    spent = DeliveryTotals(impressions=1, spend_micros=12_500)
    assert delivery_store(local_stack).lifetime(booked.campaign_id) == spent
    response = local_stack.invoke("CampaignsFunction", report_event(booked.campaign_id))
    assert response["statusCode"] == 200, response
    report = json.loads(response["body"])
    assert (report["currency"], report["not_served"]["rule"]) == ("BGN", "currency")
    # And a write keeps it in its currency: BGN is refused as withdrawn, EUR as another currency than its counts'
    document = booked.model_dump(mode="json")
    for currency, problem in (("BGN", "active ISO 4217"), ("EUR", "keeps its currency")):
        function, event = local_stack.http_event(
            "PUT", f"/v1/campaigns/{booked.campaign_id}", body=json.dumps(document | {"currency": currency})
        )
        answer = local_stack.invoke(function, event)
        assert answer["statusCode"] == 422, answer
        assert problem in answer["body"]


@pytest.mark.parametrize(
    ("query", "reason", "field"),
    [
        ({"granularity": "week"}, "granularity", "query.granularity"),
        ({"from": "yesterday"}, "from", "query.from"),
        ({"from": "2026-02-30T10"}, "from must be a UTC hour", "query.from"),
        ({"from": "2026-11-25T10", "to": "2026-11-25T09"}, "before from", "query.to"),
        ({"from": "2026-01-01T00", "to": "2026-11-25T00"}, "at most 7 days", "query.to"),
        ({"from": "9000-01-01T00"}, "from must not be after the current hour", "query.from"),  # to is now
        ({"from": "\u0662\u0660\u0662\u0666-12-01T00"}, "from", "query.from"),  # 2026 in Arabic-Indic digits
        ({"from": "2020-01-01T00"}, "at most 7 days", "query.from"),
        ({"to": "0001-01-01T00"}, "to must be a UTC hour", "query.to"),  # its default span would start before year 1
        ({"to": "0001-01-05T00", "granularity": "day"}, "to must be a UTC hour", "query.to"),
        ({"from": "9999-12-31T22", "to": "9999-12-31T23"}, "in years 1970-9998", "query.from"),  # rows past 9999
    ],
)
def test_a_bad_report_query_is_a_422_naming_the_parameter(
    local_stack: LocalStack, seed: Callable[..., Campaign], query: dict[str, str], reason: str, field: str
) -> None:
    booked = seed()
    response = local_stack.invoke("CampaignsFunction", report_event(booked.campaign_id, query))
    assert response["statusCode"] == 422, response
    error = json.loads(response["body"])["error"]
    assert reason in error["message"]
    assert [detail["field"] for detail in error["details"]] == [field]


def test_the_report_of_an_unknown_campaign_is_a_404(local_stack: LocalStack) -> None:
    response = local_stack.invoke("CampaignsFunction", report_event(unique("missing")))
    assert response["statusCode"] == 404
    assert json.loads(response["body"])["error"]["code"] == "not_found"


def test_the_cli_prints_the_report_and_plots_it(
    local_stack: LocalStack, seed: Callable[..., Campaign], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    booked = seed(budget={"unit": "impressions", "lifetime": 1000})
    assert record(local_stack, *message_records(*(event_of(booked) for _ in range(3)))) == set()
    capsys.readouterr()
    plot = tmp_path / "delivery.png"
    tables = ["--table", local_stack.physical_name("CampaignsTable")]
    tables += ["--delivery-table", local_stack.physical_name("DeliveryTable")]
    tables += ["--pacing-table", local_stack.physical_name("PacingTable")]
    local_stack.invoke("PacingFunction", PACING_EVENT)
    assert cli.main(["delivery", booked.campaign_id, *tables, "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out.splitlines()
    [total] = [line for line in printed if line.startswith("total")]
    assert total.split()[1] == "3"
    assert any("left 997" in line for line in printed)
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert cli.main(["delivery", unique("missing"), *tables]) == 1


def test_a_pacing_state_this_release_cannot_read_leaves_out_its_campaign_alone(local_stack: LocalStack) -> None:
    # Given one readable state and two items a step of another release (or a hand edit) could leave
    store = DynamoPacingStore(dynamodb(local_stack), local_stack.physical_name("PacingTable"))
    budget = {"unit": "impressions", "daily": 1000}
    readable = pacing_state(campaign(campaign_id=unique("paced"), budget=budget), 0.5, NOW)
    store.put(readable)
    odd, bare = unique("paced-odd"), unique("paced-bare")
    client = dynamodb(local_stack)
    table = local_stack.physical_name("PacingTable")
    client.put_item(TableName=table, Item={"campaign_id": {"S": odd}, "state": {"S": '{"status": "from-the-future"}'}})
    client.put_item(TableName=table, Item={"campaign_id": {"S": bare}})
    try:
        # When Decide's catalog lists the states, and a report reads one
        states = store.list_states()
        # Then the readable one is there and the others are left out, not a failed catalog load
        assert states[readable.campaign_id] == readable
        assert odd not in states
        assert bare not in states
        assert store.get(odd) is None
    finally:
        for campaign_id in (readable.campaign_id, odd, bare):
            client.delete_item(TableName=table, Key={"campaign_id": {"S": campaign_id}})


def test_request_counts_keep_each_listener_local_hour_and_read_older_items_at_their_utc_hour(
    local_stack: LocalStack,
) -> None:
    # Given two batches' request counts of one placement and UTC hour, by listener-local hour, and an item written
    # before local hours were counted (a total alone)
    store = delivery_store(local_stack)
    placement = unique("placement")
    hour = hour_of(NOW) - timedelta(hours=2)
    local = (hour.hour + 5) % 24  # an app five hours ahead of UTC
    store.add_requests({(placement, hour, local): 3, (placement, hour, hour.hour): 2})
    store.add_requests({(placement, hour, local): 1, (placement, hour + timedelta(hours=1), (local + 1) % 24): 5})
    before = hour - timedelta(hours=1)
    dynamodb(local_stack).update_item(
        TableName=local_stack.physical_name("DeliveryTable"),
        Key={"pk": {"S": f"requests#{placement}#0"}, "sk": {"S": f"hour#{before.strftime('%Y-%m-%dT%H')}"}},
        UpdateExpression="ADD requests :count",
        ExpressionAttributeValues={":count": {"N": "7"}},
    )
    # When the pacing step reads them
    counts = store.requests(placement, before, hour + timedelta(hours=1))
    # Then every local hour is counted where it was, summed over shards, and the old total under no local hour
    assert counts == {
        (before, None): 7,
        (hour, local): 4,
        (hour, hour.hour): 2,
        (hour + timedelta(hours=1), (local + 1) % 24): 5,
    }


def test_todays_hours_are_read_consistently_so_they_hold_what_the_lifetime_read_before_them_held(
    local_stack: LocalStack,
) -> None:
    # Given the delivery store, through a proxy that keeps what it is asked
    with aws_proxy(local_stack.endpoint_url, keep_traffic=True) as proxy:
        table = local_stack.physical_name("DeliveryTable")
        store = DynamoDeliveryStore(dynamodb_client(endpoint_url=proxy.url), table)
        # When a campaign's hours are read (the pacing step's exact read, after the lifetime)
        store.hourly(f"cmp-{uuid.uuid4().hex[:8]}", hour_of(NOW) - timedelta(hours=3), hour_of(NOW))
    # Then every shard's Query was strongly consistent: a replica behind the lifetime's would miss counts it held
    queries = proxy.json_requests("Query")
    assert len(queries) == 64
    assert all(query["ConsistentRead"] is True for query in queries)


def test_adserve_delivery_refuses_an_invalid_campaign_id_before_any_call(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_status:
        cli.main(["delivery", "bad id!", "--table", "t", "--delivery-table", "d", "--pacing-table", "p"])
    assert exit_status.value.code == 2
    assert "not a campaign id" in capsys.readouterr().err
