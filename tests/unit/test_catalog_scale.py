"""A 10,000-campaign catalog loads into per-placement indexes that select exactly what a brute-force filter does,
and the load runs without the cyclic collector (which rescanned the growing snapshot for nothing)."""

import gc
import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from adserve.campaigns.model import Campaign, CampaignStatus
from adserve.core.vocabulary import PLAYS, Placement
from adserve.decisions.api import DecisionRequest
from adserve.decisions.catalog import CampaignCatalog
from adserve.decisions.targeting import PERSONAL_DIMENSIONS
from adserve.models.features import FeatureEncoder

from devstack.fakes import InMemoryCampaigns, InMemoryPacingStore
from tests.support.builders import NOW, campaign, decision_request

CAMPAIGNS = 10_000
VALUES: dict[str, list[Any]] = {
    "countries": ["SE", "NO", "US", "DE"],
    "devices": ["mobile", "desktop", "tv"],
    "age_buckets": ["18-24", "25-34", "65+"],
    "content_types": ["music", "podcast", "radio"],
    "genres": ["pop", "jazz", "rock"],
    "hours": [8, 13, 14, 20],
}
PLACEMENTS = [placement.value for placement in Placement]


def random_campaign(index: int, rng: random.Random) -> Campaign:
    flight_start = NOW - timedelta(days=rng.randint(-3, 30))
    return campaign(
        campaign_id=f"c{index:05d}",
        advertiser_id=f"adv-{rng.randrange(2000)}",
        status=rng.choice(["active"] * 8 + ["paused", "archived"]),
        flight_start=flight_start.isoformat(),
        flight_end=(flight_start + timedelta(days=rng.randint(1, 60))).isoformat(),
        placements=rng.sample(PLACEMENTS, rng.randint(1, len(PLACEMENTS))),
        targeting={
            name: rng.sample(options, rng.randint(1, len(options) - 1)) if rng.random() < 0.3 else []
            for name, options in VALUES.items()
        },
        frequency_caps=[{"max": 3, "window": "day", "scope": "campaign"}] if rng.random() < 0.3 else [],
        value_cpm=round(rng.uniform(1, 40), 2),
        creatives=[
            {
                "ad_id": f"c{index:05d}-ad-1",
                "format": rng.choice(["audio", "audio", "display", "video"]),
                "title": "Offer",
                "media_url": "https://cdn.example.com/a",
                "click_url": "https://shop.example.com/",
            }
        ],
    )


def random_request(rng: random.Random, ad_ids: list[str]) -> tuple[DecisionRequest, bool]:
    listener: dict[str, Any] = {
        "id": "l",
        "country": rng.choice(VALUES["countries"]),
        "device": rng.choice(VALUES["devices"]),
        "context": {
            "content_type": rng.choice(VALUES["content_types"]),
            "genre": rng.choice([*VALUES["genres"], None]),
            "local_hour": rng.choice([*VALUES["hours"], None]),
        },
    }
    if rng.random() < 0.7:
        listener["age_bucket"] = rng.choice(VALUES["age_buckets"])
    request = decision_request(
        listener=listener, placement=rng.choice(PLACEMENTS), exclude_ads=rng.sample(ad_ids, rng.randint(0, 20))
    )
    return request, rng.random() < 0.3


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
