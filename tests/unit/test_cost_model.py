"""The cost model's arithmetic (bench/cost_model.py): by hand, under doubled traffic, and the committed figure."""

import json
from dataclasses import replace

import pytest

from bench.cost import _template_facts, max_ads_of
from bench.cost_model import Measured, Traffic, Usage, dynamodb_item_size, line_items, summary
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
        record_decision=nothing,
        record_impression=Usage(write_units=6.0),
        record_event=nothing,
        pacing_step=Usage(calls={"dynamodb.BatchGetItem": 1.0}, read_units=32.0, write_units=2.0, cpu_ms=0.5),
        pacing_parallel_reads=8,
        environment_refresh={},
        refresh_seconds={},
        memory_mb={"DecideFunction": 1024, "TrackFunction": 1024, "RecordFunction": 1024, "PacingFunction": 1024},
        init_ms=0.0,
        custom_metrics=10,
        alarms=2,
        secrets=1,
        log_retention_days=30.0,
        s3_retention_days=30.0,
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
    access_log_bytes=0,
)


def by_key(measured: Measured, traffic: Traffic, prices: dict[str, Price] = FLAT) -> dict[str, float]:
    return {item.key: item.monthly_usd for item in line_items(measured, traffic, prices)}


def test_a_small_case_by_hand() -> None:
    costs = by_key(measured(), ONE_A_SECOND)
    month = MONTH_SECONDS  # 2,592,000 decisions, as many impressions
    assert costs["dynamodb_writes"] == pytest.approx(6 * month * 0.625e-6)  # $9.72
    assert costs["dynamodb_reads"] == pytest.approx(0.5 * month * 0.125e-6)
    # Decide: 1 ms of CPU + the caps Query's assumed 4 ms, at 1 GB
    assert costs["decide_gb_s"] == pytest.approx(0.005 * month * 0.0000166667)
    assert costs["api_requests"] == pytest.approx(2 * month * 1e-6)  # the decision and its impression beacon
    assert costs["data_out"] == pytest.approx(1e-3 * month * 0.09)  # 1 MB a response
    assert costs["sqs_sends"] == pytest.approx(month * 0.40e-6)
    # Record: one invocation per 100 messages (the decision record and the impression)
    assert costs["lambda_requests"] == pytest.approx((month + month + 2 * month / 100) * 0.20e-6)
    assert costs["alarms"] == pytest.approx(0.2)


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
