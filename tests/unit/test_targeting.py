"""Candidate selection by status, flight, placement and every targeting dimension."""

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from adserve.campaigns.model import Campaign
from adserve.decisions.targeting import AdCandidate, campaign_matches, select_candidates

from tests.support.builders import NOW, campaign, decision_request


def candidate(target: Campaign) -> AdCandidate:
    return AdCandidate(target, target.creatives[0], {}, np.zeros(5, dtype=np.int64), tuple(target.frequency_caps))


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
    assert select_candidates([kept, excluded, off_target], request, NOW) == [kept]
