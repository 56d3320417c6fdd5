"""Delivery reports: counters summed into hours or days, budget left and where pacing stands.

A report outlives its campaign: deleting a campaign keeps its last document beside its delivery
(``delete_keeping_report``), so what was delivered, and billed, stays readable after the campaign is gone.

``serve_probability`` and ``pacing_status`` are the pacing step's (``adserve.delivery.pacing``), read from its
last state: the report judges a campaign exactly as the step that throttles it. Both are null until the step
has judged the campaign (or for a campaign without a budget, which is never throttled). A state older than
Decide's ``PACING_MAX_AGE_SECONDS`` is not served from (``pacing.serve_probability``): the report then says 0 and
no verdict, not the last one the step gave before it stopped.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Protocol

from pydantic import BaseModel, Field

from adserve.campaigns.booking import NotServed, not_served
from adserve.campaigns.currencies import ExchangeRates
from adserve.campaigns.model import MICROS_PER_UNIT, Budget, BudgetUnit, Campaign, Pacing
from adserve.core.errors import InvalidInputError, NotFoundError
from adserve.delivery.counting import HOUR_FORMAT, DeliveryReader, DeliveryTotals, hour_of
from adserve.delivery.pacing import PacingState, PacingStatus, delivered, is_current, serve_probability

MAX_REPORT_HOURS: Final = {"hour": 7 * 24, "day": 92 * 24}
"""Bounded ranges: 168 hourly rows, or 92 daily ones (each shard is one Query either way)."""


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"


class DeliveryCounts(BaseModel):
    impressions: int
    clicks: int
    completions: int
    skips: int
    spend: float = Field(description="impressions x value_cpm / 1000, in the campaign's currency.")
    ctr: float | None = Field(
        description="clicks / impressions, each beacon counted on its own (over 1 where impression beacons were "
        "lost); null without impressions."
    )
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
    pacing_status: PacingStatus | None = Field(
        description="The pacing step's verdict against its target curve; null until it has judged the campaign, "
        "while its last verdict is older than PACING_MAX_AGE_SECONDS, and while not_served is set."
    )
    serve_probability: float | None = Field(
        description="The share of eligible requests Decide lets the campaign serve, as the pacing step set it; 0 "
        "once the step's last state is older than PACING_MAX_AGE_SECONDS (Decide fails closed), and while "
        "not_served says why none is served; otherwise null until the step has run, and for a campaign without a "
        "budget (never throttled)."
    )
    not_served: NotServed | None = Field(
        default=None,
        description="Why Decide serves none of the campaign's ads now, whoever listens: its status, its flight, or "
        "its currency without an exchange rate into the deployment's ranking currency (the first that applies); "
        "null when its booking lets them be served, and for a deleted campaign.",
    )
    pacing_state: PacingState | None = Field(
        default=None, description="The pacing step's last state (amounts in the budget's integer units)."
    )
    deleted_at: datetime | None = Field(
        default=None,
        description="When the campaign was deleted (null while it exists): its report stays, with what was "
        "delivered until then, and no pacing.",
    )


REPORT_YEARS: Final = range(1970, 9999)
"""Hours a report may name: a report's default span before ``to``, or its rows after ``from``, stay within
datetime's years 1-9999 (year 1 or 9999 overflowed into a 500)."""


def parse_hour(text: str, name: str) -> datetime:
    """A ``YYYY-MM-DDTHH`` query value as a UTC hour, in the digits 0-9 (``strptime`` takes any script's);
    InvalidInputError naming the parameter."""
    try:
        hour = datetime.strptime(text, HOUR_FORMAT).replace(tzinfo=UTC) if text.isascii() else None
    except ValueError:
        hour = None
    if hour is None or hour.year not in REPORT_YEARS:
        raise InvalidInputError(
            f"{name} must be a UTC hour like 2026-11-25T13, in years {REPORT_YEARS.start}-{REPORT_YEARS.stop - 1}",
            field=f"query.{name}",
        )
    return hour


DEFAULT_SPAN: Final = {Granularity.HOUR: timedelta(hours=23), Granularity.DAY: timedelta(days=29)}
"""A report's span before its end when ``from`` is not given: a day of hourly rows, or 30 daily ones."""


def requested_range(
    first: datetime | None, last: datetime | None, granularity: Granularity, now: datetime
) -> tuple[datetime, datetime]:
    """The hours a report asked for reads: up to *now* unless ``to`` was given, ``DEFAULT_SPAN`` before its end
    unless ``from`` was. A range reversed or too long names ``to`` if it was given, else ``from`` (then ``from``
    alone made it so: a future hour, or one too long ago)."""
    end = hour_of(last or now)  # whole hours, as the report reads them: its length is checked on those
    start = hour_of(first or end - DEFAULT_SPAN[granularity])
    if last is None and start > end:
        raise InvalidInputError("from must not be after the current hour", field="query.from")
    return report_range(start, end, granularity, field="query.to" if last else "query.from")


def report_range(
    first: datetime, last: datetime, granularity: Granularity, *, field: str = "query.to"
) -> tuple[datetime, datetime]:
    """The hours a report reads: whole days for daily rows; InvalidInputError naming *field* when reversed or too
    long."""
    if last < first:
        raise InvalidInputError("to must not be before from", field=field)
    if granularity is Granularity.DAY:
        first, last = first.replace(hour=0), last.replace(hour=23)
    hours = int((last - first) / timedelta(hours=1)) + 1
    limit = MAX_REPORT_HOURS[granularity.value]
    if hours > limit:
        raise InvalidInputError(f"a report by {granularity.value} spans at most {limit // 24} days", field=field)
    return first, last


@dataclass(frozen=True)
class DeletedCampaign:
    """A campaign's last document, kept beside its delivery when it was deleted."""

    campaign: Campaign
    deleted_at: datetime


class DeletedCampaigns(Protocol):
    """Where deleted campaigns' documents are kept. Its writes and checks go into the campaign store's own
    transactions, so what is kept is what was deleted, and a create holds to what was kept when it lands."""

    def keeping(self, deleted: DeletedCampaign) -> Any:
        """The write that keeps (or replaces) the campaign's last document, for the delete's transaction."""
        ...

    def keeps_currency_of(self, campaign: Campaign) -> Any:
        """The check, for a create's transaction, that no campaign deleted under its id was in another currency;
        failing, the create is refused (InvalidInputError, ``deleted_in_another_currency``)."""
        ...

    def deleted_campaign(self, campaign_id: str) -> DeletedCampaign | None:
        """The document kept when the campaign was last deleted; None if it never was."""
        ...


class CampaignWriter(Protocol):
    def put(self, campaign: Campaign, *, ad_owners: Any = None, created_only_if: Any = None) -> None: ...

    def delete(self, campaign_id: str, *, keep: Callable[[Campaign], Any] | None = None) -> None: ...


class CampaignReader(Protocol):
    def get(self, campaign_id: str) -> Campaign: ...


class PacingStateReader(Protocol):
    def get(self, campaign_id: str) -> PacingState | None: ...


class ArchivingDeliveryReader(DeliveryReader, DeletedCampaigns, Protocol):
    """The delivery table: counters and the documents of deleted campaigns."""


def delete_keeping_report(
    campaigns: CampaignWriter, archive: DeletedCampaigns, campaign_id: str, now: datetime
) -> None:
    """Delete the campaign, its document kept beside its delivery (NotFoundError when there is none).

    Its counters stay where they were, but without the campaign they could not be read: the currency of the
    spend, the budget they count against. Kept in the delete's own transaction, so a failed delete keeps nothing
    and two racing deletes leave the document of the one that deleted it.
    """
    campaigns.delete(campaign_id, keep=lambda campaign: archive.keeping(DeletedCampaign(campaign, now)))


def put_keeping_currency(
    campaigns: CampaignWriter, archive: DeletedCampaigns, campaign: Campaign, *, ad_owners: Any = None
) -> None:
    """Create or replace the campaign; created under a deleted campaign's id, only in that one's currency.

    The deleted campaign's counters stay (its report reads them), and a campaign created again under its id
    counts on them: spend in one currency would be read as the other, in its report and against its budget. The
    store refuses a currency change of a stored campaign; this is the same rule across a delete, checked in the
    create's transaction, so a delete landing between this PUT's reads and its write is held to as well.
    """
    campaigns.put(campaign, ad_owners=ad_owners, created_only_if=archive.keeps_currency_of(campaign))


def deleted_in_another_currency(campaign: Campaign, deleted_currency: str | None) -> InvalidInputError:
    """The refusal of a create under the id of a campaign deleted in another currency (None: unknown which)."""
    counted = f"in {deleted_currency}" if deleted_currency else "in another currency"
    again = f"create it again in {deleted_currency}" if deleted_currency else "create it again in that currency"
    return InvalidInputError(
        f"campaign {campaign.campaign_id} was deleted with its delivery counted {counted}; {again}, or under"
        " another id",
        field="currency",
    )


def campaign_report(  # noqa: PLR0917 - the stores, the campaign and the range
    campaigns: CampaignReader,
    delivery: ArchivingDeliveryReader,
    pacing_states: PacingStateReader,
    campaign_id: str,
    first: datetime,
    last: datetime,
    granularity: Granularity,
    now: datetime,
    *,
    pacing_max_age: timedelta,
    rates: ExchangeRates | None,
) -> DeliveryReport:
    """``build_report`` of the campaign, or of its kept document once it is deleted (no pacing: it is not paced
    any more); NotFoundError if it neither exists nor was deleted. ``pacing_max_age``: Decide's
    ``PACING_MAX_AGE_SECONDS``; *rates*: the deployment's exchange rates (None: the currency is not judged)."""
    try:
        campaign, deleted_at = campaigns.get(campaign_id), None
    except NotFoundError:
        deleted = delivery.deleted_campaign(campaign_id)
        if deleted is None:
            raise
        campaign, deleted_at = deleted.campaign, deleted.deleted_at
    state = None if deleted_at is not None else pacing_states.get(campaign_id)
    report = build_report(
        campaign, delivery, first, last, granularity, now, state, pacing_max_age=pacing_max_age, rates=rates
    )
    if deleted_at is None:
        return report
    # deleted_at says why nothing is served: its booking is not judged (nor paced)
    return report.model_copy(update={"deleted_at": deleted_at, "not_served": None, "serve_probability": None})


def build_report(  # noqa: PLR0917 - a report is these seven things
    campaign: Campaign,
    reader: DeliveryReader,
    first: datetime,
    last: datetime,
    granularity: Granularity,
    now: datetime,
    pacing_state: PacingState | None,
    *,
    pacing_max_age: timedelta,
    rates: ExchangeRates | None,
) -> DeliveryReport:
    """The campaign's delivery over [first, last] (UTC hours), its budget as of *now*, the pacing step's state and
    what Decide serves from it: nothing once it is older than ``pacing_max_age``, or while the campaign's booking is
    not served (``not_served``: the step no longer paces it, so its last state would say otherwise until it ages)."""
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
    state = None
    if budget is not None:
        today_start = hour_of(now).replace(hour=0)
        today = reader.hourly(campaign.campaign_id, today_start, hour_of(now))
        lifetime = reader.lifetime(campaign.campaign_id)
        state = budget_state(budget, lifetime, sum(today.values(), DeliveryTotals()))
    else:
        pacing_state = None
    # The status is the state's while Decide serves by it: a stale state's, or one a CPM counting no micros
    # overrides (p 0, ``serve_probability``), would contradict the p shown
    off = not_served(campaign, now, rates)
    served = (
        0.0
        if off is not None
        else None
        if pacing_state is None
        else serve_probability(campaign, pacing_state, now, pacing_max_age)
    )
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
        pacing_status=pacing_state.status
        if pacing_state is not None
        and is_current(pacing_state, now, pacing_max_age)
        and served == pacing_state.serve_probability
        and off is None
        else None,
        serve_probability=served,
        not_served=off,
        pacing_state=pacing_state,
    )


def budget_state(budget: Budget, lifetime: DeliveryTotals, today: DeliveryTotals) -> BudgetState:
    scale = 1 if budget.unit is BudgetUnit.IMPRESSIONS else MICROS_PER_UNIT
    done, done_today = delivered(lifetime, budget.unit), delivered(today, budget.unit)
    lifetime_units, daily_units = budget.lifetime_units, budget.daily_units
    return BudgetState(
        unit=budget.unit,
        lifetime=budget.lifetime,
        daily=budget.daily,
        delivered_lifetime=done / scale,
        delivered_today=done_today / scale,
        lifetime_left=None if lifetime_units is None else max(lifetime_units - done, 0) / scale,
        daily_left=None if daily_units is None else max(daily_units - done_today, 0) / scale,
    )
