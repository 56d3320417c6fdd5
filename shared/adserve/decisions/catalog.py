"""The campaign catalog as Decide sees it: loaded once per execution environment, refreshed on a short TTL.

Each refresh also reads the pacing step's states (one Scan) and attaches each campaign's serve probability
to its candidates, so pacing costs Decide no read per decision. A budgeted campaign without a fresh state is
not served (``adserve.delivery.pacing.serve_probability``). Nor is one whose states were read longer ago than a
pacing step and a refresh TTL (``_blind_for``): the step may have stopped it since, unseen. So when the pacing
table cannot be read, a refresh keeps the states it read before until then, and a snapshot kept by failing
refreshes serves budgeted campaigns no longer either; campaigns without a budget keep serving.

Ad features are encoded when the catalog loads, so the hot path only stacks precomputed rows. A failed
refresh keeps the previous snapshot serving, but only up to a maximum age: past it Decide serves no ad at
all rather than campaigns that may have been paused or changed since (fail closed, like the caps read).

Each ad is ranked at its value in the deployment's ranking currency (``AdCandidate.value``, ``value_cpm x`` the rate
of its campaign's currency, ``adserve.campaigns.currencies``). An active campaign in a currency without a rate
cannot be ranked against the others: a load leaves it out (no placement index holds it, explain names the rule),
logs one line naming such campaigns and counts them (``CampaignsWithoutExchangeRate``).

Each load also makes sure the catalog's snapshot (its ads' features, adserve.outcomes.catalog_snapshots) is in
the logs bucket: put if absent, once per new catalog version per environment. Only once it is known written do
this catalog's decision records name it (``logged_version``) instead of carrying the features inline; a failed
put is retried at the next load and costs no decision.
"""

import bisect
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

from adserve.campaigns.currencies import ExchangeRates
from adserve.campaigns.frequency_caps import AdvertiserCaps
from adserve.campaigns.model import Campaign, CampaignStatus, CapWindow, Creative, FrequencyCap
from adserve.core.collector import collector_paused
from adserve.core.errors import DeliveryStoreUnavailableError, LogStoreUnavailableError
from adserve.core.observability import MetricName, emit, logger, metrics
from adserve.core.refreshing import RefreshingValue, Reloadable
from adserve.core.vocabulary import PLAYS, Placement
from adserve.decisions.targeting import AdCandidate, TargetingIndex
from adserve.delivery.pacing import STEP, PacingState, serve_probability
from adserve.models.features import FeatureEncoder
from adserve.outcomes.catalog_snapshots import snapshot_file


class CampaignSource(Protocol):
    def list_campaigns(self) -> list[Campaign]:
        """Every campaign; one unchanged since the last call may be the very object returned then (a refresh
        reuses what it built for it)."""
        ...


class PacingSource(Protocol):
    def list_states(self) -> dict[str, PacingState]:
        """Every paced campaign's last state; raises DeliveryStoreUnavailableError."""
        ...


class SnapshotArchive(Protocol):
    def put_if_absent(self, key: str, body: bytes) -> None:
        """Create the object unless it exists (then leave it); raises LogStoreUnavailableError."""
        ...


def ad_features(campaign: Campaign, ad_id: str, ad_format: str) -> dict[str, str]:
    """The ad's side of the feature encoder's input."""
    return {
        "advertiser_id": campaign.advertiser_id,
        "campaign_id": campaign.campaign_id,
        "ad_id": ad_id,
        "category": campaign.category,
        "format": ad_format,
    }


@dataclass(frozen=True)
class CampaignAds:
    """One active campaign's ads as a load built them: the next load reuses them, only repaced, while the campaign
    is the same object (its document unchanged, ``CampaignSource.list_campaigns``) and its advertiser's caps in
    force are the same (``AdvertiserCaps.windows``), so its caps are too."""

    campaign: Campaign
    advertiser_windows: Mapping[CapWindow, int]
    ads: tuple[AdCandidate, ...]


@dataclass(frozen=True)
class CatalogSnapshot:
    by_placement: dict[Placement, TargetingIndex]
    campaigns: tuple[Campaign, ...] = ()
    """Every campaign listed, any status (explain names the ones no placement index holds)."""
    logged_version: str | None = None
    """The catalog snapshot its decision records name; None (records inline) until the snapshot is written."""
    paced_until: tuple[tuple[float, str], ...] = ()
    """(seconds after the load, campaign id) per served budgeted campaign, soonest first: when the pacing state
    its p came from passes the pacing max age, or its read is a step and a refresh old. Refreshes every 30 s
    replace the snapshot long before; in one kept by failing refreshes, or of a campaign the pacing step no
    longer updates, such a campaign sits out from then on (``serving``), as a load would have left it out."""
    built: dict[str, CampaignAds] = field(default_factory=dict, compare=False, repr=False)
    """Each active campaign's ads by campaign id, for the next load to reuse."""
    pacing_states: Mapping[str, PacingState] = field(default_factory=dict, compare=False, repr=False)
    """The pacing states the load read, for a next load that cannot read the pacing table."""
    pacing_read_at: datetime | None = None
    """When those states were read (a load that kept them keeps the time); None when none were."""
    _serving: dict[int, dict[Placement, TargetingIndex]] = field(default_factory=dict, compare=False, repr=False)

    def serving(self, age: float) -> dict[Placement, TargetingIndex]:
        """``by_placement`` at ``age`` seconds after the load: without the budgeted campaigns whose state is
        too old by then, the indexes built once per number of them."""
        until = self.paced_until
        if not until or age <= until[0][0]:
            return self.by_placement
        passed = bisect.bisect_left(until, (age,))
        indexes = self._serving.get(passed)
        if indexes is None:
            stale = {campaign_id for _, campaign_id in until[:passed]}
            logger.warning("budgeted campaigns' pacing states too old; they sit out", extra={"campaigns": len(stale)})
            indexes = self._serving[passed] = {
                placement: TargetingIndex(placement, [ad for ad in index.ads if ad.campaign.campaign_id not in stale])
                for placement, index in self.by_placement.items()
            }
        return indexes


class CampaignCatalog:
    def __init__(
        self,
        source: CampaignSource,
        encoder: FeatureEncoder,
        ttl_seconds: float,
        *,
        max_age_seconds: float,
        pacing: PacingSource,
        pacing_max_age: timedelta,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        archive: SnapshotArchive | None = None,
        exchange_rates: ExchangeRates | None = None,
    ) -> None:
        self._source = source
        self.exchange_rates = exchange_rates or ExchangeRates()
        """Into the ranking currency, for every load: fixed for the catalog's lifetime (settings read at start)."""
        self._encoder = encoder
        self._max_age = max_age_seconds
        self._pacing = pacing
        self._pacing_max_age = pacing_max_age
        self._blind_for = STEP + timedelta(seconds=ttl_seconds)
        """How long after the pacing states were read they serve: a step and a refresh, the lag of a read on time."""
        self._clock = clock
        self._archive = archive
        self._archived: set[str] = set()
        self._snapshot = RefreshingValue(self._load, ttl_seconds, name="campaign catalog", monotonic=monotonic)

    def ads_for(self, placement: Placement) -> TargetingIndex:
        """Active ads that run in this placement; none when every refresh failed for longer than the max age."""
        return self.view(placement)[0]

    def view(self, placement: Placement) -> tuple[TargetingIndex, tuple[Campaign, ...]]:
        """The placement's index and every campaign of the same snapshot, read once (explain needs both, and a
        refresh between two reads would pair one load's index with another's campaigns); none of either past
        the maximum age."""
        snapshot = self._snapshot.get()
        age = self._snapshot.age_seconds()
        # Of unknown age (a restore whose reload failed: infinite) it reads as just past the max age: EMF is JSON,
        # which has no Infinity, and one such value lost every metric of the invocation's line, CatalogStale too
        emit(MetricName.CATALOG_AGE_SECONDS, MetricUnit.Seconds, age if math.isfinite(age) else self._max_age + 1)
        if age > self._max_age:
            emit(MetricName.CATALOG_STALE, MetricUnit.Count, 1)
            return TargetingIndex(placement, []), ()
        by_placement = snapshot.serving(age)
        index = by_placement[placement] if placement in by_placement else TargetingIndex(placement, [])
        return index, snapshot.campaigns

    def logged_version(self) -> str | None:
        """The catalog version the records of the snapshot ``ads_for`` last returned name (never reloads)."""
        return self._snapshot.peek().logged_version

    def warm(self) -> None:
        """Load the snapshot now if due (e.g. while the first request's other reads run), emitting nothing."""
        self._snapshot.get()

    def reloadable(self) -> Reloadable:
        """The snapshot as a decision reloads it first when due (``reloaded_first``)."""
        return Reloadable(self._snapshot, self.warm)

    def expire(self) -> None:
        """After a SnapStart restore: the next request reloads, and a failed reload serves no ad."""
        self._snapshot.expire()

    def _load(self) -> CatalogSnapshot:
        # A load allocates some ten objects per ad and keeps them all for the whole TTL: the cyclic collector
        # would rescan the growing snapshot again and again for nothing (bench figure 10: about half of a
        # 10,000-campaign load), and full collections during decisions would rescan it again (p99 at 1000
        # candidates was dominated by ~30 ms collections) unless it is frozen out of their reach.
        with collector_paused():
            campaigns = self._source.list_campaigns()
            previous = self._snapshot.peek() if self._snapshot.loaded else None
            states: Mapping[str, PacingState]
            read_at: datetime | None
            try:
                states, read_at = self._pacing.list_states(), self._clock()
            except DeliveryStoreUnavailableError:
                # The states read before, while their read is recent enough (``_build``): one throttled Scan need
                # not take every budgeted campaign out.
                logger.exception("pacing states unreadable; budgeted campaigns keep the states loaded before")
                metrics.add_metric(MetricName.PACING_STATE_UNREADABLE, MetricUnit.Count, 1)
                states, read_at = (
                    (previous.pacing_states, previous.pacing_read_at) if previous is not None else ({}, None)
                )
            logger.info("campaign catalog loaded", extra={"campaigns": len(campaigns), "paced": len(states)})
            built_at = self._clock()
            snapshot = self._build(campaigns, states, read_at, previous, built_at)
            version = self._archived_version(snapshot, previous)
            # The snapshot's age counts from the load's end: its deadlines, from the build's start, are moved up
            # by the time between (the build, the archive's put), or they would outlive their bound by it
            late = (self._clock() - built_at).total_seconds()
            paced_until = tuple((seconds - late, campaign_id) for seconds, campaign_id in snapshot.paced_until)
        return replace(snapshot, logged_version=version, paced_until=paced_until)

    def _archived_version(self, snapshot: CatalogSnapshot, previous: CatalogSnapshot | None) -> str | None:
        """The snapshot's catalog version once its ads are in the logs bucket (put unless this environment
        already did); None without an archive, or when the put failed (the next load tries again).

        The previous snapshot's version when the ads log the very fields it logged (a refresh that changed no
        campaign): the version is their content hash, and building the file to learn it costs a gzip of them all.
        """
        if self._archive is None:
            return None
        if previous is not None and previous.logged_version is not None and _logged_alike(snapshot, previous):
            return previous.logged_version
        ads = (
            (ad.ad_id, {name: value for name, value in ad.logged.items() if name != "ad_id"})
            for index in snapshot.by_placement.values()
            for ad in index.ads
        )
        file = snapshot_file(ads)
        if file is None:
            logger.warning("an ad id has two sets of features; decision records stay inline")
            return None
        if file.version not in self._archived:
            try:
                self._archive.put_if_absent(file.key, file.body)
            except LogStoreUnavailableError:
                logger.exception("catalog snapshot not written; decision records stay inline until it is")
                metrics.add_metric(MetricName.CATALOG_SNAPSHOT_FAILURES, MetricUnit.Count, 1)
                return None
            self._archived.add(file.version)
        return file.version

    def _build(
        self,
        campaigns: list[Campaign],
        states: Mapping[str, PacingState],
        read_at: datetime | None,
        previous: CatalogSnapshot | None,
        now: datetime,
    ) -> CatalogSnapshot:
        """The snapshot of *campaigns* paced by *states* (read at *read_at*), reusing what *previous* built for the
        campaigns and placements that have not changed since (``CampaignAds``, ``TargetingIndex.refreshed``).

        A budgeted campaign serves until its state is the pacing max age old or its read ``_blind_for`` old,
        whichever comes first."""
        by_placement: dict[Placement, list[AdCandidate]] = {}
        advertiser_caps = AdvertiserCaps(campaigns)
        paced_until: list[tuple[float, str]] = []
        built: dict[str, CampaignAds] = {}
        reusable = previous.built if previous is not None else {}
        unranked: list[Campaign] = []
        for campaign in sorted(campaigns, key=lambda c: c.campaign_id):
            if campaign.status is not CampaignStatus.ACTIVE:
                continue
            rate = self.exchange_rates.rate(campaign.currency)
            if rate is None:
                unranked.append(campaign)
                continue
            windows = advertiser_caps.windows(campaign.advertiser_id)
            probability, until = self._paced(campaign, states.get(campaign.campaign_id), read_at, now)
            if until is not None:
                paced_until.append((until, campaign.campaign_id))
            kept = reusable.get(campaign.campaign_id)
            if kept is not None and kept.campaign is campaign and kept.advertiser_windows == windows:
                ads = tuple(ad.paced(probability) for ad in kept.ads)
            else:
                caps = advertiser_caps.caps_of(campaign)
                ads = tuple(
                    self._candidate(campaign, creative, caps, probability, rate) for creative in campaign.creatives
                )
            built[campaign.campaign_id] = CampaignAds(campaign, windows, ads)
            for ad in ads:
                for placement in campaign.placements:
                    if ad.creative.format in PLAYS[placement]:
                        by_placement.setdefault(placement, []).append(ad)
        self._left_out(unranked, now)
        indexes = previous.by_placement if previous is not None else {}
        return CatalogSnapshot(
            {
                placement: indexes[placement].refreshed(ads) if placement in indexes else TargetingIndex(placement, ads)
                for placement, ads in by_placement.items()
            },
            tuple(sorted(campaigns, key=lambda c: c.campaign_id)),
            paced_until=tuple(sorted(paced_until)),
            built=built,
            pacing_states=states,
            pacing_read_at=read_at,
        )

    def _paced(
        self, campaign: Campaign, state: PacingState | None, read_at: datetime | None, now: datetime
    ) -> tuple[float, float | None]:
        """The campaign's serve probability and, for a served budgeted one, the seconds from *now* it serves for:
        until its state is the pacing max age old or its read (at *read_at*) ``_blind_for`` old."""
        probability = serve_probability(campaign, state, now, self._pacing_max_age)
        if campaign.budget is None or probability == 0 or state is None or read_at is None:
            return probability, None
        until = min(state.updated_at + self._pacing_max_age, read_at + self._blind_for)
        return (probability, (until - now).total_seconds()) if until > now else (0.0, None)

    def _left_out(self, unranked: list[Campaign], now: datetime) -> None:
        """One line and one count per load for the active campaigns no rate converts (none served) whose flight has
        not ended: one that has would not serve anyway, and gives the operator nothing to act on."""
        unranked = [campaign for campaign in unranked if now < campaign.flight_end]
        if not unranked:
            return
        logger.warning(
            "campaigns in a currency without an exchange rate are not served",
            extra={
                "campaigns": len(unranked),
                "currencies": sorted({campaign.currency for campaign in unranked}),
                "ranking_currency": self.exchange_rates.currency,
                "campaign_ids": [campaign.campaign_id for campaign in unranked[:LOGGED_IDS]],
            },
        )
        metrics.add_metric(MetricName.CAMPAIGNS_WITHOUT_EXCHANGE_RATE, MetricUnit.Count, len(unranked))

    def _candidate(
        self, campaign: Campaign, creative: Creative, caps: tuple[FrequencyCap, ...], probability: float, rate: float
    ) -> AdCandidate:
        features = ad_features(campaign, creative.ad_id, creative.format.value)
        return AdCandidate(campaign, creative, features, self._encoder.encode_ad(features), caps, probability, rate)


LOGGED_IDS = 20
"""Campaign ids the line about campaigns without a rate names, at most (the count says how many there are)."""


def _logged_alike(snapshot: CatalogSnapshot, previous: CatalogSnapshot) -> bool:
    """Whether the ads of *snapshot* log the fields those of *previous* did, in order: the same objects for ads
    reused, equal ones for an edit that changed no logged field (a price, targeting, a flight)."""
    logged = [ad.logged for index in snapshot.by_placement.values() for ad in index.ads]
    before = [ad.logged for index in previous.by_placement.values() for ad in index.ads]
    return len(logged) == len(before) and all(new is old or new == old for new, old in zip(logged, before, strict=True))
