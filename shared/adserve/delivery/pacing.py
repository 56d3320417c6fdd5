"""Budget pacing: per campaign and step, the probability that Decide lets it compete (probabilistic throttling).

As in Agarwal et al., "Budget pacing for targeted online advertisements at LinkedIn" (KDD 2014), Decide keeps
each eligible candidate with probability ``serve_probability`` before scoring. The pacing step (every minute,
PacingFunction) sets that probability from pure functions here, given what the counters say:

- **Target curve.** An ``even`` campaign should have delivered ``goal x share`` by now, where ``goal`` is
  today's amount (the daily budget, or the lifetime amount left spread over the flight's remaining days,
  whichever is tighter) and ``share`` the part of the day's expected requests already past, from a
  ``TrafficProfile`` learned from recent hourly request counts of the campaign's placements. So the target
  follows the traffic's own shape over the day, not a straight line.
- **Controller.** A proportional controller on the ratio of what is still needed to what the campaign
  would get at p = 1 over the rest of the day: ``p = needed / (capacity x remaining share)``. ``capacity`` is
  a ratio estimate (units delivered per unit of traffic share at p = 1, decayed over ~10 steps). Unlike
  LinkedIn's multiplicative update (p x (1 +- a)), it moves p to the needed value in one step instead of a
  few per cent a step; ``make demo-pacing`` measures it (the multiplicative one was not simulated here).
  p rises at most ``MAX_RISE`` times per step, so a noisy estimate cannot burst. Exposure counts only the
  time Decide served a step's p (``state_served_for``), so a pause does not read as a tiny capacity.
- **Stop.** In flight (served, not yet counted) is estimated as the last step's counted delivery times
  ``in_flight_steps``. When delivered + in flight reaches the budget (daily, lifetime or today's even goal),
  p = 0. Before that, p is capped so the next step's expected delivery fits what is left: an ``asap``
  campaign (which wants p = 1, and rises to it at most ``MAX_RISE`` times a step from ``START_PROBABILITY``,
  as an even one does) lands on its budget instead of jumping over it.

Over-delivery is bounded by the error of two estimates over at most one step plus the in-flight window:
the capacity (the cap on p uses it) and the in-flight allowance (README.md#delivery has the figures).
"""

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field

from adserve.campaigns.model import Budget, BudgetUnit, Campaign, Pacing
from adserve.delivery.counting import DeliveryTotals

STEP: Final = timedelta(minutes=1)
"""How often PacingFunction runs (its Schedule in template.yaml)."""

PACING_TOLERANCE: Final = 0.10
"""An even-paced campaign within 10% of its target curve is on track; outside it, behind or ahead."""

MAX_RISE: Final = 2.0
"""p at most doubles per step: a capacity estimate from a few impressions cannot open the tap at once."""

START_PROBABILITY: Final = 0.01
"""An even campaign's first p, before any capacity estimate: from there it doubles until it has one."""

PACING_MAX_AGE: Final = timedelta(minutes=5)
"""How long Decide serves a pacing state (``serve_probability``; DecideSettings' default): past it, p is 0."""

DECAY: Final = 0.9
"""Weight of the past in the capacity estimate per step (a time constant of about 10 steps)."""

PROFILE_DAYS: Final = 7
"""The traffic profile learns from the last week's hourly request counts."""

EXACT_READ_EVERY: Final = timedelta(minutes=15)
"""How often a step reads a campaign's today hour by hour; in between, today is estimated from that exact read
and the lifetime counted since (``today_since_checkpoint``), so most steps cost a campaign one read of its
lifetime's shards, not also a Query per shard (README.md#pacing)."""
_SLOTS_FROM: Final = datetime(2026, 1, 1, tzinfo=UTC)


class PacingStatus(StrEnum):
    ON_TRACK = "on_track"
    BEHIND = "behind"
    AHEAD = "ahead"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True)
class TrafficProfile:
    """The share of a UTC day's requests in each of its 24 hours; uniform when nothing was counted."""

    hourly_shares: tuple[float, ...]

    @classmethod
    def uniform(cls) -> Self:
        return cls(tuple([1 / 24] * 24))

    @classmethod
    def from_counts(cls, counts: Mapping[datetime, int]) -> Self:
        """Requests counted per UTC hour over recent days, summed by hour of day and normalised.

        An hour of day with no count at all (a day missing) gets no special treatment: the shape is learned
        from sums, so a missing day only makes the estimate noisier, never zero where traffic exists.
        """
        by_hour = [0.0] * 24
        for hour, count in counts.items():
            by_hour[hour.astimezone(UTC).hour] += max(count, 0)
        total = sum(by_hour)
        if total <= 0:
            return cls.uniform()
        return cls(tuple(count / total for count in by_hour))

    def elapsed(self, moment: datetime) -> float:
        """Share of the UTC day's traffic before *moment* (linear within an hour), in [0, 1]."""
        moment = moment.astimezone(UTC)
        hour = moment.hour
        within = (moment.minute * 60 + moment.second + moment.microsecond / 1e6) / 3600
        return min(sum(self.hourly_shares[:hour]) + self.hourly_shares[hour] * within, 1.0)


class PacingConfig(BaseModel):
    """The controller's tunables (PacingSettings feeds them from the environment)."""

    model_config = ConfigDict(frozen=True)

    in_flight_steps: float = Field(
        default=2.0, ge=0.0, le=30.0, description="Steps of delivery served but not yet counted (the pipeline lag)."
    )
    min_probability: float = Field(default=1e-4, ge=0.0, le=1.0, description="The smallest p an even campaign gets.")
    state_served_for: timedelta = Field(
        default=PACING_MAX_AGE, description="How long Decide serves a state (its PACING_MAX_AGE_SECONDS)."
    )


DEFAULT_CONFIG: Final = PacingConfig()


class DeliveryCheckpoint(BaseModel):
    """A step's exact read of today's delivery, with the lifetime read just before it, in the budget's units."""

    model_config = ConfigDict(frozen=True)

    read_at: datetime = Field(description="The step's time; both reads began after it, within its UTC day.")
    today: int = Field(description="The delivery of read_at's UTC day, all of its hours.")
    lifetime: int = Field(description="The lifetime delivery, read before today's hours.")


class PacingState(BaseModel):
    """What one pacing step decided for one campaign, as stored in PacingTable and read by Decide and reports.

    Amounts are in the budget's integer units (impressions, or micro-units of the currency).
    """

    model_config = ConfigDict(frozen=True)

    campaign_id: str
    serve_probability: float = Field(ge=0.0, le=1.0)
    status: PacingStatus
    updated_at: datetime
    day: date = Field(description="The UTC day the daily figures are of.")
    goal_today: int = Field(description="What the campaign should deliver today (daily, or its even share).")
    target_now: int = Field(description="Cumulative delivery the target curve asks for today by updated_at.")
    delivered_today: int = Field(
        description="At least what was counted for today: exact at a checkpoint, an estimate from above between them."
    )
    delivered_lifetime: int
    in_flight: int = Field(description="Estimated served but not yet counted.")
    share_now: float = Field(description="The traffic profile's share of today elapsed at updated_at.")
    hourly_shares: list[float] = Field(description="The traffic profile the target follows (24 shares).")
    exposure: float = Field(default=0.0, description="Decayed sum of p x traffic share: the estimate's denominator.")
    exposed_delivery: float = Field(default=0.0, description="Decayed delivery over that exposure: its numerator.")
    unit: BudgetUnit | None = Field(
        default=None, description="The budget's unit the amounts are in; None in states stored before it was."
    )
    spend_micros_per_impression: int | None = Field(
        default=None,
        description="The CPM (in micros an impression) the capacity is at; None in states stored before it was.",
    )
    checkpoint: DeliveryCheckpoint | None = Field(
        default=None,
        description="The last exact read of today, which delivered_today is estimated from until the next one.",
    )

    @property
    def capacity(self) -> float | None:
        """Units per unit of traffic share at p = 1; None until delivery was observed under exposure."""
        if self.exposure <= 0 or self.exposed_delivery <= 0:
            return None
        return self.exposed_delivery / self.exposure


def day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def delivered(totals: DeliveryTotals, unit: BudgetUnit) -> int:
    """Delivery in a budget's integer units: impressions, or micro-units of the currency."""
    return totals.impressions if unit is BudgetUnit.IMPRESSIONS else totals.spend_micros


def next_exact_read(campaign_id: str, read_at: datetime) -> datetime:
    """When a campaign's exact read at *read_at* is due again: its next slot. A campaign's slots are
    ``EXACT_READ_EVERY`` apart at a phase of its own (from its id), so the catalog's exact reads spread evenly over
    the steps; read every ``EXACT_READ_EVERY`` from the last one, they would all fall due in the same step, as all
    were read in the first step after a deploy."""
    period = EXACT_READ_EVERY.total_seconds()
    digest = hashlib.blake2b(campaign_id.encode(), digest_size=4).digest()
    phase = timedelta(seconds=int.from_bytes(digest, "big") % int(period))
    return read_at - (read_at - _SLOTS_FROM - phase) % EXACT_READ_EVERY + EXACT_READ_EVERY


def today_since_checkpoint(previous: PacingState | None, unit: BudgetUnit, lifetime: int, now: datetime) -> int | None:
    """Today's delivery from above, from the last exact read and the *lifetime* (read now) counted since; None
    when an exact read is due: no checkpoint in this unit, its ``next_exact_read`` come, or a lifetime below it.

    Record counts an event into the hour it happened, never before it happens, so everything counted after the
    checkpoint's lifetime read that belongs to today is in the lifetime's growth since, and everything before it
    is in the checkpoint's today (read after it), or is nothing at all when the checkpoint is of an earlier day.
    What the growth holds beyond today (an earlier day's events counted late) only overstates today: the step
    then holds back a little, never overspends, until the next exact read.
    """
    if previous is None or previous.unit is not unit or previous.checkpoint is None:
        return None
    checkpoint = previous.checkpoint
    due = not checkpoint.read_at <= now < next_exact_read(previous.campaign_id, checkpoint.read_at)
    if due or lifetime < checkpoint.lifetime:
        return None
    return least_today(checkpoint, now) + lifetime - checkpoint.lifetime


def least_today(checkpoint: DeliveryCheckpoint, now: datetime) -> int:
    """What today's delivery is at least: the checkpoint's today when it is of today, else nothing counted."""
    return checkpoint.today if day_start(checkpoint.read_at) == day_start(now) else 0


def goal_today(campaign: Campaign, budget: Budget, lifetime_before_today: int, now: datetime) -> int:
    """Today's amount: the daily budget, or (tighter) the lifetime amount left spread evenly over the flight's
    remaining UTC days for an even campaign, or all of it for an asap one."""
    amounts: list[int] = []
    if budget.daily_units is not None:
        amounts.append(budget.daily_units)
    if budget.lifetime_units is not None:
        left = max(budget.lifetime_units - lifetime_before_today, 0)
        if campaign.pacing is Pacing.EVEN:
            last_day = day_start(campaign.flight_end - timedelta(microseconds=1))
            days = (last_day - day_start(now)).days + 1
            left = math.ceil(left / max(days, 1))
        amounts.append(left)
    return min(amounts)


def flight_window_share(campaign: Campaign, profile: TrafficProfile, now: datetime) -> tuple[float, float]:
    """(share elapsed of today's flight window, share of it still to come), by the traffic profile."""
    start, end = day_start(now), day_start(now) + timedelta(days=1)
    first = profile.elapsed(max(start, campaign.flight_start)) if campaign.flight_start > start else 0.0
    last = profile.elapsed(campaign.flight_end) if campaign.flight_end < end else 1.0
    window = max(last - first, 1e-9)
    current = min(max(profile.elapsed(now), first), last)
    return (current - first) / window, (last - current)


def pace(  # noqa: PLR0917 - a step is these things
    campaign: Campaign,
    previous: PacingState | None,
    delivered_today: int,
    delivered_lifetime: int,
    profile: TrafficProfile,
    now: datetime,
    config: PacingConfig = DEFAULT_CONFIG,
    checkpoint: DeliveryCheckpoint | None = None,
) -> PacingState:
    """One pacing step for one campaign with a budget: its new serve probability and status.

    Delivery is in the budget's units (``delivered``); *checkpoint* is stored with the state for the next steps.
    """
    budget = campaign.budget
    if budget is None:
        raise ValueError("only a campaign with a budget is paced")
    now = now.astimezone(UTC)
    price = campaign.spend_micros_per_impression
    if previous is not None and previous.unit not in (None, budget.unit):
        previous = None  # its amounts and capacity are in the other unit: the budget starts afresh
    share_now = profile.elapsed(now)

    # What the last step's p bought: the counted delivery since then against its exposure (p x share).
    exposure = exposed_delivery = 0.0
    counted_since = 0
    share_since = 1.0
    if previous is not None:
        counted_since = max(delivered_lifetime - previous.delivered_lifetime, 0)
        share_since = _share_between(profile, previous, min(now, previous.updated_at + config.state_served_for))
        exposure = previous.exposure * DECAY + previous.serve_probability * share_since
        exposed_delivery = previous.exposed_delivery * DECAY * _repriced(previous, budget.unit, price) + counted_since
    in_flight = round(counted_since * config.in_flight_steps)

    goal = goal_today(campaign, budget, delivered_lifetime - delivered_today, now)
    elapsed_share, remaining_share = flight_window_share(campaign, profile, now)
    target = round(goal * elapsed_share) if campaign.pacing is Pacing.EVEN else goal
    left = goal - delivered_today - in_flight
    if budget.lifetime_units is not None:
        left = min(left, budget.lifetime_units - delivered_lifetime - in_flight)

    state = PacingState(
        campaign_id=campaign.campaign_id,
        serve_probability=0.0,
        status=PacingStatus.EXHAUSTED,
        updated_at=now,
        day=now.date(),
        goal_today=goal,
        target_now=target,
        delivered_today=delivered_today,
        delivered_lifetime=delivered_lifetime,
        in_flight=in_flight,
        share_now=share_now,
        hourly_shares=list(profile.hourly_shares),
        exposure=exposure,
        exposed_delivery=exposed_delivery,
        unit=budget.unit,
        spend_micros_per_impression=price,
        checkpoint=checkpoint,
    )
    if left <= 0:
        return state
    capacity = state.capacity
    # The base of the rise limit. A campaign stopped at the last step (its budget spent, yesterday's or a moment
    # ago) starts again from START_PROBABILITY, as a new one does: its old capacity would otherwise let an asap
    # one jump straight back to p = 1 with a day's worth of counts still to arrive. So does one whose last state
    # Decide stopped serving longer ago than it served it (older than twice ``state_served_for``: steps that
    # skipped it, as one without an exchange rate, or could not read it): its p is no longer what served. A
    # campaign paced in turns, its state a few seconds past the max age at its turn, keeps its p.
    previous_p = None
    if previous is not None:
        served = previous.serve_probability > 0 and now - previous.updated_at <= 2 * config.state_served_for
        previous_p = previous.serve_probability if served else START_PROBABILITY / MAX_RISE
    # p rises only over steps its traffic ran in: a campaign targeting the morning waits out the night at the p it
    # had, not at a p doubled to 1 by steps that could show it nothing, which would open its window at full tap.
    rise = MAX_RISE if share_since > 0 else 1.0
    if capacity is None:
        # Nothing counted yet (the Track -> Record lag): p = 1 could deliver minutes of traffic before the first
        # count, past a small budget, so every campaign, asap too, starts small and doubles until it has one.
        p = START_PROBABILITY if previous_p is None else previous_p * rise
    else:
        p = 1.0 if campaign.pacing is Pacing.ASAP else left / (capacity * max(remaining_share, 1e-9))
        p = max(p, config.min_probability)
        if previous_p is not None:
            p = min(p, previous_p * rise)
        # The next step's expected delivery must fit what is left: how an asap campaign stops exactly. Across
        # midnight the step's traffic is the rest of today and the start of tomorrow (the profile is per day).
        following = profile.elapsed(now + STEP)
        next_share = following - share_now if now.date() == (now + STEP).date() else 1.0 - share_now + following
        p = min(p, left / (capacity * max(next_share, 1e-9)))
    p = min(max(p, 0.0), 1.0)
    return state.model_copy(update={"serve_probability": p, "status": status_of(campaign, target, delivered_today)})


def _repriced(previous: PacingState, unit: BudgetUnit, price: int) -> float:
    """What the previous state's spend capacity is worth at the campaign's CPM now: a CPM raised tenfold makes
    each impression spend ten times the micros (Record counts at the CPM in force), so a capacity learned at the
    old price, kept as it was, read ten times too small and let p overshoot the budget."""
    if unit is BudgetUnit.IMPRESSIONS or previous.spend_micros_per_impression in (None, 0, price):
        return 1.0
    return price / previous.spend_micros_per_impression


def _share_between(profile: TrafficProfile, previous: PacingState, until: datetime) -> float:
    """The traffic share from the previous step to *until* (at most a day later): what its p was served over.

    *until* stops where Decide stopped serving the previous state (``state_served_for``): a step that follows
    a pause, or pacing that did not run for hours, must not count hours in which nothing was served at p,
    which would read as a capacity many times too small and let p burst past the budget.
    """
    until = until.astimezone(UTC)
    if until.date() == previous.day:
        return max(profile.elapsed(until) - previous.share_now, 0.0)
    return max(1.0 - previous.share_now + profile.elapsed(until), 0.0)


def status_of(campaign: Campaign, target: int, delivered_today: int) -> PacingStatus:
    """Behind or ahead of the target curve by more than PACING_TOLERANCE; an asap campaign is on track."""
    if campaign.pacing is Pacing.ASAP:
        return PacingStatus.ON_TRACK
    if delivered_today < target * (1 - PACING_TOLERANCE):
        return PacingStatus.BEHIND
    if delivered_today > target * (1 + PACING_TOLERANCE):
        return PacingStatus.AHEAD
    return PacingStatus.ON_TRACK


def serve_probability(campaign: Campaign, state: PacingState | None, now: datetime, max_age: timedelta) -> float:
    """What Decide uses: 1 without a budget; 0 for a budgeted campaign the pacing step has not judged lately.

    A budgeted campaign without a fresh state is not served (fail closed): a stopped pacing step must not let
    every campaign run unthrottled past its budget. PacingNotRunAlarm pages within 5 minutes. Nor is a spend
    budget whose CPM counts 0 micro-units an impression (stored before writes refused a CPM under 0.001): its
    spend would never reach the budget.
    """
    budget = campaign.budget
    if budget is None:
        return 1.0
    if budget.unit is BudgetUnit.SPEND and campaign.spend_micros_per_impression == 0:
        return 0.0
    if state is None or not is_current(state, now, max_age):
        return 0.0
    return state.serve_probability


def is_current(state: PacingState, now: datetime, max_age: timedelta) -> bool:
    """Whether Decide still serves from *state*: the pacing step wrote it within *max_age* (fail closed after)."""
    return now - state.updated_at <= max_age
