"""Frequency-cap arithmetic: which counter an impression lands in, and whether a campaign is under its caps.

Windows are calendar windows in UTC (hour, day, ISO week, month), the listener's session, or the lifetime.
Each window instance has its own counter, named by a bucket in its key, so a counter from a past window is
never read as the current one, and DynamoDB's TTL only has to clean up.

A campaign-scoped cap counts and limits the campaign that declares it. An advertiser-scoped cap is the
advertiser's: declared by any of its active campaigns, it counts every impression of every campaign of that
advertiser and limits them all, whether they declare it or not. Its counter is named by advertiser and
window only, so siblings that declare the same window with different maxima share one counter, and the
smallest maximum wins for all of them (``AdvertiserCaps``).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Final, NamedTuple

from adserve.campaigns.model import Campaign, CampaignStatus, CapScope, CapWindow, FrequencyCap
from adserve.core.hours import next_whole_hour, utc_hour

# Counters outlive their window by this much so that TTL deletion lag never races a read of a live window.
EXPIRY_GRACE = timedelta(days=1)
SESSION_LIFETIME = timedelta(days=2)
LIFETIME_HORIZON = timedelta(days=400)


class CounterSlot(NamedTuple):
    """One counter an impression increments: its key and when it may be deleted.

    A named tuple, not a frozen dataclass: Record builds one per impression and sliding cap, and a frozen slotted
    dataclass's ``__init__`` cost twice as much (~0.5 us more)."""

    key: str
    expires_at: datetime


def session_key(session_id: str | None, now: datetime) -> str:
    """Without a session id the session is the listener's UTC day: stricter than none, never looser."""
    return f"s:{session_id}" if session_id else f"d:{now.date().isoformat()}"


@lru_cache(maxsize=64)
def window_bucket(window: CapWindow, now: datetime, session: str) -> str:
    """The window instance's name in counter keys; cached, as one decision asks it for every capped campaign."""
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
    """The instant the current window instance closes (sessions and lifetimes close by inactivity, counted from the
    next whole hour: ``counter_slots``)."""
    now = now.astimezone(UTC)
    match window:
        case CapWindow.SESSION:
            return next_whole_hour(now) + SESSION_LIFETIME
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
            return next_whole_hour(now) + LIFETIME_HORIZON


COUNTER_PREFIX = "cap#"
"""Sort-key prefix of counters, so Decide's Query skips the listener's other items (dedupe markers)."""
_COUNTER_FIELD = COUNTER_PREFIX.removesuffix("#")


def counter_key(cap: FrequencyCap, campaign: Campaign, bucket: str) -> str:
    return counter_key_prefix(cap, campaign) + bucket


def counter_key_prefix(cap: FrequencyCap, campaign: Campaign) -> str:
    """A counter's key up to its window bucket: fixed per cap and campaign."""
    owner = campaign.campaign_id if cap.scope is CapScope.CAMPAIGN else campaign.advertiser_id
    return _owned_prefix(cap, owner)


def _owned_prefix(cap: FrequencyCap, owner: str) -> str:
    return f"{COUNTER_PREFIX}{cap.scope}#{owner}#{cap.window}#"  # StrEnums format as their values


@dataclass(frozen=True, slots=True)
class CounterCap:
    """A cap in force for one campaign with its counter's key prefix, built when the catalog loads, so a
    decision checking it only appends the window's bucket (``counter_state``)."""

    key_prefix: str
    window: CapWindow
    max: int

    @classmethod
    def of(cls, cap: FrequencyCap, campaign: Campaign) -> "CounterCap":
        return cls(counter_key_prefix(cap, campaign), cap.window, cap.max)

    @classmethod
    def of_advertiser(cls, cap: FrequencyCap, advertiser_id: str) -> "CounterCap":
        """An advertiser cap's counter (``AdvertiserCaps.of_advertiser``), known by the advertiser alone: its
        campaign may be gone."""
        return cls(_owned_prefix(cap, advertiser_id), cap.window, cap.max)


def counter_state(
    caps: Iterable[CounterCap], counts: Mapping[str, int], buckets: dict[CapWindow, str], now: datetime, session: str
) -> tuple[bool, int]:
    """Whether every cap (key prefixes built) has room for one more impression, and how often the listener heard
    the campaign: the largest count of its caps in force in their current windows (an advertiser cap counts its
    siblings too). One pass over the counters for both the cap check and the ``exposure`` feature; ``buckets``
    keeps one decision's window buckets.

    The largest count because it is the most evidence of repetition the counters hold: a campaign capped per
    day and per session is as tired as its day count says.
    """
    within, heard = True, 0
    for cap in caps:
        count = counts.get(cap.key_prefix + _bucket(cap.window, buckets, now, session), 0)
        if count >= cap.max:
            within = False
        heard = max(heard, count)
    return within, heard


def _bucket(window: CapWindow, buckets: dict[CapWindow, str], now: datetime, session: str) -> str:
    """The window's current bucket, kept in ``buckets`` for the rest of the decision.

    A calendar window's bucket comes from the cache by UTC hour that Record uses (``counter_slots``):
    keyed by the exact moment, every decision missed the cache and formatted its dates again.
    """
    bucket = buckets.get(window)
    if bucket is None:
        hour = utc_hour(now)
        calendar = window in _CALENDAR_WINDOWS
        bucket = _calendar_slot(window, hour)[0] if calendar else window_bucket(window, hour, session)
        buckets[window] = bucket
    return bucket


@dataclass(frozen=True)
class CountedOwners:
    """Whose counters a listener has: a campaign none of whose owners has one is within every cap.

    Decide reads one listener's few live counters and checks thousands of capped ads against them; an ad
    whose campaign and advertiser own no counter has count 0 under every cap (and every cap allows at least
    1), so its keys need not be built. Ids hold no ``#``, so a key's fields split cleanly; a key of any
    other shape makes every ad a suspect (``unknown``), which only costs the full check.
    """

    campaigns: frozenset[str]
    advertisers: frozenset[str]
    unknown: bool

    @classmethod
    def of(cls, counts: Mapping[str, int]) -> "CountedOwners":
        """Parsed per decision, every key of the listener's counters (~0.25 us each)."""
        campaigns: set[str] = set()
        advertisers: set[str] = set()
        owners = {CapScope.CAMPAIGN.value: campaigns, CapScope.ADVERTISER.value: advertisers}
        unknown = False
        for key in counts:
            fields = key.split("#", 3)
            owned = owners.get(fields[1]) if len(fields) == 4 and fields[0] == _COUNTER_FIELD else None
            if owned is None:
                unknown = True
            else:
                owned.add(fields[2])
        return cls(frozenset(campaigns), frozenset(advertisers), unknown)

    def may_have_full_cap(self, campaign: Campaign) -> bool:
        return self.unknown or campaign.campaign_id in self.campaigns or campaign.advertiser_id in self.advertisers


@dataclass(frozen=True)
class CounterReading:
    """One decision's counters with what its checks derive from them once: whose they are, each window's
    current bucket and each campaign's ``counter_state`` (both filled as the checks ask). The cap check and the
    exposure feature share it."""

    counts: Mapping[str, int]
    owners: CountedOwners
    buckets: dict[CapWindow, str]
    states: dict[str, tuple[bool, int]]

    @classmethod
    def of(cls, counts: Mapping[str, int]) -> "CounterReading":
        return cls(counts, CountedOwners.of(counts), {}, {})

    def state(self, campaign: Campaign, caps: Iterable[CounterCap], now: datetime, session: str) -> tuple[bool, int]:
        """``counter_state`` of the campaign's caps, computed once per decision; (True, 0) without building a key
        when none of its owners has a counter (``CountedOwners``)."""
        state = self.states.get(campaign.campaign_id)
        if state is None:
            state = (
                counter_state(caps, self.counts, self.buckets, now, session)
                if self.owners.may_have_full_cap(campaign)
                else _UNHEARD
            )
            self.states[campaign.campaign_id] = state
        return state


_UNHEARD = (True, 0)


_NO_WINDOWS: Mapping[CapWindow, int] = MappingProxyType({})


class AdvertiserCaps:
    """The advertiser caps in force, by advertiser; built once when a catalog or directory loads.

    Only active campaigns put caps in force: pausing or archiving the campaign that declared an advertiser
    cap lifts it from its siblings (its flight dates do not, as they are checked per request, not at load).
    """

    def __init__(self, campaigns: Iterable[Campaign]) -> None:
        strictest: dict[str, dict[CapWindow, int]] = {}
        for campaign in campaigns:
            if campaign.status is CampaignStatus.ACTIVE:
                _merge_advertiser_caps(strictest.setdefault(campaign.advertiser_id, {}), campaign.frequency_caps)
        self._by_advertiser = strictest

    def windows(self, advertiser_id: str) -> Mapping[CapWindow, int]:
        """The advertiser's caps in force, as the strictest max per window: equal for two loads, and the same
        campaign, ``caps_of`` gives equal caps (the campaign's own advertiser caps are among them when it is active)."""
        return self._by_advertiser.get(advertiser_id, _NO_WINDOWS)

    def of_advertiser(self, advertiser_id: str) -> tuple[FrequencyCap, ...]:
        """The advertiser caps its active campaigns put in force: what an impression of one of its campaigns
        counts in even when that campaign is no longer listed (deleted after it was served)."""
        return tuple(
            FrequencyCap(max=maximum, window=window, scope=CapScope.ADVERTISER)
            for window, maximum in self._by_advertiser.get(advertiser_id, {}).items()
        )

    def caps_of(self, campaign: Campaign) -> tuple[FrequencyCap, ...]:
        """What an impression of the campaign is counted in and checked against.

        Its own campaign caps, and per window the strictest advertiser cap that it or any active campaign of
        its advertiser declares (its own count even while it is paused: an impression may arrive late).
        """
        windows = dict(self._by_advertiser.get(campaign.advertiser_id, {}))
        _merge_advertiser_caps(windows, campaign.frequency_caps)
        own = tuple(cap for cap in campaign.frequency_caps if cap.scope is CapScope.CAMPAIGN)
        shared = tuple(
            FrequencyCap(max=maximum, window=window, scope=CapScope.ADVERTISER) for window, maximum in windows.items()
        )
        return own + shared


def _merge_advertiser_caps(windows: dict[CapWindow, int], caps: Iterable[FrequencyCap]) -> None:
    for cap in caps:
        if cap.scope is CapScope.ADVERTISER:
            windows[cap.window] = min(cap.max, windows.get(cap.window, cap.max))


def counter_slots(
    caps: Iterable[CounterCap], moment: datetime, session: str, received_at: datetime
) -> list[CounterSlot]:
    """The counters one impression at ``moment`` increments: one per cap in force of its campaign (``CounterCap``,
    whose key prefixes Record's directory builds once per campaign).

    A calendar window's bucket and end are the moment's. A session's or lifetime's end slides from when the
    impression was received: from a late report's moment (days old, as a batch may be) it would move the
    counter's expiry back, into the past for a session, and the cap would be forgotten. It slides from the next
    whole hour (``next_whole_hour``): to the second, the expiry in the listener's partition would tell when its
    last impression was counted, a time to match against decision rows; a counter then lives up to an hour
    longer, blocking longer, never shorter. Record asks this for every impression, so a calendar window's bucket
    and expiry are cached by the UTC hour.
    """
    hour = utc_hour(moment.astimezone(UTC))
    slides_from = next_whole_hour(max(moment, received_at))  # as window_end's
    slots = []
    for cap in caps:
        if cap.window in _CALENDAR_WINDOWS:
            slots.append(_calendar_counter(cap.key_prefix, cap.window, hour))
        else:
            bucket = window_bucket(cap.window, hour, session)
            slots.append(CounterSlot(cap.key_prefix + bucket, slides_from + _SLIDING_LIFETIMES[cap.window]))
    return slots


_SLIDING_LIFETIMES: Final = {
    CapWindow.SESSION: SESSION_LIFETIME + EXPIRY_GRACE,
    CapWindow.LIFETIME: LIFETIME_HORIZON + EXPIRY_GRACE,
}
"""How long a sliding window's counter lives from the whole hour that follows an impression: ``window_end`` plus the
grace, added once instead of per impression."""


@lru_cache(maxsize=1024)
def _calendar_counter(key_prefix: str, window: CapWindow, hour: datetime) -> CounterSlot:
    """A calendar cap's counter for every impression of the hour: one shared (frozen) slot, not one per impression."""
    bucket, expires_at = _calendar_slot(window, hour)
    return CounterSlot(key_prefix + bucket, expires_at)


_CALENDAR_WINDOWS = frozenset({CapWindow.HOUR, CapWindow.DAY, CapWindow.WEEK, CapWindow.MONTH})


@lru_cache(maxsize=64)
def _calendar_slot(window: CapWindow, hour: datetime) -> tuple[str, datetime]:
    """A calendar window's bucket and counter expiry: the same for every moment of the hour and every session."""
    return window_bucket(window, hour, ""), window_end(window, hour) + EXPIRY_GRACE


def within_caps(
    campaign: Campaign, caps: Iterable[FrequencyCap], counts: Mapping[str, int], now: datetime, session: str
) -> bool:
    """True when every cap in force for the campaign (``caps_of``) still has room for one more impression."""
    return first_full_cap(campaign, caps, counts, now, session) is None


def first_full_cap(
    campaign: Campaign, caps: Iterable[FrequencyCap], counts: Mapping[str, int], now: datetime, session: str
) -> tuple[FrequencyCap, int] | None:
    """The first cap in force that has no room for one more impression, with its count; None when all have."""
    for cap in caps:
        count = counts.get(counter_key(cap, campaign, window_bucket(cap.window, now, session)), 0)
        if count >= cap.max:
            return cap, count
    return None
