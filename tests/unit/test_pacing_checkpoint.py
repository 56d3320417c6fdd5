"""Between exact reads, a pacing step estimates today's delivery from the last one and the lifetime counted since:
never below what was counted, exact at each exact read, over by no more than other days' late counts, with one
exact read per campaign every EXACT_READ_EVERY."""

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from adserve.campaigns.model import BudgetUnit, Campaign
from adserve.core.errors import DeliveryStoreUnavailableError
from adserve.delivery.counting import DeliveryTotals, hour_of
from adserve.delivery.pacing import (
    EXACT_READ_EVERY,
    DeliveryCheckpoint,
    PacingState,
    TrafficProfile,
    day_start,
    next_exact_read,
    pace,
    today_since_checkpoint,
)
from adserve.delivery.pacing_step import StepSummary, run_pacing_step

from devstack.fakes import InMemoryDeliveryCounter, InMemoryPacingStore
from tests.support.builders import campaign

EVENING = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)
Hours = Mapping[tuple[str, datetime], DeliveryTotals]


def budgeted(daily: int = 1_000_000) -> Campaign:
    return campaign(
        campaign_id="cmp-paced",
        budget={"unit": "impressions", "daily": daily},
        flight_start="2026-11-01T00:00:00Z",
        flight_end="2026-12-31T00:00:00Z",
    )


def counted(hours: Hours, day: datetime | None = None) -> int:
    """Impressions counted of the UTC *day* (of every day without one)."""
    return sum(
        totals.impressions
        for (_, hour), totals in hours.items()
        if day is None or day <= hour < day + timedelta(days=1)
    )


class ArrivingCounter(InMemoryDeliveryCounter):
    """One campaign's delivery, counted while a step reads it too: after each read, a few events of the current
    hour, of earlier hours of the day and of earlier days (late), none after the read. The reads happen
    ``read_lag`` after the step's time (a step's later campaigns are read seconds after it began), so events of
    the next hour, or the next day, may be counted before them.

    ``at_lifetime_read`` keeps, per step time, what had been counted when its lifetime read began."""

    def __init__(self, seed: int, late: bool) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.backs = (
            [timedelta(0)] * 6 + [timedelta(hours=2)] + ([timedelta(days=1), timedelta(days=9)] if late else [])
        )
        self.now = EVENING
        self.read_lag = timedelta(0)
        self.at_lifetime_read: dict[datetime, dict[tuple[str, datetime], DeliveryTotals]] = {}
        self.reads = {"lifetime": 0, "hourly": 0}

    def read_time(self) -> datetime:
        return self.now + self.read_lag

    def arrive(self, campaign_id: str, moment: datetime) -> None:
        for _ in range(self.rng.randrange(4)):
            back = self.rng.choice(self.backs)
            key = (campaign_id, hour_of(moment - back))
            self.hours[key] = self.hours.get(key, DeliveryTotals()) + DeliveryTotals(impressions=self.rng.randrange(50))

    def lifetime(self, campaign_id: str) -> DeliveryTotals:
        self.reads["lifetime"] += 1
        self.at_lifetime_read[self.now] = dict(self.hours)
        totals = super().lifetime(campaign_id)
        self.arrive(campaign_id, self.read_time())
        return totals

    def hourly(self, campaign_id: str, first_hour: datetime, last_hour: datetime) -> dict[datetime, DeliveryTotals]:
        self.reads["hourly"] += 1
        hours = super().hourly(campaign_id, first_hour, last_hour)
        self.arrive(campaign_id, self.read_time())
        return hours


@pytest.mark.parametrize("late", [True, False], ids=["late", "on-time"])
@pytest.mark.parametrize("seed", range(12))
def test_the_estimate_never_falls_below_what_was_counted_and_is_exact_at_each_exact_read(seed: int, late: bool) -> None:
    # Given a campaign paced from 22:30 to past 02:00, across hours and midnight, one to sixteen minutes apart (so
    # exact reads fall at every kind of moment), while delivery is counted before, between and after each
    # step's reads, which run up to 90 s late; with or without late delivery of earlier days (which would pad,
    # and so hide, an estimate's shortfall)
    counter = ArrivingCounter(seed, late)
    store = InMemoryPacingStore()
    booked = budgeted()
    previous: PacingState | None = None
    steps = 0
    while counter.now < EVENING + timedelta(hours=4):
        steps += 1
        counter.now += timedelta(
            minutes=counter.rng.choice([1, 1, 1, 2, 5, 16]), seconds=counter.rng.randrange(-20, 20)
        )
        counter.arrive(booked.campaign_id, counter.now)
        counter.read_lag = timedelta(seconds=counter.rng.randrange(90))
        counter.arrive(booked.campaign_id, counter.read_time())
        hours_read = counter.reads["hourly"]
        run_pacing_step([booked], counter, counter, store, counter.now, clock=counter.read_time)
        hours_read = counter.reads["hourly"] - hours_read
        state = store.states[booked.campaign_id]
        today = day_start(counter.now)
        at_read = counter.at_lifetime_read[counter.now]
        # Then today is never under what had been counted of it when the step began reading
        assert state.delivered_today >= counted(at_read, today)
        # and today's hours were read exactly when no checkpoint younger than EXACT_READ_EVERY was there
        last = None if previous is None else previous.checkpoint
        due = last is None or counter.now >= next_exact_read(booked.campaign_id, last.read_at)
        assert hours_read == int(due)
        if hours_read:
            # and an exact read holds nothing but today's counts
            assert due
            assert state.delivered_today <= counted(counter.hours, today)
        else:
            # and an estimate is over by no more than other days' counts since the exact read it started from, and
            # today's counted during that read (between its lifetime and hourly reads: in both, counted twice)
            assert state.checkpoint is not None
            at_checkpoint = counter.at_lifetime_read[state.checkpoint.read_at]
            other_days = (counted(at_read) - counted(at_read, today)) - (
                counted(at_checkpoint) - counted(at_checkpoint, today)
            )
            twice = state.checkpoint.today - counted(at_checkpoint, today) if state.checkpoint.read_at >= today else 0
            assert state.delivered_today <= counted(counter.hours, today) + other_days + twice
        previous = state
    # And each step read the lifetime once
    assert counter.reads["lifetime"] == steps


def test_a_checkpoint_whose_lifetime_read_returned_after_midnight_is_not_kept() -> None:
    # Given a step that starts in the day's last second and whose lifetime read returns in the new day, which may
    # hold the new day's first counts (the hourly read is of the old day)
    counter = InMemoryDeliveryCounter()
    counter.hours[("cmp-paced", EVENING)] = DeliveryTotals(impressions=70)
    store = InMemoryPacingStore()
    booked = budgeted()
    last_second = datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC)
    run_pacing_step([booked], counter, counter, store, last_second, clock=lambda: last_second + timedelta(seconds=2))
    crossed = store.states["cmp-paced"]
    # Then the step paces on its exact read but keeps no checkpoint, so the next step reads the new day exactly
    assert (crossed.delivered_today, crossed.checkpoint) == (70, None)
    counter.hours[("cmp-paced", last_second + timedelta(seconds=1))] = DeliveryTotals(impressions=5)
    assert run_pacing_step([booked], counter, counter, store, last_second + timedelta(minutes=1)).exact_reads == 1
    assert store.states["cmp-paced"].delivered_today == 5


MIDNIGHT = datetime(2026, 11, 26, tzinfo=UTC)
SLOT = next_exact_read("cmp-paced", MIDNIGHT - timedelta(hours=12))
"""One of cmp-paced's slots (near noon): a checkpoint read at it is due again EXACT_READ_EVERY later."""
LAST_SLOT = next_exact_read("cmp-paced", MIDNIGHT - EXACT_READ_EVERY)
"""Its last slot of the day (23:50:57), so a checkpoint read then is not due until after midnight."""
CHECKPOINT = DeliveryCheckpoint(read_at=SLOT, today=300, lifetime=1_000)
IMPRESSIONS = BudgetUnit.IMPRESSIONS


def state_with(checkpoint: DeliveryCheckpoint | None) -> PacingState:
    """The state of an impressions budget paced at the checkpoint."""
    moment = SLOT if checkpoint is None else checkpoint.read_at
    return pace(budgeted(), None, 0, 0, TrafficProfile.uniform(), moment, checkpoint=checkpoint)


@pytest.mark.parametrize(
    ("checkpoint", "lifetime", "now", "unit", "expected"),
    [
        # the same day: the checkpoint's today and the lifetime's growth since
        (CHECKPOINT, 1_040, SLOT + timedelta(minutes=14), IMPRESSIONS, 340),
        # a new day: nothing of it was counted before the checkpoint, so the growth alone
        (
            DeliveryCheckpoint(read_at=LAST_SLOT, today=300, lifetime=1_000),
            1_040,
            MIDNIGHT + timedelta(minutes=1),
            IMPRESSIONS,
            40,
        ),
        # due: at its next slot, a lifetime below the checkpoint's (a restored table), one from the future, one in
        # the other unit (the budget was edited), none at all
        (CHECKPOINT, 1_040, SLOT + EXACT_READ_EVERY, IMPRESSIONS, None),
        (CHECKPOINT, 999, SLOT + timedelta(minutes=1), IMPRESSIONS, None),
        (CHECKPOINT, 1_040, SLOT - timedelta(minutes=1), IMPRESSIONS, None),
        (CHECKPOINT, 1_040, SLOT + timedelta(minutes=1), BudgetUnit.SPEND, None),
        (None, 1_040, SLOT, IMPRESSIONS, None),
    ],
)
def test_today_comes_from_the_checkpoint_until_an_exact_read_is_due(
    checkpoint: DeliveryCheckpoint | None, lifetime: int, now: datetime, unit: BudgetUnit, expected: int | None
) -> None:
    assert MIDNIGHT + timedelta(minutes=1) < LAST_SLOT + EXACT_READ_EVERY
    assert today_since_checkpoint(state_with(checkpoint), unit, lifetime, now) == expected


def test_exact_reads_fall_due_at_slots_of_each_campaigns_own_phase() -> None:
    # Given a thousand campaigns all read exactly at the same moment (the first step after a deploy)
    read_at = MIDNIGHT + timedelta(hours=3, seconds=17)
    due = [next_exact_read(f"cmp-{n}", read_at) for n in range(1_000)]
    # Then each is due again within EXACT_READ_EVERY, at its own slot, EXACT_READ_EVERY after the one before
    assert all(read_at < moment <= read_at + EXACT_READ_EVERY for moment in due)
    assert all(next_exact_read(f"cmp-{n}", moment) == moment + EXACT_READ_EVERY for n, moment in enumerate(due))
    # and the due times spread over the period: each minute of it takes about a fifteenth of them
    minutes = [int((moment - read_at) // timedelta(minutes=1)) for moment in due]
    assert max(minutes.count(minute) for minute in range(15)) < 1_000 / 15 * 1.5


class OneCampaign:
    """cmp-paced (a daily budget of 1,000 impressions unless given), its delivery table and its pacing states,
    paced by ``run_pacing_step``."""

    def __init__(self, booked: Campaign | None = None, counter: InMemoryDeliveryCounter | None = None) -> None:
        self.booked = budgeted(daily=1_000) if booked is None else booked
        self.counter = InMemoryDeliveryCounter() if counter is None else counter
        self.store = InMemoryPacingStore()

    def counted(self, moment: datetime, impressions: int) -> None:
        """*impressions* counted, in all, in *moment*'s hour."""
        self.counter.hours[("cmp-paced", hour_of(moment))] = DeliveryTotals(impressions=impressions)

    def step(self, now: datetime) -> StepSummary:
        return run_pacing_step([self.booked], self.counter, self.counter, self.store, now)

    @property
    def state(self) -> PacingState:
        return self.store.states["cmp-paced"]


def test_an_estimate_that_would_stop_the_campaign_is_checked_by_an_exact_read_in_the_same_step() -> None:
    # Given an even daily budget of 1,000 impressions, 250 of them delivered by noon, read exactly at a slot
    paced = OneCampaign()
    paced.counted(SLOT, 250)
    paced.step(SLOT)
    # When 260 impressions of yesterday are counted late: with the in-flight allowance (twice what was counted
    # since the last step) the next step's estimate of 510 leaves nothing of the budget
    paced.counted(SLOT - timedelta(days=1), 260)
    summary = paced.step(SLOT + timedelta(minutes=1))
    # Then the step reads today exactly before stopping it: not exhausted (early), no alarm, a fresh checkpoint
    state = paced.state
    assert (summary.exact_reads, state.delivered_today, summary.exhausted) == (1, 250, 0)
    assert state.serve_probability > 0
    assert (summary.exhausted_early, summary.over_delivered) == ([], [])
    assert state.checkpoint == DeliveryCheckpoint(read_at=SLOT + timedelta(minutes=1), today=250, lifetime=510)


def test_a_day_gone_over_its_budget_after_its_last_slot_is_flagged_before_midnight() -> None:
    # Given a daily budget of 1,000, all of it delivered by the campaign's last slot of the day (so stopped)
    paced = OneCampaign()
    paced.counted(LAST_SLOT, 1_000)
    assert paced.step(LAST_SLOT).exhausted == 1
    # When impressions in flight take it to 1,050 before midnight, with no slot of its own left in the day
    paced.counted(LAST_SLOT, 1_050)
    summary = paced.step(MIDNIGHT - timedelta(minutes=2))
    # Then the step's estimate, over the budget, is read exactly and flagged
    assert (summary.exact_reads, summary.over_delivered) == (1, ["cmp-paced"])


def test_a_campaign_stopped_today_stays_stopped_on_estimates_without_an_exact_read_each_step() -> None:
    # Given a campaign whose daily budget an exact read found spent
    paced = OneCampaign()
    paced.counted(SLOT, 1_000)
    assert paced.step(SLOT).exhausted == 1
    # When the next steps run before its next slot (its estimate can only grow)
    summaries = [paced.step(SLOT + timedelta(minutes=minute)) for minute in range(1, 6)]
    # Then it stays stopped, on estimates alone
    assert [(summary.exhausted, summary.exact_reads) for summary in summaries] == [(1, 0)] * 5


def test_a_campaign_stopped_yesterday_is_read_exactly_before_an_estimate_stops_it_today() -> None:
    # Given a campaign that spent yesterday's daily 1,000 by its last slot, and 400 more of yesterday's counted
    # in the day's last minutes (in flight when it stopped)
    paced = OneCampaign()
    paced.counted(LAST_SLOT, 1_000)
    assert paced.step(LAST_SLOT).exhausted == 1
    paced.counted(LAST_SLOT, 1_400)
    # When the new day's first step estimates today as those 400 (and as much again twice in flight)
    summary = paced.step(MIDNIGHT + timedelta(minutes=1))
    # Then it reads today exactly (nothing yet) and lets the campaign run
    assert (summary.exact_reads, summary.exhausted, paced.state.delivered_today) == (1, 0, 0)


def test_a_verdict_that_holds_at_todays_lower_bound_needs_no_exact_read() -> None:
    # Given a daily budget of 1,000 with 1,050 delivered (cut below it), read exactly at a slot: over, flagged
    paced = OneCampaign()
    paced.counted(SLOT, 1_050)
    assert paced.step(SLOT).over_delivered == ["cmp-paced"]
    # When the steps before its next slot run
    later = [paced.step(SLOT + timedelta(minutes=m)) for m in range(1, 6)]
    # Then it is still flagged, without an exact read each step: the checkpoint's today is over already
    assert [(summary.exact_reads, summary.over_delivered) for summary in later] == [(0, ["cmp-paced"])] * 5


def test_a_campaign_stopped_by_its_lifetime_budget_is_not_read_exactly_at_midnight() -> None:
    # Given a campaign whose lifetime budget an exact read at its last slot found spent
    spent = campaign(
        campaign_id="cmp-paced",
        budget={"unit": "impressions", "lifetime": 1_000},
        flight_start="2026-11-01T00:00:00Z",
        flight_end="2026-12-31T00:00:00Z",
    )
    paced = OneCampaign(spent)
    paced.counted(LAST_SLOT, 1_000)
    assert paced.step(LAST_SLOT).exhausted == 1
    # When the new day's first step runs: its estimate stops it, and so does today's lower bound (nothing yet)
    summary = paced.step(MIDNIGHT + timedelta(minutes=1))
    # Then it stays stopped without an exact read (every such campaign would read in that one step)
    assert (summary.exhausted, summary.exact_reads) == (1, 0)


class HoursUnreadable(InMemoryDeliveryCounter):
    """A delivery table whose hour items are throttled once ``down``; the lifetime still reads."""

    down = False

    def hourly(self, campaign_id: str, first_hour: datetime, last_hour: datetime) -> dict[datetime, DeliveryTotals]:
        if self.down:
            raise DeliveryStoreUnavailableError("throttled")
        return super().hourly(campaign_id, first_hour, last_hour)


def test_an_estimate_that_stops_the_campaign_stands_when_its_exact_read_fails() -> None:
    # Given a campaign read exactly at a slot with 250 of its daily 1,000, serving
    counter = HoursUnreadable()
    paced = OneCampaign(counter=counter)
    paced.counted(SLOT, 250)
    paced.step(SLOT)
    assert paced.state.serve_probability > 0
    # When 300 more are counted (550: with twice that in flight, the estimate stops it; at the checkpoint's 250 it
    # would not) and the hours, read to check that, are throttled
    paced.counted(SLOT, 550)
    counter.down = True
    summary = paced.step(SLOT + timedelta(minutes=1))
    # Then the estimate's stop is stored, rather than the step failing and the campaign serving at its last p
    assert (summary.failed, summary.exhausted, summary.exact_reads) == ([], 1, 0)
    assert paced.state.serve_probability == 0.0
