"""Random campaigns and decision requests over a small vocabulary, for properties of the catalog and its index."""

import random
from datetime import timedelta
from typing import Any

from adserve.campaigns.model import Campaign
from adserve.core.vocabulary import Placement
from adserve.decisions.api import DecisionRequest

from tests.support.builders import NOW, campaign, decision_request

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
