"""Budget pacing as pure functions: the traffic profile, the controller, the stop, what Decide trusts, a step."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from adserve.campaigns.currencies import ExchangeRates
from adserve.campaigns.model import Campaign
from adserve.core.errors import ConfigurationError, DeliveryStoreUnavailableError
from adserve.delivery.counting import DeliveryTotals
from adserve.delivery.pacing import (
    MAX_RISE,
    PACING_MAX_AGE,
    START_PROBABILITY,
    PacingConfig,
    PacingState,
    PacingStatus,
    TrafficProfile,
    delivered,
    pace,
    serve_probability,
)
from adserve.delivery.pacing_step import run_pacing_step
from adserve.wiring.pacing import pacing_config
from adserve.wiring.settings import DecideSettings, PacingSettings
from pydantic import BaseModel

from devstack.fakes import InMemoryDeliveryCounter, InMemoryPacingStore
from tests.support.builders import NOW, campaign
from tests.support.template_parameters import assert_parameter_feeds_setting

DAY = datetime(2026, 11, 25, tzinfo=UTC)
NIGHT_AND_DAY = TrafficProfile(tuple([0.01] * 12 + [(1 - 0.12) / 12] * 12))
"""1% of the day's requests in each of the first 12 hours, the rest spread over the last 12."""


def budgeted(**overrides: Any) -> Campaign:
    return campaign(**{"budget": {"unit": "impressions", "daily": 10_000}, **overrides})


def units(booked: Campaign, totals: DeliveryTotals) -> int:
    assert booked.budget is not None
    return delivered(totals, booked.budget.unit)


def step(
    booked: Campaign,
    previous: PacingState | None,
    today: int,
    now: datetime,
    *,
    lifetime: int | None = None,
    profile: TrafficProfile = NIGHT_AND_DAY,
) -> PacingState:
    return pace(booked, previous, today, today if lifetime is None else lifetime, profile, now)


def test_the_profile_learns_the_share_of_each_hour_from_counts_of_several_days() -> None:
    counts = {
        DAY - timedelta(days=day) + timedelta(hours=hour): (300 if hour >= 12 else 100)
        for day in (1, 2)
        for hour in range(24)
    }
    profile = TrafficProfile.from_counts(counts)
    assert profile.hourly_shares[0] == pytest.approx(100 / 4800)
    assert profile.hourly_shares[12] == pytest.approx(300 / 4800)
    assert profile.elapsed(DAY + timedelta(hours=12)) == pytest.approx(0.25)
    assert profile.elapsed(DAY + timedelta(hours=12, minutes=30)) == pytest.approx(0.25 + 150 / 4800)
    assert TrafficProfile.from_counts({}) == TrafficProfile.uniform()


def test_the_even_target_follows_the_traffic_not_a_straight_line() -> None:
    state = step(budgeted(), None, 0, DAY + timedelta(hours=12))
    assert state.target_now == 1200  # 12% of the day's traffic is past at noon, not 50%
    assert state.status is PacingStatus.BEHIND


def test_the_first_step_starts_small_and_rises_at_most_by_max_rise() -> None:
    first = step(budgeted(), None, 0, DAY + timedelta(hours=1))
    assert first.serve_probability == START_PROBABILITY
    second = step(budgeted(), first, 0, DAY + timedelta(hours=1, minutes=1))
    assert second.serve_probability == pytest.approx(START_PROBABILITY * MAX_RISE)


def test_p_is_what_is_still_needed_over_what_the_rest_of_the_day_would_give_at_p_1() -> None:
    """At p = 0.1 the campaign got 100 impressions in a minute worth 0.01/60 of the day's traffic: capacity is
    100 / (0.1 x 0.01/60) = 6M per day at p = 1; what is left over that times the 88% of the day to come."""
    booked = budgeted()
    now = DAY + timedelta(hours=11, minutes=59)
    before = step(booked, None, 1_600, now).model_copy(update={"serve_probability": 0.1})
    after = step(booked, before, 1_700, now + timedelta(minutes=1))
    capacity = 100 / (0.1 * 0.01 / 60)
    in_flight = 100 * PacingConfig().in_flight_steps
    needed = 10_000 - 1_700 - in_flight
    assert after.capacity == pytest.approx(capacity)
    assert after.in_flight == in_flight
    assert after.serve_probability == pytest.approx(needed / (capacity * 0.88), rel=1e-6)


def test_delivered_plus_in_flight_reaching_the_budget_stops_the_campaign() -> None:
    booked = budgeted()
    now = DAY + timedelta(hours=20)
    before = step(booked, None, 9_500, now).model_copy(update={"serve_probability": 0.5})
    after = step(booked, before, 9_700, now + timedelta(minutes=1))  # 200 counted, 400 more in flight
    assert (after.serve_probability, after.status, after.in_flight) == (0.0, PacingStatus.EXHAUSTED, 400)


def test_an_asap_campaign_runs_at_1_then_lands_on_its_budget_instead_of_jumping_over_it() -> None:
    booked = budgeted(pacing="asap")
    now = DAY + timedelta(hours=13)
    # Before anything is counted it starts small and doubles, as an even campaign does (next test)
    early = step(booked, None, 0, now)
    assert early.serve_probability == START_PROBABILITY
    assert step(booked, early, 0, now + timedelta(minutes=1)).serve_probability == START_PROBABILITY * MAX_RISE
    # 1,000 counted in the last minute at p = 1, so 2,000 in flight: 500 are left of the 10,000, and a minute
    # at p = 1 would bring ~1,000 more. p halves, so the next minute's expected delivery is what is left.
    before = step(booked, None, 6_500, now).model_copy(update={"serve_probability": 1.0})
    near = step(booked, before, 7_500, now + timedelta(minutes=1))
    next_minute = NIGHT_AND_DAY.elapsed(now + timedelta(minutes=2)) - NIGHT_AND_DAY.elapsed(now + timedelta(minutes=1))
    capacity = near.capacity
    assert capacity is not None
    expected_next = near.serve_probability * capacity * next_minute
    assert expected_next == pytest.approx(10_000 - 7_500 - near.in_flight)
    assert near.serve_probability == pytest.approx(0.5, rel=0.01)


def test_an_asap_budget_of_a_minute_of_traffic_is_not_overrun_while_the_counts_lag() -> None:
    """1,000 eligible requests a minute, each counted a minute after it was served, and a daily budget of 1,500:
    at p = 1 from the first step two minutes were served (2,000) before the first count arrived."""
    booked = budgeted(pacing="asap", budget={"unit": "impressions", "daily": 1_500})
    served: list[float] = []
    state = None
    for minute in range(15):
        counted = round(sum(served[: max(minute - 1, 0)]))
        state = step(
            booked, state, counted, DAY + timedelta(hours=10, minutes=minute), profile=TrafficProfile.uniform()
        )
        served.append(state.serve_probability * 1_000)
    # The controller ramps while its counts lag the ramp: what escapes is that lag, a fraction of the budget
    assert 1_400 <= sum(served) <= 1.2 * 1_500


def test_the_next_minute_cap_holds_in_the_last_minute_of_the_day() -> None:
    """1,000 impressions a minute at p = 1 (capacity 1.44M a day), 500 left after in flight: half a minute's worth
    at 23:58 and at 23:59 alike, whose next minute runs into tomorrow."""
    booked = budgeted(pacing="asap", budget={"unit": "impressions", "lifetime": 999_500})
    uniform = TrafficProfile.uniform()

    def last_steps(now: datetime) -> PacingState:
        before = pace(booked, None, 0, 996_000, uniform, now - timedelta(minutes=1))
        history = {"serve_probability": 1.0, "exposure": 10 / 1440, "exposed_delivery": 10_000.0}
        return pace(booked, before.model_copy(update=history), 50_000, 997_000, uniform, now)

    before_midnight = last_steps(datetime(2026, 11, 25, 23, 58, 10, tzinfo=UTC))
    last_minute = last_steps(datetime(2026, 11, 25, 23, 59, 10, tzinfo=UTC))
    assert before_midnight.serve_probability == pytest.approx(0.5, rel=0.05)
    assert last_minute.serve_probability == pytest.approx(before_midnight.serve_probability)


def paced_all_morning(booked: Campaign, totals: DeliveryTotals, now: datetime, exposed_delivery: float) -> PacingState:
    """The state of a campaign paced at p = 0.4 all morning, its capacity learned from *exposed_delivery*."""
    amount = units(booked, totals)
    state = pace(booked, None, amount, amount, NIGHT_AND_DAY, now)
    return state.model_copy(update={"serve_probability": 0.4, "exposure": 0.01, "exposed_delivery": exposed_delivery})


def test_a_state_decide_stopped_serving_long_ago_is_no_base_for_p_which_starts_small_again() -> None:
    # Given an asap campaign paced at p = 0.4 all morning with a capacity learned, whose state then went unrefreshed
    # for three hours (a step that skipped it: its currency lost its rate), so Decide served nothing of it
    now = DAY + timedelta(hours=10)
    booked = budgeted(pacing="asap")
    morning = paced_all_morning(booked, DeliveryTotals(impressions=2_000), now, exposed_delivery=2_000.0)
    later = now + timedelta(hours=3)
    # When the step paces it again, its p does not rise from the morning's 0.4 (which would open it at once)
    after = pace(booked, morning, 2_000, 2_000, NIGHT_AND_DAY, later)
    assert after.serve_probability == START_PROBABILITY
    # while a state Decide still served is the base it always was, a campaign's paced in turns too: at its turn
    # its state is a moment past the 5 minutes Decide serves one (the step's clock is not the state's)
    for turn in (timedelta(minutes=1), timedelta(minutes=5, seconds=2), timedelta(minutes=9)):
        assert pace(booked, morning, 2_000, 2_000, NIGHT_AND_DAY, now + turn).serve_probability > 0.4, turn


def test_a_budget_switched_between_impressions_and_spend_starts_afresh() -> None:
    # Given a spend budget paced all morning (its amounts and capacity in micro-units)
    now = DAY + timedelta(hours=10)
    spend = budgeted(value_cpm=10.0, budget={"unit": "spend", "daily": 500.0})
    totals = DeliveryTotals(impressions=20_000, spend_micros=200_000_000)
    morning = paced_all_morning(spend, totals, now, exposed_delivery=100_000_000.0)
    # When the same budget is edited to impressions and the next step runs
    impressions = budgeted(value_cpm=10.0, budget={"unit": "impressions", "daily": 50_000})
    shown_now = units(impressions, totals)
    after = pace(impressions, morning, shown_now, shown_now, NIGHT_AND_DAY, now + timedelta(minutes=1))
    # Then nothing of the spend state carries over: no capacity in micros, no micros counted as impressions
    assert (after.unit, after.delivered_today, after.in_flight, after.capacity) == ("impressions", 20_000, 0, None)
    assert after.serve_probability == START_PROBABILITY


def test_a_cpm_changed_under_a_spend_budget_carries_its_capacity_over_at_the_new_price() -> None:
    # Given a spend budget paced all morning at CPM 1 (1,000 micros an impression)
    now = DAY + timedelta(hours=10)
    cheap = budgeted(value_cpm=1.0, budget={"unit": "spend", "daily": 100.0})
    totals = DeliveryTotals(impressions=20_000, spend_micros=20_000_000)
    morning = paced_all_morning(cheap, totals, now, exposed_delivery=10_000_000.0)
    later = now + timedelta(minutes=1)
    spent = units(cheap, totals)
    same_price = pace(cheap, morning, spent, spent, NIGHT_AND_DAY, later)
    # When its CPM is raised tenfold (Record counts each impression at 10,000 micros from now on)
    dear = budgeted(value_cpm=10.0, budget={"unit": "spend", "daily": 100.0})
    repriced = pace(dear, morning, spent, spent, NIGHT_AND_DAY, later)
    # Then the same traffic is worth ten times the spend: p is a tenth of what the old price gave
    assert same_price.capacity is not None
    assert repriced.spend_micros_per_impression == 10_000
    assert repriced.capacity == pytest.approx(10 * same_price.capacity)
    assert repriced.serve_probability == pytest.approx(same_price.serve_probability / 10)
    # and an impressions budget's capacity does not depend on the price
    counted = budgeted(value_cpm=1.0)
    impressions = step(counted, None, 20_000, now).model_copy(
        update={"serve_probability": 0.4, "exposure": 0.01, "exposed_delivery": 200.0}
    )
    assert (
        step(budgeted(value_cpm=10.0), impressions, 20_000, later).capacity
        == step(counted, impressions, 20_000, later).capacity
    )


def test_a_pause_does_not_read_as_a_capacity_many_times_too_small() -> None:
    """1,000 impressions a minute at p = 1 on a uniform day (1.44M a day), 10,000 left of a daily 100,000: paced
    at p = 0.1 until 10:00, then paused for 4 hours, then resumed. Decide served the last p for at most
    PACING_MAX_AGE of those hours, so the capacity and p after the pause are those before it."""
    uniform = TrafficProfile.uniform()
    booked = budgeted(budget={"unit": "impressions", "daily": 100_000})
    paused_at = DAY + timedelta(hours=10)
    history = {"serve_probability": 0.1, "exposure": 10 * 0.1 / 1440, "exposed_delivery": 1_000.0}
    before = pace(booked, None, 90_000, 90_000, uniform, paused_at).model_copy(update=history)
    in_step = pace(booked, before, 90_100, 90_100, uniform, paused_at + timedelta(minutes=1))
    resumed = pace(booked, before, 90_100, 90_100, uniform, paused_at + timedelta(hours=4))
    assert in_step.capacity == pytest.approx(1_440_000, rel=0.02)
    assert resumed.capacity is not None
    assert resumed.capacity > 0.6 * 1_440_000  # before: ~1/25 of it, and p burst to 2 x the last
    assert resumed.serve_probability < 0.1


def test_a_campaign_stopped_at_the_last_step_starts_again_from_the_start_probability() -> None:
    # Given an asap campaign that spent yesterday's budget and stopped (p = 0) with a good capacity estimate
    booked = budgeted(pacing="asap", budget={"unit": "impressions", "daily": 1_500})
    uniform = TrafficProfile.uniform()
    history = {"serve_probability": 0.0, "exposure": 10 / 1440, "exposed_delivery": 10_000.0}
    evening = pace(booked, None, 1_500, 1_500, uniform, DAY + timedelta(hours=23, minutes=59))
    evening = evening.model_copy(update=history)
    # When the new day's first steps run, with nothing of today counted yet
    first = pace(booked, evening, 0, 1_500, uniform, DAY + timedelta(days=1, minutes=1))
    second = pace(booked, first, 0, 1_500, uniform, DAY + timedelta(days=1, minutes=2))
    # Then it rises from the start probability, not straight back to p = 1
    assert (first.serve_probability, second.serve_probability) == (START_PROBABILITY, START_PROBABILITY * MAX_RISE)


def test_a_spend_budget_whose_cpm_counts_nothing_is_not_served() -> None:
    # Given a stored campaign with a spend budget and a CPM under one micro-unit an impression (writes refuse
    # it now; the stored model still reads it), and a fresh state that would let it run
    cheap = budgeted(value_cpm=0.0004, budget={"unit": "spend", "daily": 1.0})
    assert cheap.spend_micros_per_impression == 0
    state = step(cheap, None, 0, DAY + timedelta(hours=1)).model_copy(update={"serve_probability": 1.0})
    # Then Decide does not serve it: its spend would never reach the budget
    assert serve_probability(cheap, state, DAY + timedelta(hours=1), timedelta(minutes=5)) == 0.0
    assert serve_probability(budgeted(), state, DAY + timedelta(hours=1), timedelta(minutes=5)) == 1.0


def test_a_lifetime_budget_tighter_than_the_daily_one_wins() -> None:
    booked = budgeted(
        budget={"unit": "impressions", "daily": 10_000, "lifetime": 12_000},
        flight_start="2026-11-20T00:00:00Z",
        flight_end="2026-11-27T00:00:00Z",
    )
    state = step(booked, None, 0, DAY + timedelta(hours=1), lifetime=8_000)
    assert state.goal_today == 2_000  # 4,000 left over today and tomorrow
    assert step(booked, None, 0, DAY + timedelta(hours=1), lifetime=12_000).status is PacingStatus.EXHAUSTED


def test_a_budget_lowered_mid_flight_stops_the_campaign_at_the_next_step() -> None:
    now = DAY + timedelta(hours=15)
    before = step(budgeted(), None, 5_000, now)
    assert before.serve_probability > 0
    after = step(budgeted(budget={"unit": "impressions", "daily": 4_000}), before, 5_000, now + timedelta(minutes=1))
    assert (after.serve_probability, after.status) == (0.0, PacingStatus.EXHAUSTED)


def test_decide_serves_unbudgeted_campaigns_and_fails_closed_without_a_fresh_state() -> None:
    booked = budgeted()
    state = step(booked, None, 0, NOW).model_copy(update={"serve_probability": 0.3})
    max_age = timedelta(minutes=5)
    assert serve_probability(campaign(), None, NOW, max_age) == 1.0
    assert serve_probability(booked, state, NOW + timedelta(minutes=4), max_age) == 0.3
    assert serve_probability(booked, state, NOW + timedelta(minutes=6), max_age) == 0.0
    assert serve_probability(booked, None, NOW, max_age) == 0.0


class FailingFor(InMemoryDeliveryCounter):
    def __init__(self, campaign_id: str) -> None:
        super().__init__()
        self.failing = campaign_id

    def lifetime(self, campaign_id: str) -> DeliveryTotals:
        if campaign_id == self.failing:
            raise DeliveryStoreUnavailableError("throttled")
        return super().lifetime(campaign_id)


def test_a_step_paces_live_budgeted_campaigns_and_keeps_the_old_state_of_one_it_cannot_read() -> None:
    counter = FailingFor("cmp-sick")
    counter.hours[("cmp-over", DAY + timedelta(hours=13))] = DeliveryTotals(impressions=10_200)
    store = InMemoryPacingStore()
    old = step(budgeted(campaign_id="cmp-sick"), None, 0, NOW - timedelta(minutes=1))
    store.put(old)
    campaigns = [
        budgeted(campaign_id="cmp-ok"),
        budgeted(campaign_id="cmp-over"),
        budgeted(campaign_id="cmp-sick"),
        campaign(campaign_id="cmp-free"),
        budgeted(campaign_id="cmp-paused", status="paused"),
        budgeted(campaign_id="cmp-ended", flight_end="2026-11-25T12:00:00Z"),
    ]
    summary = run_pacing_step(campaigns, counter, counter, store, NOW)
    assert sorted(store.states) == ["cmp-ok", "cmp-over", "cmp-sick"]
    assert store.states["cmp-sick"] == old
    assert (summary.paced, summary.failed, summary.over_delivered) == (2, ["cmp-sick"], ["cmp-over"])
    assert summary.exhausted == 1


def test_a_step_paces_no_campaign_decide_cannot_rank_for_want_of_an_exchange_rate() -> None:
    # Given a budgeted campaign in EUR and one in USD, and the default rates (ranking in USD, no other currency)
    counter, store = InMemoryDeliveryCounter(), InMemoryPacingStore()
    campaigns = [budgeted(campaign_id="cmp-usd"), budgeted(campaign_id="cmp-eur", currency="EUR")]
    # When the step runs, only the one Decide serves is paced: the other's p would rise while nothing served it
    assert run_pacing_step(campaigns, counter, counter, store, NOW).paced == 1
    assert sorted(store.states) == ["cmp-usd"]
    # And with a rate for EUR both are
    with_rates = ExchangeRates("USD", {"EUR": 1.08})
    assert run_pacing_step(campaigns, counter, counter, store, NOW, rates=with_rates).paced == 2
    assert sorted(store.states) == ["cmp-eur", "cmp-usd"]


class CountsUnreadableFor(InMemoryDeliveryCounter):
    """A delivery table whose request counts of one placement are throttled."""

    def __init__(self, placement: str) -> None:
        super().__init__()
        self.failing = placement

    def requests(
        self, placement: str, first_hour: datetime, last_hour: datetime
    ) -> dict[tuple[datetime, int | None], int]:
        if placement == self.failing:
            raise DeliveryStoreUnavailableError("ProvisionedThroughputExceeded")
        return super().requests(placement, first_hour, last_hour)


def test_a_placement_whose_request_counts_cannot_be_read_keeps_its_campaigns_last_profile_and_stops_none() -> None:
    # Given a campaign in each of two placements, one paced before with a night-and-day profile, and request
    # counts that say every hour is alike, except that the midroll placement's cannot be read
    counter = CountsUnreadableFor("audio_midroll")
    for day in range(1, 8):
        for hour in range(24):
            counter.request_counts[("audio_preroll", DAY - timedelta(days=day) + timedelta(hours=hour), hour)] = 100
    midroll = budgeted(campaign_id="cmp-midroll", placements=["audio_midroll"])
    preroll = budgeted(
        campaign_id="cmp-preroll",
        placements=["audio_preroll"],
        creatives=[{**midroll.creatives[0].model_dump(mode="json"), "ad_id": "cmp-preroll-ad-1"}],
    )
    never = budgeted(campaign_id="cmp-never", placements=["audio_midroll"])
    store = InMemoryPacingStore()
    store.put(step(midroll, None, 0, NOW - timedelta(minutes=1)))
    # When a step runs
    summary = run_pacing_step([midroll, preroll, never], counter, counter, store, NOW)
    # Then every campaign is paced: the midroll ones with the profile of their last state (uniform for one
    # never paced), the other with what its counts say; and the step says which placement was not read
    assert summary.paced == 3
    assert summary.profiles_unread == ["audio_midroll"]
    assert store.states["cmp-midroll"].updated_at == NOW
    assert store.states["cmp-midroll"].hourly_shares == list(NIGHT_AND_DAY.hourly_shares)
    assert store.states["cmp-never"].hourly_shares == list(TrafficProfile.uniform().hourly_shares)
    assert store.states["cmp-preroll"].hourly_shares == pytest.approx([1 / 24] * 24)


def test_a_campaign_targeting_the_morning_paces_on_the_morning_traffic_and_waits_out_the_night_at_its_p() -> None:
    # Given a week of even traffic at every UTC hour, its listeners' local hour being the UTC one, and a budgeted
    # campaign that targets 08:00-11:59 local time, first paced at midnight
    counter = InMemoryDeliveryCounter()
    for day in range(1, 8):
        for hour in range(24):
            counter.request_counts[("audio_midroll", DAY - timedelta(days=day) + timedelta(hours=hour), hour)] = 600
    morning = budgeted(campaign_id="cmp-morning", targeting={"hours": [8, 9, 10, 11]})
    store = InMemoryPacingStore()
    # When the step runs every minute of the night, in which it can show the campaign nothing
    for minute in range(0, 8 * 60, 1):
        run_pacing_step([morning], counter, counter, store, DAY + timedelta(minutes=minute))
    state = store.states["cmp-morning"]
    # Then its profile is the morning's traffic alone, so by 08:00 none of its day is due yet, and its p is still
    # the one it started at: a p doubled every idle minute would open the morning at p = 1, past a small budget
    assert state.hourly_shares == pytest.approx([0.0] * 8 + [0.25] * 4 + [0.0] * 12)
    assert (state.share_now, state.target_now) == (0.0, 0)
    assert state.serve_probability == START_PROBABILITY


def test_counts_of_no_known_local_hour_shape_every_campaigns_profile_as_before_local_hours_were_counted() -> None:
    # Given a week of counts written before local hours were (a night-light, day-heavy placement), and a campaign
    # for listeners nine hours ahead of UTC that targets their morning
    counter = InMemoryDeliveryCounter()
    for day in range(1, 8):
        for hour in range(24):
            counts = 100 if 6 <= hour < 22 else 20
            counter.request_counts[("audio_midroll", DAY - timedelta(days=day) + timedelta(hours=hour), None)] = counts
    tokyo = budgeted(campaign_id="cmp-tokyo", targeting={"hours": [8, 9, 10, 11]})
    store = InMemoryPacingStore()
    # When it is paced
    run_pacing_step([tokyo], counter, counter, store, DAY + timedelta(hours=1))
    # Then its profile is the placement's whole traffic, as before: read at the UTC hour's own, its real window
    # (UTC 23-02) would have had no traffic, and its p would never have risen there
    shares = store.states["cmp-tokyo"].hourly_shares
    assert shares == pytest.approx([20 / 1760] * 6 + [100 / 1760] * 16 + [20 / 1760] * 2)


def test_a_step_out_of_time_paces_the_stalest_states_first_and_leaves_the_rest_for_the_next_step() -> None:
    # Given five live budgeted campaigns: one never paced, the others paced 1-4 minutes ago (not in that order)
    counter = InMemoryDeliveryCounter()
    store = InMemoryPacingStore()
    campaigns = [budgeted(campaign_id=f"cmp-{n}") for n in range(5)]
    for n, minutes in ((0, 2), (1, 4), (2, 1), (4, 3)):  # cmp-3: never paced
        store.put(step(campaigns[n], None, 0, NOW - timedelta(minutes=minutes)))
    before = dict(store.states)
    asked: list[int] = []

    def time_is_up() -> bool:  # time runs out after two campaigns
        asked.append(1)
        return len(asked) > 2

    # When a step runs out of time after two campaigns
    summary = run_pacing_step(campaigns, counter, counter, store, NOW, time_is_up=time_is_up)
    # Then it paced the never-paced one and the stalest, and left the others as they were, for the next step
    assert summary.paced == 2
    assert summary.deferred == ["cmp-4", "cmp-0", "cmp-2"]
    assert {c for c, state in store.states.items() if state.updated_at == NOW} == {"cmp-3", "cmp-1"}
    assert all(store.states[c] == before[c] for c in summary.deferred)
    # And the next step, with time, paces all five
    assert run_pacing_step(campaigns, counter, counter, store, NOW + timedelta(minutes=1)).paced == 5


def test_the_step_assumes_decide_serves_a_state_as_long_as_decide_does_by_default() -> None:
    assert DecideSettings.model_fields["pacing_max_age_seconds"].default == PACING_MAX_AGE.total_seconds()
    assert PacingConfig().state_served_for == PACING_MAX_AGE


@pytest.mark.parametrize(
    ("function", "settings"), [("DecideFunction", DecideSettings), ("PacingFunction", PacingSettings)]
)
def test_one_template_parameter_sets_how_long_decide_serves_a_state_and_how_long_the_step_assumes_it(
    function: str, settings: type[BaseModel]
) -> None:
    assert_parameter_feeds_setting(function, "PacingMaxAgeSeconds", settings, "pacing_max_age_seconds")


def test_the_step_is_configured_with_the_deployments_serving_time() -> None:
    tables = {"CAMPAIGNS_TABLE_NAME": "c", "DELIVERY_TABLE_NAME": "d", "PACING_TABLE_NAME": "p"}
    settings = PacingSettings.from_env(tables | {"PACING_MAX_AGE_SECONDS": "600", "PACING_IN_FLIGHT_STEPS": "3"})
    assert pacing_config(settings) == PacingConfig(in_flight_steps=3.0, state_served_for=timedelta(minutes=10))
    for bad in ("60", "3601", "nan"):  # under two steps a budgeted campaign would sit out between steps
        with pytest.raises(ConfigurationError, match="PACING_MAX_AGE_SECONDS"):
            PacingSettings.from_env(tables | {"PACING_MAX_AGE_SECONDS": bad})
