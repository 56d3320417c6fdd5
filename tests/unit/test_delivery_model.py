"""Delivery's pure parts: budgets and currency, spend arithmetic, shards and groups, reports, Record's step."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from adserve.campaigns.booking import BookingRule
from adserve.campaigns.currencies import USD_ONLY, ExchangeRates
from adserve.campaigns.directory import CampaignDirectory
from adserve.campaigns.model import Budget, BudgetUnit, Campaign, CampaignInput
from adserve.cli.delivery import deployment_rates, format_report
from adserve.core.errors import InvalidInputError
from adserve.core.vocabulary import EventType
from adserve.delivery.counting import (
    MAX_EVENTS_PER_WRITE,
    SHARDS,
    DeliveryEvent,
    DeliveryTotals,
    delivery_groups,
    hour_of,
    marker_key,
    shard_of,
)
from adserve.delivery.pacing import PACING_MAX_AGE, PacingState, PacingStatus, TrafficProfile, pace
from adserve.delivery.pacing import delivered as in_budget_units
from adserve.delivery.report import (
    DeliveryReport,
    Granularity,
    build_report,
    parse_hour,
    report_range,
    requested_range,
)
from adserve.outcomes.logs import read_decisions, read_outcomes
from adserve.outcomes.recording import OutcomeRecorder
from pydantic import TypeAdapter, ValidationError

from devstack.fakes import InMemoryCampaigns, InMemoryDeliveryCounter, InMemoryImpressionCounter, InMemoryLogStore
from tests.support.builders import NOW, campaign
from tests.support.record_messages import decision, failed_ids, message_records, outcome, sqs_event

HOUR = hour_of(NOW)
EXPIRES = NOW + timedelta(days=14)


# ---------------------------------------------------------------- budgets


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"budget": {"unit": "spend", "lifetime": 0}}, "budget.lifetime", "greater than 0"),
        ({"budget": {"unit": "spend", "daily": -5}}, "budget.daily", "greater than 0"),
        ({"budget": {"unit": "impressions", "lifetime": 100, "daily": 101}}, "budget", "must not exceed"),
        ({"budget": {"unit": "impressions", "lifetime": 100.5}}, "budget", "whole impressions"),
        ({"budget": {"unit": "spend"}}, "budget", "a lifetime or a daily amount"),
        ({"budget": {"unit": "clicks", "lifetime": 10}}, "budget.unit", "Input should be"),
        ({"pacing": "fast"}, "pacing", "Input should be"),
        ({"value_cpm": 0, "budget": {"unit": "spend", "lifetime": 100}}, "value_cpm", "greater than 0"),
    ],
)
def test_a_bad_budget_is_refused_naming_the_field(changes: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(ValidationError) as error:
        campaign(**changes)
    problems = [(".".join(str(part) for part in problem["loc"]), problem["msg"]) for problem in error.value.errors()]
    assert any(location == field and reason in message for location, message in problems), problems


@pytest.mark.parametrize(("currency", "stored"), [("usd", False), ("XXX", True), ("BGN", True), ("EUR", True)])
def test_a_write_takes_an_active_currency_and_a_stored_campaign_any_of_iso_4217s_shape(
    currency: str, stored: bool
) -> None:
    # BGN was replaced by EUR on 2026-01-01: a campaign stored in it before still reads (its delivery is counted in
    # it), but no write takes it any more, nor a code ISO 4217 never gave a country (XXX)
    document = campaign().model_dump(mode="json") | {"currency": currency}
    if currency == "EUR":
        assert CampaignInput.model_validate(document).currency == "EUR"
    else:
        with pytest.raises(ValidationError, match="active ISO 4217"):
            CampaignInput.model_validate(document)
    if stored:
        assert Campaign.model_validate(document).currency == currency
    else:
        with pytest.raises(ValidationError, match="pattern"):
            Campaign.model_validate(document)


def test_a_spend_budget_without_a_cpm_cannot_exist() -> None:
    document = campaign().model_dump(mode="json")
    del document["value_cpm"]
    document["budget"] = {"unit": "spend", "lifetime": 100}
    with pytest.raises(ValidationError, match="value_cpm"):
        type(campaign()).model_validate(document)


def test_a_valid_budget_defaults_to_even_pacing_in_dollars() -> None:
    booked = campaign(budget={"unit": "spend", "lifetime": 1000, "daily": 50.25})
    assert (booked.currency, booked.pacing.value) == ("USD", "even")
    assert booked.budget is not None
    assert (booked.budget.lifetime_units, booked.budget.daily_units) == (1_000_000_000, 50_250_000)
    assert campaign(currency="SEK").currency == "SEK"


def test_spend_is_integer_micros_so_a_million_impressions_add_up_exactly() -> None:
    booked = campaign(value_cpm=12.345)
    assert booked.spend_micros_per_impression == 12_345
    totals = sum((DeliveryTotals.of(EventType.IMPRESSION, 12_345) for _ in range(1000)), DeliveryTotals())
    assert totals.spend_micros == 12_345_000  # 1,000 impressions at CPM 12.345 spend exactly 12.345
    assert Budget.units(12.345, BudgetUnit.SPEND) == totals.spend_micros


# ------------------------------------------------------------ shards, groups


def test_shards_are_stable_in_range_and_spread() -> None:
    keys = [marker_key(f"d-{index}", "ad-1", EventType.IMPRESSION) for index in range(20_000)]
    shards = [shard_of(key) for key in keys]
    assert shards == [shard_of(key) for key in keys]
    assert set(shards) == set(range(SHARDS))
    busiest = max(shards.count(shard) for shard in range(SHARDS))
    assert busiest < 1.25 * len(keys) / SHARDS


def test_every_shard_of_a_campaign_is_read_in_one_batch_get() -> None:
    # The lifetime read is one BatchGetItem of a key per shard, and DynamoDB takes at most 100 keys in one: past
    # that every lifetime read fails, so the pacing step stops every budgeted campaign (the runbook's ceiling)
    assert SHARDS <= 100


def event(decision: str, event_type: EventType = EventType.IMPRESSION, **changes: Any) -> DeliveryEvent:
    values: dict[str, Any] = {
        "marker_key": marker_key(decision, "ad-1", event_type),
        "campaign_id": "cmp-1",
        "hour": HOUR,
        "totals": DeliveryTotals.of(event_type, 10_000),
    }
    values.update(changes)
    return DeliveryEvent(**values)


def test_groups_are_per_campaign_and_hour_drop_repeats_and_fit_a_transaction() -> None:
    events = [event(f"d-{index}") for index in range(150)]
    events += [event("d-0"), event("x", campaign_id="cmp-2"), event("y", hour=HOUR - timedelta(hours=1))]
    groups = delivery_groups(events, EXPIRES)
    sizes: dict[tuple[str, datetime], list[int]] = {(group.campaign_id, group.hour): [] for group in groups}
    for group in groups:
        sizes[(group.campaign_id, group.hour)].append(len(group.events))
    assert sizes == {
        ("cmp-1", HOUR): [MAX_EVENTS_PER_WRITE] * (150 // MAX_EVENTS_PER_WRITE),
        ("cmp-1", HOUR - timedelta(hours=1)): [1],
        ("cmp-2", HOUR): [1],
    }
    assert sum(group.totals.impressions for group in groups) == 152  # the repeat of d-0 dropped
    assert all(group.shard == shard_of(group.events[0].marker_key) for group in groups)


def test_a_groups_totals_are_what_its_events_add_up_to() -> None:
    kinds = [EventType.IMPRESSION, EventType.CLICK, EventType.COMPLETE, EventType.SKIP, EventType.IMPRESSION]
    members = [event(f"d-{index}", kind) for index, kind in enumerate(kinds)]
    members.append(event("d-cheap", totals=DeliveryTotals.of(EventType.IMPRESSION, 7)))
    [group] = delivery_groups(members, EXPIRES)
    assert group.totals == sum((member.totals for member in members), DeliveryTotals())
    assert group.totals == DeliveryTotals(impressions=3, clicks=1, completions=1, skips=1, spend_micros=20_007)


def test_the_utc_hour_is_the_same_instant_truncated_in_utc() -> None:
    moment = datetime(2026, 11, 25, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))
    hour = hour_of(moment)
    assert hour == datetime(2026, 11, 26, 3, tzinfo=UTC)
    assert hour.tzinfo is UTC
    assert hour_of(hour) is hour


def test_the_utc_hour_of_a_parsed_z_moment_and_of_a_naive_local_one() -> None:
    parsed = TypeAdapter(datetime).validate_json('"2026-11-25T23:59:59.5Z"')
    assert parsed.tzinfo is not UTC  # pydantic's own zone at offset zero
    assert hour_of(parsed) is hour_of(datetime(2026, 11, 25, 23, 30, tzinfo=UTC))
    naive = datetime(2026, 11, 25, 23, 59)
    assert hour_of(naive) == naive.astimezone(UTC).replace(minute=0)


# ------------------------------------------------------------------ reports


def delivered(counter: InMemoryDeliveryCounter, hour: datetime, impressions: int, clicks: int = 0) -> None:
    events = [event(f"{hour:%d%H}-{index}", hour=hour) for index in range(impressions)]
    events += [event(f"{hour:%d%H}-{index}", EventType.CLICK, hour=hour) for index in range(clicks)]
    for group in delivery_groups(events, EXPIRES):
        counter.count_once(group)


def test_hourly_and_daily_rows_sum_the_counters_with_rates() -> None:
    counter = InMemoryDeliveryCounter()
    delivered(counter, HOUR, 200, clicks=5)
    delivered(counter, HOUR - timedelta(hours=2), 100)
    delivered(counter, HOUR - timedelta(days=1), 50)
    booked = campaign(value_cpm=10.0)
    hourly = build_report(
        booked,
        counter,
        HOUR - timedelta(hours=2),
        HOUR,
        Granularity.HOUR,
        NOW,
        None,
        pacing_max_age=PACING_MAX_AGE,
        rates=USD_ONLY,
    )
    assert [row.impressions for row in hourly.rows] == [100, 0, 200]
    assert (hourly.totals.impressions, hourly.totals.clicks, hourly.totals.spend) == (300, 5, 3.0)
    assert hourly.rows[2].ctr == 0.025
    assert hourly.rows[1].ctr is None
    assert (hourly.budget, hourly.pacing_status, hourly.serve_probability) == (None, None, None)
    daily = build_report(
        booked,
        counter,
        HOUR - timedelta(days=1),
        HOUR,
        Granularity.DAY,
        NOW,
        None,
        pacing_max_age=PACING_MAX_AGE,
        rates=USD_ONLY,
    )
    assert [(row.start, row.impressions) for row in daily.rows] == [
        (HOUR.replace(hour=0) - timedelta(days=1), 50),
        (HOUR.replace(hour=0), 300),
    ]


def hour_report(
    booked: Campaign,
    counter: InMemoryDeliveryCounter,
    state: PacingState | None = None,
    *,
    pacing_max_age: timedelta = PACING_MAX_AGE,
    rates: ExchangeRates | None = USD_ONLY,
) -> DeliveryReport:
    """The report of the hour HOUR, read at NOW in a USD-only deployment (what most tests here vary is elsewhere)."""
    return build_report(
        booked, counter, HOUR, HOUR, Granularity.HOUR, NOW, state, pacing_max_age=pacing_max_age, rates=rates
    )


FLIGHT = {"flight_start": "2026-11-25T00:00:00Z", "flight_end": "2026-11-26T00:00:00Z"}  # NOW is 13:30


@pytest.mark.parametrize(
    ("budget", "pacing", "impressions", "status"),
    [
        ({"unit": "impressions", "lifetime": 2400}, "even", 1350, PacingStatus.ON_TRACK),  # target 1350
        ({"unit": "impressions", "lifetime": 2400}, "even", 1000, PacingStatus.BEHIND),
        ({"unit": "impressions", "lifetime": 2400}, "even", 1600, PacingStatus.AHEAD),
        ({"unit": "impressions", "lifetime": 2400}, "asap", 1600, PacingStatus.ON_TRACK),
        ({"unit": "impressions", "lifetime": 2400, "daily": 1000}, "asap", 1000, PacingStatus.EXHAUSTED),
        ({"unit": "spend", "lifetime": 12}, "even", 1200, PacingStatus.EXHAUSTED),  # CPM 10: 1200 spend 12.0
    ],
)
def test_the_report_shows_the_pacing_steps_verdict(
    budget: dict[str, Any], pacing: str, impressions: int, status: PacingStatus
) -> None:
    """Status and serve probability are the pacing step's (here with a uniform traffic profile: a straight line)."""
    counter = InMemoryDeliveryCounter()
    delivered(counter, HOUR, impressions)
    booked = campaign(budget=budget, pacing=pacing, value_cpm=10.0, **FLIGHT)
    assert booked.budget is not None
    units = in_budget_units(counter.lifetime(booked.campaign_id), booked.budget.unit)
    state = pace(booked, None, units, units, TrafficProfile.uniform(), NOW)
    report = hour_report(booked, counter, state)
    assert report.pacing_status is status
    assert report.serve_probability == state.serve_probability
    assert report.budget is not None
    assert report.budget.delivered_lifetime == (impressions if budget["unit"] == "impressions" else impressions / 100)


def test_before_the_first_pacing_step_the_report_says_nothing_about_pacing() -> None:
    counter = InMemoryDeliveryCounter()
    booked = campaign(budget={"unit": "impressions", "daily": 100}, **FLIGHT)
    report = hour_report(booked, counter)
    assert (report.pacing_status, report.serve_probability, report.pacing_state) == (None, None, None)


def test_a_pacing_state_older_than_decide_serves_is_reported_as_not_served() -> None:
    # Given the pacing step's last state, on track, and a step that has not run since
    counter = InMemoryDeliveryCounter()
    booked = campaign(budget={"unit": "impressions", "daily": 1_000}, **FLIGHT)
    state = pace(booked, None, 0, 0, TrafficProfile.uniform(), NOW - timedelta(hours=2))
    assert state.serve_probability > 0
    # When the report is read past the age Decide serves a state for
    report = hour_report(booked, counter, state)
    # Then it says what Decide does: the campaign is not served, with no verdict, and the stale state is shown
    assert (report.pacing_status, report.serve_probability) == (None, 0.0)
    assert report.pacing_state == state
    # And within that age, the step's verdict and probability
    fresh = hour_report(booked, counter, state, pacing_max_age=timedelta(hours=3))
    assert (fresh.pacing_status, fresh.serve_probability) == (state.status, state.serve_probability)


@pytest.mark.parametrize(
    ("booking", "rule", "detail"),
    [
        ({"status": "paused"}, BookingRule.STATUS, "the campaign is paused"),
        ({"flight_end": "2026-11-25T12:00:00Z"}, BookingRule.FLIGHT, "not at 2026-11-25T13:30:00+00:00"),
        ({"currency": "EUR"}, BookingRule.CURRENCY, "EUR, which has no rate into the ranking currency USD"),
    ],
)
def test_a_campaign_decide_does_not_serve_is_reported_as_not_served_and_why(
    booking: dict[str, Any], rule: BookingRule, detail: str
) -> None:
    # Given a budgeted campaign the pacing step judged a minute ago, since paused, ended or left without a rate
    counter = InMemoryDeliveryCounter()
    live = campaign(budget={"unit": "impressions", "daily": 1_000}, **FLIGHT)
    state = pace(live, None, 0, 0, TrafficProfile.uniform(), NOW - timedelta(minutes=1))
    assert state.serve_probability > 0
    booked = Campaign.model_validate({**live.model_dump(), **booking})
    # When its report is read
    report = hour_report(booked, counter, state)
    # Then it says what Decide does, and why: nothing served, no verdict, the last state shown
    assert (report.pacing_status, report.serve_probability, report.pacing_state) == (None, 0.0, state)
    assert report.not_served is not None
    assert report.not_served.rule is rule
    assert detail in report.not_served.detail
    printed = format_report(report).splitlines()
    assert printed[-1] == f"not served ({rule.value}): {report.not_served.detail}; serve probability 0"
    assert printed[-2].endswith("pacing even, status none (not paced)")
    # also without a budget, or before the step has paced it
    for unpaced in (booked.model_copy(update={"budget": None}), booked):
        report = hour_report(unpaced, counter)
        assert (report.not_served is not None, report.serve_probability, report.pacing_status) == (True, 0.0, None)
    # and the live campaign, nothing
    served = hour_report(live, counter, state)
    assert (served.not_served, served.serve_probability) == (None, state.serve_probability)


def test_without_the_deployments_rates_a_reports_currency_is_not_judged() -> None:
    counter = InMemoryDeliveryCounter()
    booked = campaign(currency="SEK", **FLIGHT)
    rated = ExchangeRates("USD", {"SEK": 0.095})
    for rates, expected in [(None, None), (rated, None), (USD_ONLY, BookingRule.CURRENCY)]:
        report = hour_report(booked, counter, rates=rates)
        assert (report.not_served.rule if report.not_served else None) == expected


def test_the_cli_reads_the_deployments_rates_from_its_variables() -> None:
    assert deployment_rates({"PACING_MAX_AGE_SECONDS": "300"}) is None
    rates = deployment_rates({"EXCHANGE_RATES": '{"SEK": 0.095}'})
    assert rates is not None
    assert (rates.currency, rates.rate("SEK")) == ("USD", 0.095)
    rates = deployment_rates({"RANKING_CURRENCY": "SEK"})
    assert rates is not None
    assert (rates.currency, rates.rate("USD")) == ("SEK", None)
    with pytest.raises(InvalidInputError, match="EXCHANGE_RATES"):
        deployment_rates({"EXCHANGE_RATES": '{"SEK": -1}'})


def test_a_spend_campaign_whose_cpm_counts_no_micros_shows_no_verdict_beside_the_p_of_0_decide_serves() -> None:
    # Given a spend budget stored before writes refused a CPM under 0.001 (0.0004: 0 micros an impression), paced
    counter = InMemoryDeliveryCounter()
    booked = campaign(budget={"unit": "spend", "daily": 100}, value_cpm=0.0004, **FLIGHT)
    state = pace(booked, None, 0, 0, TrafficProfile.uniform(), NOW).model_copy(update={"serve_probability": 0.01})
    # Then the report shows p 0, as Decide serves it, and no step verdict that would contradict it (behind: p > 0)
    report = hour_report(booked, counter, state)
    assert (report.pacing_status, report.serve_probability) == (None, 0.0)


def test_budget_left_never_goes_negative() -> None:
    counter = InMemoryDeliveryCounter()
    delivered(counter, HOUR, 30)
    report = hour_report(campaign(budget={"unit": "impressions", "lifetime": 40, "daily": 20}), counter)
    assert report.budget is not None
    assert (report.budget.lifetime_left, report.budget.daily_left) == (10, 0)


@pytest.mark.parametrize(
    ("first", "last", "granularity", "reason"),
    [
        (HOUR, HOUR - timedelta(hours=1), Granularity.HOUR, "before from"),
        (HOUR - timedelta(days=8), HOUR, Granularity.HOUR, "at most 7 days"),
        (HOUR - timedelta(days=93), HOUR, Granularity.DAY, "at most 92 days"),
    ],
)
def test_a_reversed_or_too_long_range_is_refused(
    first: datetime, last: datetime, granularity: Granularity, reason: str
) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        report_range(first, last, granularity)


def test_a_requested_range_is_judged_in_the_whole_hours_the_report_reads() -> None:
    # From 00:30 to seven days later at 00:00 reads 169 hours (00:00 to 00:00, both included): one past the limit,
    # refused by the range's own check (the CLI's --from takes minutes), not once the report is being built
    with pytest.raises(InvalidInputError, match="at most 7 days"):
        requested_range(HOUR.replace(minute=30), HOUR + timedelta(days=7), Granularity.HOUR, NOW)
    assert requested_range(HOUR.replace(minute=30), HOUR + timedelta(hours=3), Granularity.HOUR, NOW) == (
        HOUR,
        HOUR + timedelta(hours=3),
    )


def test_hours_parse_only_in_the_documented_form() -> None:
    assert parse_hour("2026-11-25T13", "from") == datetime(2026, 11, 25, 13, tzinfo=UTC)
    for text in ("2026-02-30T13", "\u0662\u0660\u0662\u0666-11-25T13"):  # no 30 February; other scripts' digits
        with pytest.raises(InvalidInputError, match="from must be a UTC hour"):
            parse_hour(text, "from")


# ------------------------------------------------------------ Record's step


def recorder(delivery: InMemoryDeliveryCounter, logs: InMemoryLogStore) -> OutcomeRecorder:
    directory = CampaignDirectory(InMemoryCampaigns([campaign(value_cpm=10.0)]), ttl_seconds=60)
    return OutcomeRecorder(
        counter=InMemoryImpressionCounter(), campaigns=directory, logs=logs, delivery=delivery, clock=lambda: NOW
    )


def test_record_counts_every_outcome_once_across_redeliveries_and_duplicate_beacons() -> None:
    delivery, logs = InMemoryDeliveryCounter(), InMemoryLogStore()
    service = recorder(delivery, logs)
    shown = [outcome(decision_id=f"d-{index}") for index in range(5)]
    clicked = outcome(decision_id="d-0", event_type=EventType.CLICK)
    batch = message_records(*shown, clicked)
    beacon_again = message_records(clicked, shown[1])  # the same identities replayed as new messages
    for records in (batch, batch, batch + beacon_again, beacon_again):
        assert failed_ids(dict(service.process_batch(sqs_event(*records), None))) == set()
    assert delivery.lifetime("cmp-1") == DeliveryTotals(impressions=5, clicks=1, spend_micros=50_000)


def test_outcomes_of_an_unknown_campaign_count_nothing() -> None:
    delivery = InMemoryDeliveryCounter()
    service = recorder(delivery, InMemoryLogStore())
    records = message_records(outcome(campaign_id="gone"))
    assert failed_ids(dict(service.process_batch(sqs_event(*records), None))) == set()
    assert delivery.hours == {}


def test_an_unwritable_delivery_table_fails_the_outcomes_and_logs_only_the_rest() -> None:
    delivery, logs = InMemoryDeliveryCounter(available=False), InMemoryLogStore()
    service = recorder(delivery, logs)
    records = message_records(outcome(decision_id="d-1"), outcome(decision_id="d-2", event_type=EventType.SKIP))
    assert failed_ids(dict(service.process_batch(sqs_event(*records), None))) == {r["messageId"] for r in records}
    assert list(read_outcomes(logs, NOW, NOW)) == []
    delivery.available = True
    assert failed_ids(dict(service.process_batch(sqs_event(*records), None))) == set()
    assert delivery.lifetime("cmp-1") == DeliveryTotals(impressions=1, skips=1, spend_micros=10_000)


def test_record_counts_decisions_per_placement_and_hour_for_the_traffic_profile() -> None:
    delivery, logs = InMemoryDeliveryCounter(), InMemoryLogStore()
    service = recorder(delivery, logs)
    # a decision the app said was at 08:00 its time: targeting read that hour, so the profile counts it there
    local_eight = decision(decision_id="d-4").model_copy(
        update={"listener_features": {**decision().listener_features, "hour_of_day": "8"}}
    )
    records = message_records(
        decision(decision_id="d-1"),
        decision(decision_id="d-2"),
        decision(decision_id="d-3", decided_at=NOW - timedelta(hours=1)),
        local_eight,
        outcome(decision_id="d-1"),
    )
    assert failed_ids(dict(service.process_batch(sqs_event(*records), None))) == set()
    before = HOUR - timedelta(hours=1)
    assert delivery.requests("audio_midroll", before, HOUR) == {
        (before, before.hour): 1,  # no local hour logged: the UTC hour's own
        (HOUR, HOUR.hour): 2,
        (HOUR, 8): 1,
    }


def test_an_explain_requests_decision_is_logged_but_not_counted_as_traffic() -> None:
    delivery, logs = InMemoryDeliveryCounter(), InMemoryLogStore()
    service = recorder(delivery, logs)
    explained = decision(decision_id="d-explain").model_copy(update={"explain": True})
    records = message_records(decision(decision_id="d-1"), explained)
    assert failed_ids(dict(service.process_batch(sqs_event(*records), None))) == set()
    assert delivery.requests("audio_midroll", HOUR, HOUR) == {(HOUR, HOUR.hour): 1}
    assert {record.decision_id: record.explain for record in read_decisions(logs, NOW, NOW)} == {
        "d-1": False,
        "d-explain": True,
    }


def test_decisions_whose_log_failed_are_not_counted_and_an_unwritable_counter_fails_nothing() -> None:
    delivery, logs = InMemoryDeliveryCounter(), InMemoryLogStore(available=False)
    service = recorder(delivery, logs)
    records = message_records(decision(decision_id="d-1"))
    assert failed_ids(dict(service.process_batch(sqs_event(*records), None))) == {records[0]["messageId"]}
    assert delivery.request_counts == {}
    logs.available = True
    delivery.available = False
    records = message_records(decision(decision_id="d-2"))
    assert failed_ids(dict(service.process_batch(sqs_event(*records), None))) == set()


def test_the_cli_prints_only_the_budget_amounts_set_and_says_when_pacing_has_not_judged() -> None:
    counter = InMemoryDeliveryCounter()
    delivered(counter, HOUR, 200)
    booked = campaign(budget={"unit": "impressions", "daily": 1_000}, **FLIGHT)
    printed = format_report(hour_report(booked, counter))
    budget_line = next(line for line in printed.splitlines() if line.startswith("budget"))
    assert budget_line == "budget (impressions): daily 1000.0 left 800.0; pacing even, status not judged yet"


def test_the_cli_prints_spend_to_the_micro_unit_as_the_budget_line_does() -> None:
    # A CPM of 0.125 KWD (a currency of three decimals): a thousand impressions spend 0.125, not 0.12
    counter = InMemoryDeliveryCounter()
    booked = campaign(budget={"unit": "spend", "lifetime": 1.0}, value_cpm=0.125, currency="KWD", **FLIGHT)
    counter.hours[(booked.campaign_id, HOUR)] = DeliveryTotals(impressions=1_000, spend_micros=125_000)
    printed = format_report(hour_report(booked, counter))
    total = next(line for line in printed.splitlines() if line.startswith("total"))
    assert total.endswith("  0.125 KWD")
    assert "lifetime 1.0 left 0.875" in printed


def test_the_cli_says_an_unbudgeted_campaign_is_never_throttled_and_a_deleted_one_not_paced() -> None:
    counter = InMemoryDeliveryCounter()
    delivered(counter, HOUR, 3)
    report = hour_report(campaign(**FLIGHT), counter)
    assert format_report(report).splitlines()[-1] == "serve probability: 1 (no budget: never throttled)"
    deleted = report.model_copy(update={"deleted_at": NOW})
    assert format_report(deleted).splitlines()[-1].startswith("deleted ")
    assert "serve probability" not in format_report(deleted)
