"""Frequency-cap arithmetic: which counter an impression lands in, and whether a campaign is under its caps.

Windows are calendar windows in UTC (hour, day, ISO week, month), the listener's session, or the lifetime.
Each window instance has its own counter, named by a bucket in its key, so a counter from a past window is
never read as the current one, and DynamoDB's TTL only has to clean up.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from adserve.campaigns.model import Campaign, CapScope, CapWindow, FrequencyCap

# Counters outlive their window by this much so that TTL deletion lag never races a read of a live window.
EXPIRY_GRACE = timedelta(days=1)
SESSION_LIFETIME = timedelta(days=2)
LIFETIME_HORIZON = timedelta(days=400)


@dataclass(frozen=True, slots=True)
class CounterSlot:
    """One counter an impression increments: its key and when it may be deleted."""

    key: str
    expires_at: datetime


def session_key(session_id: str | None, now: datetime) -> str:
    """Without a session id the session is the listener's UTC day: stricter than none, never looser."""
    return f"s:{session_id}" if session_id else f"d:{now.date().isoformat()}"


def window_bucket(window: CapWindow, now: datetime, session: str) -> str:
    now = now.astimezone(UTC)
    match window:
        case CapWindow.SESSION:
            return session
        case CapWindow.HOUR:
            return now.strftime("%Y-%m-%dT%H")
        case CapWindow.DAY:
            return now.strftime("%Y-%m-%d")
        case CapWindow.WEEK:
            iso = now.isocalendar()
            return f"{iso.year}-W{iso.week:02d}"
        case CapWindow.MONTH:
            return now.strftime("%Y-%m")
        case CapWindow.LIFETIME:
            return "all"


def window_end(window: CapWindow, now: datetime) -> datetime:
    """The instant the current window instance closes (sessions and lifetimes close by inactivity)."""
    now = now.astimezone(UTC)
    match window:
        case CapWindow.SESSION:
            return now + SESSION_LIFETIME
        case CapWindow.HOUR:
            return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        case CapWindow.DAY:
            return now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        case CapWindow.WEEK:
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            return midnight + timedelta(days=7 - now.weekday())
        case CapWindow.MONTH:
            first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            return (first + timedelta(days=32)).replace(day=1)
        case CapWindow.LIFETIME:
            return now + LIFETIME_HORIZON


COUNTER_PREFIX = "cap#"
"""Sort-key prefix of counters, so Decide's Query skips the listener's other items (dedupe markers)."""


def counter_key(cap: FrequencyCap, campaign: Campaign, bucket: str) -> str:
    owner = campaign.campaign_id if cap.scope is CapScope.CAMPAIGN else campaign.advertiser_id
    return f"{COUNTER_PREFIX}{cap.scope.value}#{owner}#{cap.window.value}#{bucket}"


def impression_counters(campaign: Campaign, now: datetime, session: str) -> list[CounterSlot]:
    """The counters one impression of this campaign increments: one per cap."""
    return [
        CounterSlot(
            key=counter_key(cap, campaign, window_bucket(cap.window, now, session)),
            expires_at=window_end(cap.window, now) + EXPIRY_GRACE,
        )
        for cap in campaign.frequency_caps
    ]


def within_caps(campaign: Campaign, counts: Mapping[str, int], now: datetime, session: str) -> bool:
    """True when every cap of the campaign still has room for one more impression."""
    for cap in campaign.frequency_caps:
        key = counter_key(cap, campaign, window_bucket(cap.window, now, session))
        if counts.get(key, 0) >= cap.max:
            return False
    return True
