"""Synthetic but valid inputs: N campaigns that all target one listener, that listener's request and counters.

Every campaign has its own advertiser (so the one-ad-per-advertiser rule never shrinks the pool), one
creative, a live flight around the real clock, and targeting that names the benchmark listener among other
values, so all N ads pass targeting. Every third campaign carries frequency caps with counters below their
limits: the caps path (one counter read, per-campaign verdicts) runs and still keeps all N ads eligible.
"""

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adserve.campaigns.frequency_caps import counter_key, session_key, window_bucket, window_end
from adserve.campaigns.model import Campaign
from adserve.privacy.pseudonyms import Pseudonymizer

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_EVENT = REPO_ROOT / "events" / "decide_post_decision.json"

LISTENER_ID = "listener-bench-1"
SESSION_ID = "session-bench-1"
PSEUDONYMS = Pseudonymizer(b"adserve benchmark pseudonym key, not a secret")
"""The in-process benchmarks' key; against the local stack, its PseudonymKeySecret's (``moto_latency``)."""
PLACEMENT = "audio_midroll"

LISTENER: dict[str, Any] = {
    "id": LISTENER_ID,
    "country": "SE",
    "device": "mobile",
    "age_bucket": "25-34",
    "session_id": SESSION_ID,
    "context": {"content_type": "music", "genre": "pop", "local_hour": 14},
}

CATEGORIES = ("auto", "food", "finance", "retail", "travel", "telecom", "gaming", "health", "insurance", "media")
OTHER_COUNTRIES = ("NO", "DK", "FI", "DE", "GB", "US", "FR", "NL", "ES", "IT")
OTHER_DEVICES = ("desktop", "tablet", "smart_speaker", "car", "tv")
OTHER_AGES = ("18-24", "35-44", "45-54")
OTHER_GENRES = ("rock", "hip-hop", "jazz", "classical", "electronic", "indie")
OTHER_PLACEMENTS = ("audio_preroll", "podcast_midroll", "display_companion")
CAPPED_EVERY = 3
RECENTLY_SEEN_CAMPAIGNS = 10
"""The listener has live counters for this many capped campaigns: one listener hears few of all campaigns."""


FULL_CONSENT = {"personalise": True, "cap_frequency": True, "measure": True}
"""The benchmark listener consents to everything, so every figure times the personalised path with caps (the
deployment default is strict: without it, the decision would be contextual and capped campaigns withheld)."""


def decision_request_document(max_ads: int = 3, consent: dict[str, bool] = FULL_CONSENT) -> dict[str, Any]:
    return {"listener": LISTENER, "placement": PLACEMENT, "max_ads": max_ads, "consent": consent}


def api_gateway_event(request: dict[str, Any]) -> dict[str, Any]:
    """The repository's sample API Gateway (HTTP API v2) event with ``request`` as its JSON body."""
    event: dict[str, Any] = json.loads(SAMPLE_EVENT.read_text())
    event["body"] = json.dumps(request)
    return event


def _maybe_including(rng: random.Random, wanted: str, others: tuple[str, ...]) -> list[str]:
    """Empty (anyone) half the time, else ``wanted`` among a few other values."""
    if rng.random() < 0.5:
        return []
    chosen = rng.sample(others, k=rng.randint(1, min(3, len(others))))
    return sorted({wanted, *chosen})


def _targeting(rng: random.Random) -> dict[str, Any]:
    hours = sorted({14, *rng.sample(range(24), k=rng.randint(4, 12))}) if rng.random() < 0.3 else []
    return {
        "countries": _maybe_including(rng, "SE", OTHER_COUNTRIES),
        "devices": _maybe_including(rng, "mobile", OTHER_DEVICES),
        "age_buckets": _maybe_including(rng, "25-34", OTHER_AGES),
        "content_types": _maybe_including(rng, "music", ("podcast", "radio")),
        "genres": _maybe_including(rng, "pop", OTHER_GENRES),
        "hours": hours,
    }


def _caps(index: int) -> list[dict[str, Any]]:
    if index % CAPPED_EVERY:
        return []
    return [
        {"max": 3, "window": "session", "scope": "campaign"},
        {"max": 20, "window": "day", "scope": "advertiser"},
    ]


def campaign_document(index: int, now: datetime, rng: random.Random) -> dict[str, Any]:
    campaign_id = f"cmp-{index:05d}"
    return {
        "campaign_id": campaign_id,
        "advertiser_id": f"adv-{index:05d}",
        "name": f"Benchmark campaign {index}",
        "status": "active",
        "category": CATEGORIES[index % len(CATEGORIES)],
        "flight_start": (now - timedelta(days=rng.randint(1, 30))).isoformat(),
        "flight_end": (now + timedelta(days=rng.randint(30, 120))).isoformat(),
        "placements": sorted({PLACEMENT, *rng.sample(OTHER_PLACEMENTS, k=rng.randint(0, 2))}),
        "targeting": _targeting(rng),
        "value_cpm": round(rng.uniform(2.0, 40.0), 2),
        "frequency_caps": _caps(index),
        "creatives": [
            {
                "ad_id": f"{campaign_id}-ad-1",
                "format": "audio",  # what the benchmark's audio break plays (PLAYS)
                "title": f"Offer {index}",
                "media_url": f"https://cdn.example.com/creatives/{campaign_id}.mp3",
                "click_url": f"https://advertiser-{index}.example.com/landing?src=adserve",
                "duration_seconds": 30,
            }
        ],
    }


def campaigns(count: int, now: datetime | None = None, seed: int = 7) -> list[Campaign]:
    """``count`` valid campaigns, each eligible for the benchmark request at ``now``."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    return [Campaign.model_validate(campaign_document(index, now, rng)) for index in range(count)]


@dataclass(frozen=True)
class Counter:
    key: str
    impressions: int
    expires_at: datetime


def listener_counters(catalog: list[Campaign], now: datetime, pseudonyms: Pseudonymizer = PSEUDONYMS) -> list[Counter]:
    """Counters of the benchmark listener for the capped campaigns it heard recently, each below its cap."""
    session = session_key(pseudonyms.session(SESSION_ID), now)
    counters: dict[str, Counter] = {}
    capped = [campaign for campaign in catalog if campaign.is_capped]
    for campaign in capped[:RECENTLY_SEEN_CAMPAIGNS]:
        for cap in campaign.frequency_caps:
            key = counter_key(cap, campaign, window_bucket(cap.window, now, session))
            counters[key] = Counter(key, max(cap.max - 2, 1), window_end(cap.window, now) + timedelta(days=1))
    return list(counters.values())
