"""Candidate selection by status, flight, placement and every targeting dimension."""

import random
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from adserve.campaigns.model import Campaign
from adserve.decisions.api import DecisionRequest
from adserve.decisions.targeting import AdCandidate, TargetingIndex

from tests.support.builders import NOW, campaign, decision_request


def candidate(target: Campaign) -> AdCandidate:
    return AdCandidate(target, target.creatives[0], {}, np.zeros(5, dtype=np.int64), tuple(target.frequency_caps))


def campaign_matches(target: Campaign, request: DecisionRequest, now: datetime) -> bool:
    return TargetingIndex(request.placement, [candidate(target)]).select(request, now) != []


def test_an_untargeted_active_campaign_in_flight_matches() -> None:
    assert campaign_matches(campaign(), decision_request(), NOW)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"status": "paused"}, False),
        ({"status": "archived"}, False),
        ({"flight_start": (NOW + timedelta(seconds=1)).isoformat()}, False),
        ({"flight_end": NOW.isoformat()}, False),
        ({"placements": ["podcast_preroll"]}, False),
        ({"targeting": {"countries": ["SE", "NO"]}}, True),
        ({"targeting": {"countries": ["US"]}}, False),
        ({"targeting": {"devices": ["mobile"]}}, True),
        ({"targeting": {"devices": ["tv"]}}, False),
        ({"targeting": {"age_buckets": ["25-34"]}}, True),
        ({"targeting": {"age_buckets": ["65+"]}}, False),
        ({"targeting": {"content_types": ["podcast"]}}, False),
        ({"targeting": {"genres": ["pop", "rock"]}}, True),
        ({"targeting": {"genres": ["jazz"]}}, False),
        ({"targeting": {"hours": [13]}}, True),
        ({"targeting": {"hours": [12, 14]}}, False),
    ],
)
def test_each_dimension_admits_or_refuses(overrides: dict[str, Any], expected: bool) -> None:
    assert campaign_matches(campaign(**overrides), decision_request(), NOW) is expected


def test_targeting_hours_use_the_listeners_local_hour_when_given() -> None:
    request = decision_request(listener={"id": "l", "country": "SE", "device": "mobile", "context": {"local_hour": 14}})
    assert campaign_matches(campaign(targeting={"hours": [14]}), request, NOW)
    assert not campaign_matches(campaign(targeting={"hours": [13]}), request, NOW)


def test_a_listener_without_an_age_bucket_misses_age_targeted_campaigns() -> None:
    request = decision_request(listener={"id": "l", "country": "SE", "device": "mobile"})
    assert not campaign_matches(campaign(targeting={"age_buckets": ["25-34"]}), request, NOW)


def test_selection_keeps_matching_ads_and_drops_excluded_ones() -> None:
    kept = candidate(campaign(campaign_id="kept"))
    excluded = candidate(campaign(campaign_id="excluded"))
    off_target = candidate(campaign(campaign_id="elsewhere", targeting={"countries": ["US"]}))
    request = decision_request(exclude_ads=[excluded.ad_id])
    index = TargetingIndex(request.placement, [kept, excluded, off_target])
    assert index.select(request, NOW) == [kept]


def test_selection_from_many_ads_is_each_ads_own_verdict_in_catalog_order() -> None:
    # Given ads whose campaigns target at random, and requests at random
    rng = random.Random(5)
    values: dict[str, list[Any]] = {
        "countries": ["SE", "NO", "US"],
        "devices": ["mobile", "tv"],
        "age_buckets": ["25-34", "65+"],
        "content_types": ["music", "podcast"],
        "genres": ["pop", "jazz"],
        "hours": [12, 13, 14],
    }
    ads = [
        candidate(
            campaign(
                campaign_id=f"c{i}",
                status=rng.choice(["active", "active", "paused"]),
                flight_end=(NOW + timedelta(seconds=rng.choice([0, 1]))).isoformat(),
                targeting={name: rng.sample(options, rng.randint(0, 2)) for name, options in values.items()},
            )
        )
        for i in range(60)
    ]
    index = TargetingIndex(decision_request().placement, ads)
    for _ in range(40):
        listener: dict[str, Any] = {
            "id": "l",
            "country": rng.choice(values["countries"]),
            "device": rng.choice(values["devices"]),
            "context": {"content_type": rng.choice(values["content_types"]), "genre": rng.choice(["pop", "jazz"])},
        }
        if rng.random() < 0.5:
            listener["age_bucket"] = rng.choice(values["age_buckets"])
        request = decision_request(listener=listener, exclude_ads=[ad.ad_id for ad in rng.sample(ads, 3)])
        # Then the index selects exactly the ads that match alone and are not excluded
        excluded = set(request.exclude_ads)
        alone = [ad for ad in ads if campaign_matches(ad.campaign, request, NOW) and ad.ad_id not in excluded]
        assert index.select(request, NOW) == alone
