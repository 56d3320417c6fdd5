"""Delivery reports: counters summed into hours or days, budget left and where pacing stands.

The pacing step (a later slice) will own the serve probability; until it runs, ``serve_probability`` is
null rather than a made-up number, and ``pacing_status`` is computed here from the counters and the
budget alone (see ``pacing_status``), so the report and the pacing step judge a campaign the same way.
"""

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, Field

from adserve.campaigns.model import MICROS_PER_UNIT, Budget, BudgetUnit, Campaign, Pacing
from adserve.core.errors import InvalidInputError
from adserve.delivery.counting import HOUR_FORMAT, DeliveryReader, DeliveryTotals, hour_of

PACING_TOLERANCE: Final = 0.10
"""An even-paced campaign within 10% of its target curve is on track; outside it, behind or ahead."""

MAX_REPORT_HOURS: Final = {"hour": 7 * 24, "day": 92 * 24}
"""Bounded ranges: 168 hourly rows, or 92 daily ones (each shard is one Query either way)."""


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"


class PacingStatus(StrEnum):
    ON_TRACK = "on_track"
    BEHIND = "behind"
    AHEAD = "ahead"
    EXHAUSTED = "exhausted"


class DeliveryCounts(BaseModel):
    impressions: int
    clicks: int
    completions: int
    skips: int
    spend: float = Field(description="impressions x value_cpm / 1000, in the campaign's currency.")
    ctr: float | None = Field(description="clicks / impressions; null without impressions.")
    completion_rate: float | None = Field(description="completions / impressions; null without impressions.")

    @classmethod
    def of(cls, totals: DeliveryTotals) -> "DeliveryCounts":
        shown = totals.impressions
        return cls(
            impressions=shown,
            clicks=totals.clicks,
            completions=totals.completions,
            skips=totals.skips,
            spend=totals.spend_micros / MICROS_PER_UNIT,
            ctr=totals.clicks / shown if shown else None,
            completion_rate=totals.completions / shown if shown else None,
        )


class DeliveryRow(DeliveryCounts):
    start: datetime = Field(description="Start of the UTC hour or day.")


class BudgetState(BaseModel):
    unit: BudgetUnit
    lifetime: float | None
    daily: float | None
    delivered_lifetime: float = Field(description="In the budget's unit, since the campaign began.")
    delivered_today: float = Field(description="In the budget's unit, this UTC day.")
    lifetime_left: float | None
    daily_left: float | None


class DeliveryReport(BaseModel):
    campaign_id: str
    currency: str
    granularity: Granularity
    first: datetime
    last: datetime
    rows: list[DeliveryRow] = Field(description="Every hour or day of the range, zeros included.")
    totals: DeliveryCounts = Field(description="Over the range.")
    pacing: Pacing
    budget: BudgetState | None
    pacing_status: PacingStatus | None = Field(description="Null for a campaign without a budget.")
    serve_probability: float | None = Field(
        description="The share of eligible requests the pacing step lets the campaign serve; null until it has run."
    )


def parse_hour(text: str, name: str) -> datetime:
    """A ``YYYY-MM-DDTHH`` query value as a UTC hour; InvalidInputError naming the parameter."""
    try:
        return datetime.strptime(text, HOUR_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInputError(f"{name} must be a UTC hour like 2026-11-25T13") from None


def report_range(first: datetime, last: datetime, granularity: Granularity) -> tuple[datetime, datetime]:
    """The hours a report reads: whole days for daily rows; InvalidInputError when reversed or too long."""
    if last < first:
        raise InvalidInputError("to must not be before from")
    if granularity is Granularity.DAY:
        first, last = first.replace(hour=0), last.replace(hour=23)
    hours = int((last - first) / timedelta(hours=1)) + 1
    limit = MAX_REPORT_HOURS[granularity.value]
    if hours > limit:
        raise InvalidInputError(f"a {granularity.value} report spans at most {limit // 24} days")
    return first, last


def build_report(  # noqa: PLR0917 - a report is these six things
    campaign: Campaign,
    reader: DeliveryReader,
    first: datetime,
    last: datetime,
    granularity: Granularity,
    now: datetime,
) -> DeliveryReport:
    """The campaign's delivery over [first, last] (UTC hours), its budget and pacing as of *now*."""
    first, last = report_range(hour_of(first), hour_of(last), granularity)
    hourly = reader.hourly(campaign.campaign_id, first, last)
    step = timedelta(hours=1 if granularity is Granularity.HOUR else 24)
    rows: list[DeliveryRow] = []
    start = first
    while start <= last:
        totals = sum(
            (value for hour, value in hourly.items() if start <= hour < start + step),
            DeliveryTotals(),
        )
        rows.append(DeliveryRow(start=start, **DeliveryCounts.of(totals).model_dump()))
        start += step
    budget = campaign.budget
    state = status = None
    if budget is not None:
        today_start = hour_of(now).replace(hour=0)
        today = reader.hourly(campaign.campaign_id, today_start, hour_of(now))
        lifetime = reader.lifetime(campaign.campaign_id)
        state = budget_state(budget, lifetime, sum(today.values(), DeliveryTotals()))
        status = pacing_status(campaign, budget, state, now)
    return DeliveryReport(
        campaign_id=campaign.campaign_id,
        currency=campaign.currency,
        granularity=granularity,
        first=first,
        last=last,
        rows=rows,
        totals=DeliveryCounts.of(sum(hourly.values(), DeliveryTotals())),
        pacing=campaign.pacing,
        budget=state,
        pacing_status=status,
        serve_probability=None,
    )


def delivered_units(totals: DeliveryTotals, unit: BudgetUnit) -> int:
    """Delivery in a budget's integer units: impressions, or micro-units of the currency."""
    return totals.impressions if unit is BudgetUnit.IMPRESSIONS else totals.spend_micros


def budget_state(budget: Budget, lifetime: DeliveryTotals, today: DeliveryTotals) -> BudgetState:
    scale = 1 if budget.unit is BudgetUnit.IMPRESSIONS else MICROS_PER_UNIT
    delivered, delivered_today = delivered_units(lifetime, budget.unit), delivered_units(today, budget.unit)
    lifetime_units, daily_units = budget.lifetime_units, budget.daily_units
    return BudgetState(
        unit=budget.unit,
        lifetime=budget.lifetime,
        daily=budget.daily,
        delivered_lifetime=delivered / scale,
        delivered_today=delivered_today / scale,
        lifetime_left=None if lifetime_units is None else max(lifetime_units - delivered, 0) / scale,
        daily_left=None if daily_units is None else max(daily_units - delivered_today, 0) / scale,
    )


def even_target(amount: float, start: datetime, end: datetime, moment: datetime) -> float:
    """Where an even pace should be at *moment*: the amount spread linearly over [start, end]."""
    if moment <= start:
        return 0.0
    if moment >= end:
        return amount
    return amount * ((moment - start) / (end - start))


def pacing_status(campaign: Campaign, budget: Budget, state: BudgetState, now: datetime) -> PacingStatus:
    """Exhausted once either amount is spent; otherwise, for even pacing, delivered vs the linear target.

    The target is the lifetime amount spread over the flight, or, for a daily-only budget, the daily amount
    spread over the UTC day. An asap campaign has no target curve: it is on track until exhausted.
    """
    if (state.lifetime_left is not None and state.lifetime_left <= 0) or (
        state.daily_left is not None and state.daily_left <= 0
    ):
        return PacingStatus.EXHAUSTED
    if campaign.pacing is Pacing.ASAP:
        return PacingStatus.ON_TRACK
    if budget.lifetime is not None:
        target = even_target(budget.lifetime, campaign.flight_start, campaign.flight_end, now)
        delivered = state.delivered_lifetime
    else:
        day = hour_of(now).replace(hour=0)
        target = even_target(budget.daily or 0.0, day, day + timedelta(days=1), now)
        delivered = state.delivered_today
    if delivered < target * (1 - PACING_TOLERANCE):
        return PacingStatus.BEHIND
    if delivered > target * (1 + PACING_TOLERANCE):
        return PacingStatus.AHEAD
    return PacingStatus.ON_TRACK
