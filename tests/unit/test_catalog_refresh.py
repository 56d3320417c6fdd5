"""A catalog refresh reuses what the previous load built for unchanged campaigns, and serves exactly what a load
from scratch of the same campaigns and pacing states would."""

import random
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from adserve.campaigns.model import Campaign, CampaignStatus, CapScope, CapWindow, FrequencyCap
from adserve.core.vocabulary import Placement
from adserve.decisions.api import DecisionRequest
from adserve.decisions.catalog import CampaignCatalog
from adserve.decisions.targeting import PRIORS_KEPT, AdCandidate, TargetingIndex
from adserve.models.ctr_model import CtrModel
from adserve.models.features import FeatureEncoder

from devstack.fakes import InMemoryCampaigns, InMemoryLogStore, InMemoryPacingStore
from tests.support.builders import NOW, decision_request, pacing_state
from tests.support.published_models import BOOTSTRAP
from tests.support.random_catalogs import VALUES, random_campaign, random_request

TTL = 30.0
ENCODER = FeatureEncoder()
MODEL = CtrModel.load(BOOTSTRAP, ENCODER.spec)
PROBABILITIES = (0.0, 0.25, 0.5, 1.0)


class Clock:
    now = 1_000.0

    def __call__(self) -> float:
        return self.now


def catalog_of(source: InMemoryCampaigns, pacing: InMemoryPacingStore, clock: Clock | None = None) -> CampaignCatalog:
    return CampaignCatalog(
        source,
        ENCODER,
        TTL,
        max_age_seconds=10 * TTL,
        pacing=pacing,
        pacing_max_age=timedelta(minutes=5),
        monotonic=clock or Clock(),
        clock=lambda: NOW,
        archive=InMemoryLogStore(),
    )


def budgeted(campaign: Campaign, rng: random.Random) -> Campaign:
    """Half the campaigns paced, a few with an advertiser cap their siblings share."""
    changes: dict[str, Any] = {}
    if rng.random() < 0.5:
        changes["budget"] = {"unit": "impressions", "daily": 1_000}
    if rng.random() < 0.05:
        changes["frequency_caps"] = [{"max": rng.randint(2, 6), "window": "day", "scope": "advertiser"}]
    updated = campaign.model_dump(mode="json") | changes | {"advertiser_id": f"adv-{rng.randrange(40)}"}
    return Campaign.model_validate(updated)


def repace(campaigns: dict[str, Campaign], pacing: InMemoryPacingStore, rng: random.Random, share: float) -> None:
    for campaign in campaigns.values():
        if campaign.budget is not None and rng.random() < share:
            pacing.put(pacing_state(campaign, rng.choice(PROBABILITIES), NOW - timedelta(seconds=rng.randint(0, 60))))


def change(campaigns: dict[str, Campaign], rng: random.Random, next_index: list[int]) -> None:
    """A round of an advertiser's day: some campaigns edited, paused, deleted or added, one copied unchanged."""
    ids = sorted(campaigns)
    for campaign_id in rng.sample(ids, 3):
        index = int(campaign_id[1:])
        campaigns[campaign_id] = budgeted(random_campaign(index, rng), rng)
    paused = rng.choice(ids)
    campaigns[paused] = campaigns[paused].model_copy(update={"status": CampaignStatus.PAUSED})
    del campaigns[rng.choice(ids)]
    added = budgeted(random_campaign(next_index[0], rng), rng)
    campaigns[added.campaign_id] = added
    next_index[0] += 1
    copied = rng.choice(sorted(campaigns))
    campaigns[copied] = campaigns[copied].model_copy()  # equal, but another object: built again
    for retargeted_id in rng.sample(sorted(campaigns), 3):  # the very creatives, other targeting and value
        retargeted = campaigns[retargeted_id]
        targeting = retargeted.targeting.model_copy(update={"countries": [rng.choice(["SE", "US"])]})
        campaigns[retargeted_id] = retargeted.model_copy(
            update={"targeting": targeting, "value_cpm": retargeted.value_cpm + 1.0}
        )


def edit_in_place(campaigns: dict[str, Campaign], rng: random.Random) -> None:
    """Edits that keep each ad where it is in its placements (the same creatives, placements and status): the
    refreshed index patches them instead of building again."""
    for campaign_id in rng.sample(sorted(campaigns), 4):
        edited = campaigns[campaign_id]
        targeting = {name: rng.sample(values, rng.randint(0, 2)) for name, values in VALUES.items()}
        targeting["genres"] = [*targeting["genres"], "ambient"]  # a value no other campaign lists
        flight_start = NOW - timedelta(days=rng.randint(-2, 5))
        campaigns[campaign_id] = edited.model_copy(
            update={
                "targeting": edited.targeting.model_validate(targeting),
                "value_cpm": round(rng.uniform(1, 40), 2),
                "advertiser_id": f"adv-{rng.randrange(60)}",
                "flight_start": flight_start,
                "flight_end": flight_start + timedelta(days=rng.randint(1, 10)),
            }
        )
    capper = rng.choice(sorted(campaigns))  # its siblings' caps change too: their ads are built again
    cap = FrequencyCap(max=rng.randint(2, 9), window=CapWindow.DAY, scope=CapScope.ADVERTISER)
    campaigns[capper] = campaigns[capper].model_copy(update={"frequency_caps": [cap]})


def served(catalog: CampaignCatalog, placement: Placement) -> list[tuple[Any, ...]]:
    """Everything an ad of the placement's index carries into a decision."""
    return [
        (
            ad.ad_id,
            ad.campaign,
            ad.creative,
            ad.features,
            ad.encoded.tolist(),
            ad.caps,
            ad.serve_probability,
            ad.view,
            ad.logged,
            ad.counter_caps,
        )
        for ad in catalog.ads_for(placement).ads
    ]


def aimed_request(ad: AdCandidate, placement: Placement) -> tuple[DecisionRequest, datetime]:
    """A request the ad's targeting admits, at a moment in its flight: edited ads are selected, not just left out."""
    targeting = ad.campaign.targeting

    def pick(name: str, otherwise: Any) -> Any:
        listed = getattr(targeting, name)
        return listed[0] if listed else otherwise

    listener = {
        "id": "l",
        "country": pick("countries", "SE"),
        "device": pick("devices", "mobile"),
        "age_bucket": pick("age_buckets", "25-34"),
        "context": {
            "content_type": pick("content_types", "music"),
            "genre": pick("genres", "pop"),
            "local_hour": pick("hours", 13),
        },
    }
    request = decision_request(listener=listener, placement=placement.value)
    return request, ad.campaign.flight_start + (ad.campaign.flight_end - ad.campaign.flight_start) / 2


def same_columns(ours: TargetingIndex, theirs: TargetingIndex, positions: np.ndarray) -> bool:
    """The same encoded rows and values at *positions*, and the same advertiser groups (codes only group ads: one
    per advertiser in a slate, however numbered)."""
    (rows, values, advertisers), (their_rows, their_values, their_advertisers) = (
        ours.columns(positions),
        theirs.columns(positions),
    )
    return (rows.tolist(), values.tolist(), first_seen(advertisers)) == (
        their_rows.tolist(),
        their_values.tolist(),
        first_seen(their_advertisers),
    )


def first_seen(codes: Any) -> list[int]:
    """Codes renumbered by first appearance: equal lists group the same positions together."""
    order: dict[int, int] = {}
    return [order.setdefault(code, len(order)) for code in codes.tolist()]


def test_every_refresh_serves_what_a_load_from_scratch_of_the_same_campaigns_and_states_serves() -> None:
    # Given a catalog of 300 random campaigns, half of them paced, loaded once
    rng = random.Random(5)
    campaigns = {c.campaign_id: c for c in (budgeted(random_campaign(i, rng), rng) for i in range(300))}
    pacing = InMemoryPacingStore()
    repace(campaigns, pacing, rng, share=1.0)
    source, clock = InMemoryCampaigns(list(campaigns.values())), Clock()
    catalog = catalog_of(source, pacing, clock)
    catalog.warm()
    next_index = [300]
    for round_number in range(12):
        # When the pacing step repaces, and in two rounds of three advertisers edit campaigns (in place, or also
        # pausing, deleting and adding some), then it refreshes
        repace(campaigns, pacing, rng, share=0.5)
        if round_number % 3 == 1:
            edit_in_place(campaigns, rng)
        elif round_number % 3 == 2:
            change(campaigns, rng, next_index)
        for placement in Placement:  # the priors cached, as decisions between refreshes leave them
            catalog.ads_for(placement).priors(MODEL, ENCODER)
        source.campaigns = list(campaigns.values())
        clock.now += TTL
        fresh = catalog_of(InMemoryCampaigns(list(source.campaigns)), pacing)
        # Then every placement's ads carry what a fresh load's do, the records name the same catalog version,
        # and every request selects the same ads with the same columns
        for placement in Placement:
            assert served(catalog, placement) == served(fresh, placement), (round_number, placement)
            ours, theirs = catalog.ads_for(placement), fresh.ads_for(placement)
            assert same_columns(ours, theirs, np.arange(len(theirs)))
            assert ours.priors(MODEL, ENCODER).tolist() == theirs.priors(MODEL, ENCODER).tolist()
        assert catalog.logged_version() == fresh.logged_version() is not None
        ad_ids = [ad.ad_id for ad in catalog.ads_for(Placement.AUDIO_MIDROLL).ads]
        requests = [(*random_request(rng, ad_ids), NOW) for _ in range(40)]
        for placement in Placement:
            for ad in catalog.ads_for(placement).ads:
                aimed, moment = aimed_request(ad, placement)
                requests.append((aimed, rng.random() < 0.3, moment))
        for request, contextual, now in requests:
            ours, theirs = catalog.ads_for(request.placement), fresh.ads_for(request.placement)
            positions = ours.select_positions(request, now, contextual=contextual)
            assert positions.tolist() == theirs.select_positions(request, now, contextual=contextual).tolist()
            assert same_columns(ours, theirs, positions)


def test_a_refresh_that_only_repaces_reuses_every_ad_and_the_indexes_columns() -> None:
    # Given a loaded catalog of paced and unpaced campaigns, its priors computed
    rng = random.Random(9)
    campaigns = {c.campaign_id: c for c in (budgeted(random_campaign(i, rng), rng) for i in range(200))}
    pacing = InMemoryPacingStore()
    repace(campaigns, pacing, rng, share=1.0)
    clock = Clock()
    catalog = catalog_of(InMemoryCampaigns(list(campaigns.values())), pacing, clock)
    before = catalog.ads_for(Placement.AUDIO_MIDROLL)
    priors = before.priors(MODEL, ENCODER)
    version = catalog.logged_version()
    # When only the pacing states change and the catalog refreshes
    repace(campaigns, pacing, rng, share=1.0)
    clock.now += TTL
    after = catalog.ads_for(Placement.AUDIO_MIDROLL)
    # Then it is a new index whose ads are the old ones, repaced where their probability changed and the very
    # same objects where it did not; the columns (here the priors' cache) are shared, and the catalog version is
    # the same
    assert after is not before
    repaced = 0
    for new, old in zip(after.ads, before.ads, strict=True):
        assert new.campaign is old.campaign
        assert new.logged is old.logged
        assert new.view is old.view
        if new.serve_probability == old.serve_probability:
            assert new is old
        else:
            repaced += 1
    assert repaced > 10
    assert after.priors(MODEL, ENCODER) is priors
    assert catalog.logged_version() == version is not None


def test_refreshes_keep_the_priors_of_the_serving_versions_only() -> None:
    # Given a catalog whose index computed priors for a champion and a challenger
    rng = random.Random(4)
    campaigns = [budgeted(random_campaign(i, rng), rng) for i in range(50)]
    clock = Clock()
    catalog = catalog_of(InMemoryCampaigns(campaigns), InMemoryPacingStore(), clock)
    index = catalog.ads_for(Placement.AUDIO_MIDROLL)
    champion = index.priors(MODEL, ENCODER)
    # When fifty retrains each serve a new version between refreshes that change nothing
    for number in range(50):
        clock.now += TTL
        index = catalog.ads_for(Placement.AUDIO_MIDROLL)
        index.priors(RenamedModel(MODEL, f"fm-{number}"), ENCODER)
    # Then the index holds the last two versions' priors, not fifty, and the champion's are computed anew
    assert index.priors(MODEL, ENCODER) is not champion
    assert index.priors(MODEL, ENCODER).tolist() == champion.tolist()
    assert len(index._priors) == PRIORS_KEPT


class RenamedModel:
    """The same scores under another version: a retrain that served, as far as the priors' cache can tell."""

    def __init__(self, model: CtrModel, version: str) -> None:
        self.model, self.version = model, version

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return self.model.predict(indices)
