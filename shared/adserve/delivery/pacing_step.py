"""One pacing step over every live budgeted campaign: read delivery and traffic, run the controller, store.

The same function runs in PacingFunction (every minute, against DynamoDB) and in ``make demo-pacing``
(against in-memory stores over a simulated day), so the demo measures the production code path.
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from adserve.campaigns.booking import not_served
from adserve.campaigns.currencies import USD_ONLY, ExchangeRates
from adserve.campaigns.model import Budget, Campaign, Pacing
from adserve.core.errors import DeliveryStoreUnavailableError
from adserve.delivery.counting import DeliveryReader, DeliveryTotals, RequestReader
from adserve.delivery.pacing import (
    DEFAULT_CONFIG,
    PROFILE_DAYS,
    DeliveryCheckpoint,
    PacingConfig,
    PacingState,
    PacingStatus,
    TrafficProfile,
    day_start,
    delivered,
    least_today,
    pace,
    today_since_checkpoint,
)

OVER_DELIVERY_ALARM: Final = 0.01
"""A campaign past its budget by more than 1% counts as over-delivered (PacingOverDelivered)."""


class PacingStateStore(Protocol):
    def put(self, state: PacingState) -> None: ...

    def list_states(self) -> dict[str, PacingState]: ...


@dataclass
class StepSummary:
    """What one step did, for its metrics and its log line."""

    paced: int = 0
    failed: list[str] = field(default_factory=list)
    exhausted: int = 0
    exhausted_early: list[str] = field(default_factory=list)
    """Even campaigns exhausted before half of the day's traffic: a budget far below what traffic gives."""
    over_delivered: list[str] = field(default_factory=list)
    exact_reads: int = 0
    """Campaigns whose today was read hour by hour (``today_since_checkpoint``): the rest cost one read each."""
    deferred: list[str] = field(default_factory=list)
    """Campaigns left for the next step once the step's time ran out: its stalest states come first."""
    profiles_unread: list[str] = field(default_factory=list)
    """Placements whose request counts could not be read: their campaigns kept the profile of their last state."""


def live_budgeted(campaigns: Iterable[Campaign], now: datetime, rates: ExchangeRates) -> list[Campaign]:
    """Campaigns with a budget whose booking is served (``not_served``: active, in flight, a rate): the ones Decide may
    throttle (one it cannot rank it does not serve; paced meanwhile, its p would rise with nothing served and
    burst once a rate arrives)."""
    return [
        campaign for campaign in campaigns if campaign.budget is not None and not_served(campaign, now, rates) is None
    ]


def traffic_profiles(
    requests: RequestReader, placements: Iterable[str], now: datetime
) -> dict[str, dict[tuple[datetime, int | None], int]]:
    """Hourly decision counts of the last PROFILE_DAYS whole UTC days, per placement whose counts could be read
    (one throttled read must not stop pacing every campaign: ``profile_of``)."""
    last = day_start(now) - timedelta(hours=1)
    first = day_start(now) - timedelta(days=PROFILE_DAYS)
    counts: dict[str, dict[tuple[datetime, int | None], int]] = {}
    for placement in sorted(set(placements)):
        with suppress(DeliveryStoreUnavailableError):
            counts[placement] = requests.requests(placement, first, last)
    return counts


def profile_of(
    campaign: Campaign, counts: dict[str, dict[tuple[datetime, int | None], int]], previous: PacingState | None
) -> TrafficProfile:
    """The traffic shape of the campaign's placements together, of the decisions at the listener-local hours it
    targets (all of them without hours targeting): what it can get, hour by UTC hour, so its target curve and
    its p follow when it can serve. Decisions of an unknown local hour (counted before local hours were) count
    for every campaign, as all did then: read as the UTC hour's own, a campaign whose listeners are hours off
    UTC would see no traffic in its real window for a week. The one its last state followed when a placement's
    counts could not be read (uniform without a state), as the shape changes little in a day."""
    if any(placement.value not in counts for placement in campaign.placements):
        return TrafficProfile(tuple(previous.hourly_shares)) if previous is not None else TrafficProfile.uniform()
    hours = frozenset(campaign.targeting.hours)
    merged: dict[datetime, int] = {}
    for placement in campaign.placements:
        for (hour, local), count in counts[placement.value].items():
            if not hours or local is None or local in hours:
                merged[hour] = merged.get(hour, 0) + count
    return TrafficProfile.from_counts(merged)


def over_delivered(budget: Budget, state: PacingState) -> bool:
    return _past(budget.daily_units, state.delivered_today) or _past(budget.lifetime_units, state.delivered_lifetime)


def _past(limit: int | None, done: int) -> bool:
    """Past a budget by more than OVER_DELIVERY_ALARM."""
    return limit is not None and done > limit * (1 + OVER_DELIVERY_ALARM)


def run_pacing_step(
    campaigns: Iterable[Campaign],
    delivery: DeliveryReader,
    requests: RequestReader,
    store: PacingStateStore,
    now: datetime,
    *,
    config: PacingConfig = DEFAULT_CONFIG,
    parallel: Callable[[Callable[[Campaign], PacingState | None], list[Campaign]], Iterator[PacingState | None]] = map,
    time_is_up: Callable[[], bool] = lambda: False,
    clock: Callable[[], datetime] | None = None,
    rates: ExchangeRates = USD_ONLY,
) -> StepSummary:
    """Pace every live budgeted campaign once; a campaign whose reads or write fail keeps its old state,
    which Decide stops trusting after its maximum age (then the campaign is not served: fail closed).

    Campaigns are taken stalest state first (none yet first), and once *time_is_up* the rest are left for the
    next step (``deferred``): a catalog too large for one step is paced in turns, each campaign every few steps,
    rather than a step that times out at the same campaign every minute and never paces those after it.

    *clock* tells when a read has returned (*now* for ever, in a simulation whose reads take no time). *rates*
    are Decide's: a campaign in a currency without one is not paced (``live_budgeted``).
    """
    previous = store.list_states()
    live = sorted(
        live_budgeted(campaigns, now, rates), key=lambda campaign: _paced_at(previous.get(campaign.campaign_id))
    )
    placements = {placement.value for campaign in live for placement in campaign.placements}
    counts = traffic_profiles(requests, placements, now)
    summary = StepSummary(profiles_unread=sorted(placements - counts.keys()))
    exact: list[str] = []

    def step(campaign: Campaign) -> PacingState | None:
        if time_is_up():
            summary.deferred.append(campaign.campaign_id)
            return None
        try:
            state, read_exactly = _paced(
                campaign, previous.get(campaign.campaign_id), delivery, counts, now, config, clock
            )
            store.put(state)
        except DeliveryStoreUnavailableError:
            summary.failed.append(campaign.campaign_id)
            return None
        if read_exactly:
            exact.append(campaign.campaign_id)  # an append, not a += on the summary: steps run in threads
        return state

    for campaign, state in zip(live, parallel(step, live), strict=True):
        if state is None:
            continue
        summary.paced += 1
        if state.status is PacingStatus.EXHAUSTED:
            summary.exhausted += 1
            if campaign.pacing is Pacing.EVEN and state.share_now < 0.5:
                summary.exhausted_early.append(campaign.campaign_id)
        if campaign.budget is not None and over_delivered(campaign.budget, state):
            summary.over_delivered.append(campaign.campaign_id)
    summary.exact_reads = len(exact)
    return summary


def _paced(  # noqa: PLR0917 - a campaign's step is these things
    campaign: Campaign,
    previous: PacingState | None,
    delivery: DeliveryReader,
    counts: dict[str, dict[tuple[datetime, int | None], int]],
    now: datetime,
    config: PacingConfig,
    clock: Callable[[], datetime] | None,
) -> tuple[PacingState, bool]:
    """The campaign's next state, and whether today was read exactly. Raises DeliveryStoreUnavailableError.

    The lifetime is read first; today comes from the last checkpoint, unless one is due or the estimate's verdict
    is one that an earlier day's late counts could have made (``_doubts`` of the estimate, not of today's lower
    bound): then from an exact read of today's hours, read after the lifetime so they hold everything it does of
    today, which becomes the next checkpoint. A checkpoint whose lifetime read returned past midnight is not
    kept: that read may hold the new day's first counts, which the next day's estimate (from nothing) would
    miss. When the hours cannot be read to check an estimate's verdict, the estimate's state is kept: it stops
    the campaign (or flags it over) at worst a little early, where failing the campaign would leave it serving
    at its last p."""
    if campaign.budget is None:
        raise ValueError("only a campaign with a budget is paced")
    unit = campaign.budget.unit
    lifetime = delivered(delivery.lifetime(campaign.campaign_id), unit)
    lifetime_read_by = now if clock is None else clock()
    profile = profile_of(campaign, counts, previous)
    today = today_since_checkpoint(previous, unit, lifetime, now)
    estimated = None
    if previous is not None and previous.checkpoint is not None and today is not None:
        estimated = pace(campaign, previous, today, lifetime, profile, now, config, previous.checkpoint)
        doubts = _doubts(campaign.budget, estimated)
        if not doubts:
            return estimated, False
        least = least_today(previous.checkpoint, now)
        if doubts <= _doubts(campaign.budget, pace(campaign, previous, least, lifetime, profile, now, config)):
            return estimated, False
    day = day_start(now)
    try:
        hours = delivery.hourly(campaign.campaign_id, day, day + timedelta(hours=23))
    except DeliveryStoreUnavailableError:
        if estimated is None:
            raise
        return estimated, False  # the hours unreadable: the estimate's stop stands, never under the truth
    today = delivered(sum(hours.values(), DeliveryTotals()), unit)
    exact = DeliveryCheckpoint(read_at=now, today=today, lifetime=lifetime)
    checkpoint = exact if day_start(lifetime_read_by) == day else None
    return pace(campaign, previous, today, lifetime, profile, now, config, checkpoint), True


def _doubts(budget: Budget, estimated: PacingState) -> set[str]:
    """The verdicts on an estimate of today that need an exact read: ``stopped`` (the campaign is exhausted) and
    ``over`` (past its daily budget: the alarm). The estimate is over by any late counts of other days, so such a
    verdict may be theirs; unless the lower bound of today gives it too (``_paced``): both only grow with today,
    so a verdict at the lower bound holds at the truth. Exact reads then go to the campaigns whose verdict turns on
    today's count, in the step it turns, not to every stopped one in every step."""
    doubts = set()
    if estimated.status is PacingStatus.EXHAUSTED:
        doubts.add("stopped")
    if _past(budget.daily_units, estimated.delivered_today):
        doubts.add("over")
    return doubts


_NEVER: Final = datetime.min.replace(tzinfo=UTC)


def _paced_at(state: PacingState | None) -> datetime:
    return _NEVER if state is None else state.updated_at
