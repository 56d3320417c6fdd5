"""The cost model's arithmetic (bench/cost_model.py): by hand, under doubled traffic, and the committed figure."""

import json
import time
from dataclasses import replace

import pytest

from bench.cost import _template_facts, access_log_bytes, beacon_urls, max_ads_of, stored_byte_seconds
from bench.cost_model import (
    Measured,
    Traffic,
    Usage,
    capacity,
    dynamodb_item_size,
    environments,
    line_items,
    summary,
)
from bench.docs import COMPANIONS
from bench.prices import MONTH_SECONDS, PRICES, Price

FLAT = {key: replace(price, tiers=()) for key, price in PRICES.items()}
"""List prices without volume tiers, so that cost is proportional to usage."""


def measured(**changes: object) -> Measured:
    nothing = Usage()
    base = Measured(
        decision=Usage(calls={"dynamodb.Query": 1.0}, read_units=0.5, cpu_ms=1.0, response_bytes=1e6),
        impression=Usage(calls={"sqs.SendMessage": 1.0}, sqs_requests=1.0, message_bytes=500.0),
        event=nothing,
        record_message=Usage(write_units=3.0),
        pacing_step=Usage(calls={"dynamodb.BatchGetItem": 1.0}, read_units=32.0, write_units=2.0, cpu_ms=0.5),
        pacing_parallel_reads=8,
        environment_refresh={},
        refresh_seconds={},
        refresh_read_units_per_campaign={},
        memory_mb={"DecideFunction": 1024, "TrackFunction": 1024, "RecordFunction": 1024, "PacingFunction": 1024},
        init_ms=0.0,
        custom_metrics=10,
        alarm_metrics=2,
        secrets=1,
        log_retention_days=30.0,
        s3_retention_days=30.0,
        retrain_runs_per_month=120.0,
        retrain_hours=168.0,
        access_log_bytes={"decision": 0.0, "beacon": 0.0},
        limits={"record_maximum_concurrency": 10.0, "api_route_rate_limit": 1000.0},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


ONE_A_SECOND = Traffic(
    decisions_per_second=1.0,
    ads_per_decision=1.0,
    impression_rate=1.0,
    events_per_impression=0.0,
    record_batch_size=100,
    xray_sampled_share=0.0,
    platform_log_bytes=0,
)


def by_key(measured: Measured, traffic: Traffic, prices: dict[str, Price] = FLAT) -> dict[str, float]:
    return {item.key: item.monthly_usd for item in line_items(measured, traffic, prices)}


def test_a_small_case_by_hand() -> None:
    costs = by_key(measured(), ONE_A_SECOND)
    month = MONTH_SECONDS  # 2,592,000 decisions, as many impressions
    # Record: 3 write units a message, the decision record's and the impression's
    assert costs["dynamodb_writes"] == pytest.approx(3 * 2 * month * 0.625e-6)  # $9.72
    assert costs["dynamodb_reads"] == pytest.approx(0.5 * month * 0.125e-6)
    # Decide: 1 ms of CPU + the caps Query's assumed 4 ms, at 1 GB
    assert costs["decide_gb_s"] == pytest.approx(0.005 * month * 0.0000166667)
    assert costs["api_requests"] == pytest.approx(2 * month * 1e-6)  # the decision and its impression beacon
    assert costs["data_out"] == pytest.approx(1e-3 * month * 0.09)  # 1 MB a response
    assert costs["sqs_sends"] == pytest.approx(month * 0.40e-6)
    # Record: one invocation per 100 messages (the decision record and the impression)
    assert costs["lambda_requests"] == pytest.approx((month + month + 2 * month / 100) * 0.20e-6)
    assert costs["alarm_metrics"] == pytest.approx(0.2)


def test_decide_and_track_are_billed_whole_milliseconds_an_invocation() -> None:
    # 1.2 ms of CPU and the caps Query's 4 ms: 5.2 ms, billed as 6; a beacon's 0.3 ms of CPU as 1
    costs = by_key(
        measured(decision=replace(measured().decision, cpu_ms=1.2), impression=Usage(cpu_ms=0.3)), ONE_A_SECOND
    )
    month = MONTH_SECONDS
    assert costs["decide_gb_s"] == pytest.approx(0.006 * month * 0.0000166667)
    assert costs["track_gb_s"] == pytest.approx(0.001 * month * 0.0000166667)


@pytest.mark.parametrize(
    ("ads_per_decision", "first"), [(1.5, [1, 2, 1, 2]), (1.0, [1, 1, 1, 1]), (2.25, [2, 2, 2, 3])]
)
def test_the_measured_decisions_serve_the_ads_the_traffic_assumes(ads_per_decision: float, first: list[int]) -> None:
    assert [max_ads_of(index, ads_per_decision) for index in range(4)] == first
    assert sum(max_ads_of(index, ads_per_decision) for index in range(120)) == pytest.approx(
        120 * ads_per_decision, abs=1
    )


def test_doubling_traffic_doubles_every_variable_cost_and_no_fixed_one() -> None:
    one = line_items(measured(), Traffic(), FLAT)
    two = line_items(measured(), Traffic(decisions_per_second=2 * Traffic().decisions_per_second), FLAT)
    for single, double in zip(one, two, strict=True):
        expected = single.monthly_usd if single.fixed else 2 * single.monthly_usd
        assert double.monthly_usd == pytest.approx(expected), single.key
    assert any(item.monthly_usd > 0 for item in one if not item.fixed)


def test_the_pacing_step_costs_per_budgeted_campaign_and_minute_whatever_the_traffic() -> None:
    # Given a campaign-step of 36 read units, 1 write unit, 0.5 ms of CPU and 8 calls of 4 ms, 8 campaigns at once
    step = Usage(calls={"dynamodb.Query": 8.0}, read_units=36.0, write_units=1.0, cpu_ms=0.5)
    minutes = MONTH_SECONDS / 60
    costs = by_key(measured(pacing_step=step), replace(ONE_A_SECOND, budgeted_campaigns=1_000))
    # Then each budgeted campaign is paced every minute, its reads and writes billed as DynamoDB's
    assert costs["pacing_reads"] == pytest.approx(36 * 1_000 * minutes * 0.125e-6)
    assert costs["pacing_writes"] == pytest.approx(1 * 1_000 * minutes * 0.625e-6)
    # and the function's time is its CPU plus its waits, 8 at a time, at 1 GB
    assert costs["pacing_gb_s"] == pytest.approx((0.5 + 8 * 4 / 8) / 1000 * 1_000 * minutes * 0.0000166667)
    # And twice the decisions cost it nothing more (a fixed term); twice the campaigns twice as much
    double_traffic = by_key(
        measured(pacing_step=step), replace(ONE_A_SECOND, decisions_per_second=2.0, budgeted_campaigns=1_000)
    )
    double_campaigns = by_key(measured(pacing_step=step), replace(ONE_A_SECOND, budgeted_campaigns=2_000))
    fixed = {item.key for item in line_items(measured(pacing_step=step), ONE_A_SECOND) if item.fixed}
    for key in ("pacing_reads", "pacing_writes", "pacing_gb_s"):
        assert key in fixed
        assert double_traffic[key] == pytest.approx(costs[key])
        assert double_campaigns[key] == pytest.approx(2 * costs[key])


def test_track_and_record_reload_once_per_environment_and_interval_not_per_beacon_or_message() -> None:
    # Given Track's keys (2 reads every 300 s) and Record's directory (1 Scan every 30 s), reloaded on timers
    reloading = measured(
        impression=Usage(calls={"sqs.SendMessage": 1.0}, cpu_ms=4.0),  # 10 ms a beacon
        environment_refresh={
            "TrackFunction": {"keys": Usage(calls={"secretsmanager.GetSecretValue": 2.0})},
            "RecordFunction": {"campaigns": Usage(calls={"dynamodb.Scan": 1.0}, read_units=5.0)},
        },
        refresh_seconds={"TrackFunction": {"keys": 300.0}, "RecordFunction": {"campaigns": 30.0}},
    )
    busy = replace(ONE_A_SECOND, decisions_per_second=500.0)  # 500 beacons a second, 10 ms each: 5 environments
    assert environments(reloading, busy)["TrackFunction"] == pytest.approx(5.0)
    assert environments(reloading, busy)["RecordFunction"] == 1.0  # (1,000 messages a second at no time): at least 1
    costs = by_key(reloading, busy)
    # Then each environment reads the keys every 300 s, whatever the beacons it takes
    assert costs["secret_reads"] == pytest.approx(5 * 2 * MONTH_SECONDS / 300 * 0.05e-4)
    # and Record's one environment Scans every 30 s (its units as DynamoDB's reads), its Scan's 10 ms billed
    assert costs["dynamodb_reads"] == pytest.approx((500 * 0.5 * MONTH_SECONDS + 5 * MONTH_SECONDS / 30) * 0.125e-6)
    assert costs["record_gb_s"] == pytest.approx(0.010 * MONTH_SECONDS / 30 * 0.0000166667)


def test_a_campaign_scan_is_priced_at_the_campaigns_the_traffic_assumes() -> None:
    # Given a catalog reload that reads 0.25 units a campaign (its document and its pacing state), every 30 s
    catalog = measured(
        environment_refresh={"DecideFunction": {"catalog": Usage(calls={"dynamodb.Scan": 2.0})}},
        refresh_seconds={"DecideFunction": {"catalog": 30.0}},
        refresh_read_units_per_campaign={"DecideFunction": {"catalog": 0.25}},
    )
    reads = {
        campaigns: by_key(catalog, replace(ONE_A_SECOND, budgeted_campaigns=campaigns))["dynamodb_reads"]
        for campaigns in (1_000, 2_000)
    }
    caps = 0.5 * MONTH_SECONDS * 0.125e-6  # the caps Query per decision
    # Then one Decide environment's reloads read 250 units each, twice that with twice the campaigns
    assert reads[1_000] - caps == pytest.approx(250 * MONTH_SECONDS / 30 * 0.125e-6)
    assert reads[2_000] - caps == pytest.approx(2 * (reads[1_000] - caps))


def test_record_is_priced_per_message_whatever_its_kind() -> None:
    # A message of Record's mixed batches: each decision record, impression and event costs it the same
    costs = by_key(measured(record_message=Usage(s3_puts=0.02)), replace(ONE_A_SECOND, events_per_impression=1.0))
    assert costs["s3_puts"] == pytest.approx(0.02 * 3 * MONTH_SECONDS * 5e-6)


def test_the_measured_beacons_are_in_the_traffics_proportions() -> None:
    served = [
        {"tracking": {kind: f"{kind}-{i}" for kind in ("impression", "complete", "click", "skip")}} for i in range(180)
    ]
    impressions, events = beacon_urls(served, Traffic(impression_rate=0.9, events_per_impression=1.5))
    assert len(set(impressions)) == len(impressions) == 162
    assert len(events) == 243
    heard = {url.split("-")[1] for url in impressions}
    assert {url.split("-")[1] for url in events} == heard  # events only of ads whose impression was fired
    assert sum(url.startswith("complete-") for url in events) == 162


def test_api_gateway_requests_past_300_million_a_month_are_cheaper() -> None:
    price = PRICES["api_gateway_http_request"]
    assert price.monthly(100e6) == pytest.approx(100.0)
    assert price.monthly(400e6) == pytest.approx(300.0 + 90.0)


def test_per_million_decisions_divides_the_month_by_its_decisions() -> None:
    result = summary(line_items(measured(), ONE_A_SECOND, FLAT), ONE_A_SECOND)
    assert result["usd_per_million_decisions"] == pytest.approx(result["monthly_usd"] / (MONTH_SECONDS / 1e6), 1e-3)
    assert len(result["largest"]) == 3
    assert result["largest"][0] == max(result["items"], key=lambda item: item["monthly_usd"])["key"]


def test_a_dynamodb_item_is_sized_as_dynamodb_bills_it() -> None:
    item = {"pk": {"S": "abc"}, "n": {"N": "123"}, "ok": {"BOOL": True}, "m": {"M": {"a": {"S": "xy"}}}}
    # names 2 + 1 + 2 + 1; "abc" 3; 123 -> ceil(3 / 2) + 1 = 3; BOOL 1; map 3 + 1 an element + ("a" 1 + "xy" 2)
    assert dynamodb_item_size(item) == 6 + 3 + 3 + 1 + 7
    # A Map adds a byte an element as a List does: 3 + 2 x 1 + (1 + 1) + (1 + 1); the list 3 + 2 x 1 + 1 + 1
    assert dynamodb_item_size({"m": {"M": {"a": {"S": "x"}, "b": {"S": "y"}}}}) == 1 + 9
    assert dynamodb_item_size({"l": {"L": [{"S": "x"}, {"S": "y"}]}}) == 1 + 7


def test_the_committed_cost_figure_is_what_the_model_makes_of_its_inputs() -> None:
    document = json.loads(COMPANIONS["cost"].read_text())
    traffic = Traffic(**document["traffic_assumed"])
    result = summary(line_items(Measured.from_dict(document["measured"]), traffic), traffic)
    assert result["usd_per_million_decisions"] == document["usd_per_million_decisions"]
    assert result["largest"] == document["largest"]


def test_retention_is_read_from_the_template_as_deployed_by_default() -> None:
    # The logs' retention is a parameter (LogRetentionDays), the function logs' a literal: both are days
    facts = _template_facts()
    assert (facts["s3_retention_days"], facts["log_retention_days"]) == (90.0, 30.0)


def test_retrain_reads_every_log_object_of_its_hours_each_run() -> None:
    # Record writes 0.02 objects a message (two a batch of 100): at one decision and one impression a second,
    # 0.04 objects a second, 144 an hour; each of 120 runs a month reads 168 hours' worth, one GET each
    costs = by_key(measured(record_message=Usage(write_units=3.0, s3_puts=0.02)), ONE_A_SECOND)
    gets = 0.04 * 3600 * 168 * 120
    assert costs["retrain_gets"] == pytest.approx(gets * 0.0004e-3)
    assert costs["retrain_lists"] == pytest.approx(gets / 1000 * 0.005e-3)


def test_the_access_log_line_is_the_templates_format_filled_in() -> None:
    sizes = access_log_bytes('{"id":"$context.requestId","status":"$context.status"}')
    # the 16 characters of the request id, a 3-digit status, the 21 of braces, names and quotes, a newline
    assert sizes == {"decision": 41.0, "beacon": 41.0}
    facts = _template_facts()
    assert all(250 < size < 400 for size in facts["access_log_bytes"].values())  # was assumed 450


def test_traffic_past_the_defaults_is_said_with_what_it_needs() -> None:
    # Record busy 1 ms a message at 1 decision and 1 impression a second: 0.002 environments, at least one
    small = capacity(measured(), ONE_A_SECOND)
    assert small["carried_by_the_defaults"] is True
    # 2,000 decisions a second and as many beacons: past the 1,000 requests a second of a route
    busy = capacity(measured(), replace(ONE_A_SECOND, decisions_per_second=2000.0))
    assert busy["needed"]["beacon_route_requests_per_second"] == 2000.0
    assert busy["carried_by_the_defaults"] is False
    # and Record past its maximum concurrency: 10 ms a message, 4,000 messages a second, 40 environments
    slow = measured(record_message=Usage(cpu_ms=10.0))
    assert capacity(slow, replace(ONE_A_SECOND, decisions_per_second=500.0))["needed"]["record_concurrency"] == 10.0
    assert capacity(slow, replace(ONE_A_SECOND, decisions_per_second=501.0))["carried_by_the_defaults"] is False


def test_a_marker_is_stored_at_its_billed_size_for_as_long_as_its_ttl_keeps_it() -> None:
    expires = int(time.time()) + 14 * 86_400
    marker = {"pk": {"S": "d-1#a-1#impression"}, "expires_at": {"N": str(expires)}}
    stored = stored_byte_seconds(marker)
    # its own size and DynamoDB's 100 bytes, for about 14 days (a second or two of this test aside)
    assert stored == pytest.approx((dynamodb_item_size(marker) + 100) * 14 * 86_400, rel=1e-4)
    assert stored_byte_seconds({"campaign_id": {"S": "cmp-1"}}) == 0.0  # no TTL: not a marker
    # and at one message a second, 1 GB-month stored is what 1e9 byte-months cost, twice: storage and PITR
    byte_month = 1e9 * MONTH_SECONDS
    costs = by_key(measured(record_message=Usage(stored_byte_seconds=byte_month / MONTH_SECONDS / 2)), ONE_A_SECOND)
    assert [costs["dynamodb_storage"], costs["dynamodb_pitr"]] == pytest.approx([0.25, 0.20])
