"""A catalog refresh reuses what the previous load built for unchanged campaigns, and serves exactly what a load
from scratch of the same campaigns and pacing states would."""

import random
from datetime import timedelta
from typing import Any

from adserve.campaigns.model import Campaign, CampaignStatus
from adserve.core.vocabulary import Placement
from adserve.decisions.catalog import CampaignCatalog
from adserve.models.ctr_model import CtrModel
from adserve.models.features import FeatureEncoder

from devstack.fakes import InMemoryCampaigns, InMemoryLogStore, InMemoryPacingStore
from tests.support.builders import NOW, pacing_state
from tests.support.published_models import BOOTSTRAP
from tests.support.random_catalogs import random_campaign, random_request

TTL = 30.0
ENCODER = FeatureEncoder()
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
    for round_number in range(10):
        # When the pacing step repaces, and every other round advertisers change campaigns, then it refreshes
        repace(campaigns, pacing, rng, share=0.5)
        if round_number % 2:
            change(campaigns, rng, next_index)
        source.campaigns = list(campaigns.values())
        clock.now += TTL
        fresh = catalog_of(InMemoryCampaigns(list(source.campaigns)), pacing)
        # Then every placement's ads carry what a fresh load's do, the records name the same catalog version,
        # and every request selects the same ads with the same columns
        for placement in Placement:
            assert served(catalog, placement) == served(fresh, placement), (round_number, placement)
        assert catalog.logged_version() == fresh.logged_version() is not None
        ad_ids = [ad.ad_id for ad in catalog.ads_for(Placement.AUDIO_MIDROLL).ads]
        for _ in range(40):
            request, contextual = random_request(rng, ad_ids)
            ours, theirs = catalog.ads_for(request.placement), fresh.ads_for(request.placement)
            positions = ours.select_positions(request, NOW, contextual=contextual)
            assert positions.tolist() == theirs.select_positions(request, NOW, contextual=contextual).tolist()
            for mine, expected in zip(ours.columns(positions), theirs.columns(positions), strict=True):
                assert mine.tolist() == expected.tolist()


def test_a_refresh_that_only_repaces_reuses_every_ad_and_the_indexes_columns() -> None:
    # Given a loaded catalog of paced and unpaced campaigns, its priors computed
    rng = random.Random(9)
    campaigns = {c.campaign_id: c for c in (budgeted(random_campaign(i, rng), rng) for i in range(200))}
    pacing = InMemoryPacingStore()
    repace(campaigns, pacing, rng, share=1.0)
    clock = Clock()
    catalog = catalog_of(InMemoryCampaigns(list(campaigns.values())), pacing, clock)
    model = CtrModel.load(BOOTSTRAP, ENCODER.spec)
    before = catalog.ads_for(Placement.AUDIO_MIDROLL)
    priors = before.priors(model, ENCODER)
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
    assert after.priors(model, ENCODER) is priors
    assert catalog.logged_version() == version is not None
