"""Small builders of valid domain objects; each test overrides only what it is about."""

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from adserve.campaigns.frequency_caps import CounterCap, CounterSlot, counter_slots
from adserve.campaigns.model import Campaign, FrequencyCap
from adserve.decisions.api import DecisionRequest
from adserve.delivery.pacing import PacingState, TrafficProfile, pace
from adserve.outcomes.tokens import TrackingClaims

NOW = datetime(2026, 11, 25, 13, 30, tzinfo=UTC)


def decision_id_at(moment: datetime) -> str:
    """A version-7 decision id made at *moment* (to the millisecond), as Decide's ids say when they were made."""
    return str(uuid.UUID(int=int(moment.timestamp() * 1000) << 80 | 0x7000_8000 << 48 | 12345))


def campaign(**overrides: Any) -> Campaign:
    document: dict[str, Any] = {
        "campaign_id": "cmp-1",
        "advertiser_id": "adv-1",
        "name": "Winter sale",
        "status": "active",
        "category": "retail",
        "flight_start": "2026-01-01T00:00:00Z",
        "flight_end": "2027-01-01T00:00:00Z",
        "placements": ["audio_midroll", "audio_preroll"],
        "value_cpm": 10.0,
        "creatives": [
            {
                "ad_id": f"{overrides.get('campaign_id', 'cmp-1')}-ad-1",
                "format": "audio",
                "title": "Winter sale",
                "media_url": "https://cdn.example.com/a.mp3",
                "click_url": "https://shop.example.com/",
                "duration_seconds": 30,
            }
        ],
    }
    document.update(overrides)
    return Campaign.model_validate(document)


def decision_request(**overrides: Any) -> DecisionRequest:
    document: dict[str, Any] = {
        "listener": {
            "id": "listener-1",
            "country": "SE",
            "device": "mobile",
            "age_bucket": "25-34",
            "session_id": "session-1",
            "context": {"content_type": "music", "genre": "pop"},
        },
        "placement": "audio_midroll",
        "max_ads": 3,
    }
    document.update(overrides)
    return DecisionRequest.model_validate(document)


def tracking_claims(**overrides: Any) -> TrackingClaims:
    """Claims of an impression token valid for an hour after NOW."""
    claims: dict[str, Any] = {
        "decision_id": "d-1",
        "ad_id": "ad-1",
        "campaign_id": "cmp-1",
        "advertiser_id": "adv-1",
        "listener": "9f1c0e4b2a7d4c3e8b6a5f0d1e2c3b4a",
        "session": "s:abc",
        "event_type": "impression",
        "expires_at": int((NOW + timedelta(hours=1)).timestamp()),
    }
    claims.update(overrides)
    return TrackingClaims(**claims)


def impression_counters(
    campaign: Campaign, caps: Iterable[FrequencyCap], now: datetime, session: str
) -> list[CounterSlot]:
    """The counters one impression of *campaign* increments under *caps*, as Record counts them."""
    return counter_slots([CounterCap.of(cap, campaign) for cap in caps], now, session, now)


def pacing_state(booked: Campaign, serve_probability: float, updated_at: datetime) -> PacingState:
    """The state a pacing step at ``updated_at`` would store for a campaign with nothing delivered, at that p."""
    state = pace(booked, None, 0, 0, TrafficProfile.uniform(), updated_at)
    return state.model_copy(update={"serve_probability": serve_probability})
