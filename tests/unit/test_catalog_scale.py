"""A 10,000-campaign catalog loads into per-placement indexes that select exactly what a brute-force filter does,
and the load runs without the cyclic collector (which rescanned the growing snapshot for nothing)."""

import gc
import random
from datetime import datetime, timedelta

import pytest
from adserve.campaigns.model import Campaign, CampaignStatus
from adserve.core.vocabulary import PLAYS
from adserve.decisions.api import DecisionRequest
from adserve.decisions.catalog import CampaignCatalog
from adserve.decisions.targeting import PERSONAL_DIMENSIONS
from adserve.models.features import FeatureEncoder

from devstack.fakes import InMemoryCampaigns, InMemoryPacingStore
from tests.support.builders import NOW, campaign
from tests.support.random_catalogs import VALUES, random_campaign, random_request

CAMPAIGNS = 10_000


def brute_force(campaigns: list[Campaign], request: DecisionRequest, now: datetime, contextual: bool) -> list[str]:
    """Every campaign checked on its own, written out without the index's masks."""
    listener, context = request.listener, request.listener.context
    values = {
        "countries": listener.country,
        "devices": listener.device,
        "age_buckets": listener.age_bucket,
        "content_types": context.content_type,
        "genres": context.genre,
        "hours": now.hour if context.local_hour is None else context.local_hour,
    }
    kept: list[str] = []
    for c in sorted(campaigns, key=lambda c: c.campaign_id):
        if c.status is not CampaignStatus.ACTIVE or not c.flight_start <= now < c.flight_end:
            continue
        if request.placement not in c.placements:
            continue
        if any(
            (contextual and name in PERSONAL_DIMENSIONS and allowed) or (allowed and values[name] not in allowed)
            for name, allowed in ((name, getattr(c.targeting, name)) for name in VALUES)
        ):
            continue
        playable = PLAYS[request.placement]
        kept.extend(cr.ad_id for cr in c.creatives if cr.ad_id not in request.exclude_ads and cr.format in playable)
    return kept


def test_a_10000_campaign_catalog_selects_exactly_what_a_brute_force_filter_does() -> None:
    rng = random.Random(13)
    campaigns = [random_campaign(index, rng) for index in range(CAMPAIGNS)]
    catalog = CampaignCatalog(
        InMemoryCampaigns(campaigns),
        FeatureEncoder(),
        ttl_seconds=60,
        max_age_seconds=300,
        pacing=InMemoryPacingStore(),
        pacing_max_age=timedelta(minutes=5),
        clock=lambda: NOW,
    )
    ad_ids = [c.creatives[0].ad_id for c in campaigns]
    sizes = []
    for _ in range(60):
        request, contextual = random_request(rng, ad_ids)
        now = NOW + timedelta(hours=rng.randint(-48, 48))
        selected = [ad.ad_id for ad in catalog.ads_for(request.placement).select(request, now, contextual=contextual)]
        assert selected == brute_force(campaigns, request, now, contextual)
        sizes.append(len(selected))
    # The requests are not trivially empty or full: the filter matters
    assert min(sizes) < max(sizes)
    assert max(sizes) > 100


class WatchedCampaigns:
    """Records whether the cyclic collector ran while the catalog listed its campaigns; can fail instead."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.collecting: list[bool] = []

    def list_campaigns(self) -> list[Campaign]:
        self.collecting.append(gc.isenabled())
        if self.fail:
            raise RuntimeError("scan failed")
        return [campaign()]


def _catalog_over(source: WatchedCampaigns) -> CampaignCatalog:
    return CampaignCatalog(
        source,
        FeatureEncoder(),
        ttl_seconds=60,
        max_age_seconds=300,
        pacing=InMemoryPacingStore(),
        pacing_max_age=timedelta(minutes=5),
        clock=lambda: NOW,
    )


def test_a_load_runs_without_the_cyclic_collector_and_restores_it_even_when_it_fails() -> None:
    assert gc.isenabled()
    loaded = WatchedCampaigns()
    _catalog_over(loaded).warm()
    assert loaded.collecting == [False]
    assert gc.isenabled()
    failing = WatchedCampaigns(fail=True)
    with pytest.raises(RuntimeError, match="scan failed"):
        _catalog_over(failing).warm()
    assert failing.collecting == [False]
    assert gc.isenabled()


def test_a_load_leaves_a_collector_that_was_off_off() -> None:
    gc.disable()
    try:
        _catalog_over(WatchedCampaigns()).warm()
        assert not gc.isenabled()
    finally:
        gc.enable()
