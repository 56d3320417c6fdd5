"""Caps arithmetic: which counter an impression lands in, across window boundaries."""

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from adserve.campaigns.frequency_caps import (
    EXPIRY_GRACE,
    LIFETIME_HORIZON,
    SESSION_LIFETIME,
    AdvertiserCaps,
    CountedOwners,
    CounterCap,
    counter_key,
    counter_slots,
    counter_state,
    session_key,
    window_bucket,
    window_end,
    within_caps,
)
from adserve.campaigns.model import CapScope, CapWindow
from hypothesis import given
from hypothesis import strategies as st

from tests.support.builders import NOW, campaign, impression_counters

SESSION = session_key("s-1", NOW)
ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "before", "after"),
    [
        (CapWindow.HOUR, "2026-11-25T13:59:59.999999", "2026-11-25T14:00:00"),
        (CapWindow.DAY, "2026-11-25T23:59:59", "2026-11-26T00:00:00"),
        (CapWindow.WEEK, "2026-11-29T23:59:59", "2026-11-30T00:00:00"),  # Sunday -> Monday
        (CapWindow.MONTH, "2026-11-30T23:59:59", "2026-12-01T00:00:00"),
        (CapWindow.MONTH, "2026-12-31T23:59:59", "2027-01-01T00:00:00"),
    ],
)
def test_a_boundary_starts_a_new_bucket_and_ends_the_old_window(window: CapWindow, before: str, after: str) -> None:
    assert window_bucket(window, at(before), SESSION) != window_bucket(window, at(after), SESSION)
    assert window_end(window, at(before)) == at(after).replace(microsecond=0)


@pytest.mark.parametrize("window", [CapWindow.HOUR, CapWindow.DAY, CapWindow.WEEK, CapWindow.MONTH])
def test_instants_within_one_window_share_a_bucket(window: CapWindow) -> None:
    start = at("2026-11-23T00:00:00")  # a Monday, first hour of the week
    assert window_bucket(window, start, SESSION) == window_bucket(window, start + timedelta(minutes=59), SESSION)


def test_iso_weeks_straddle_the_new_year() -> None:
    assert window_bucket(CapWindow.WEEK, at("2026-12-31T12:00:00"), SESSION) == "2026-W53"
    assert window_bucket(CapWindow.WEEK, at("2027-01-03T12:00:00"), SESSION) == "2026-W53"
    assert window_bucket(CapWindow.WEEK, at("2027-01-04T00:00:00"), SESSION) == "2027-W01"


def test_a_missing_session_id_scopes_the_session_to_the_utc_day() -> None:
    assert session_key(None, at("2026-11-25T01:00:00")) == session_key(None, at("2026-11-25T23:00:00"))
    assert session_key(None, at("2026-11-25T23:00:00")) != session_key(None, at("2026-11-26T00:00:00"))
    assert session_key("abc", NOW) != session_key(None, NOW)


def test_within_caps_allows_up_to_max_minus_one_then_refuses() -> None:
    capped = campaign(frequency_caps=[{"max": 3, "window": "day"}])
    [slot] = impression_counters(capped, capped.frequency_caps, NOW, SESSION)
    assert within_caps(capped, capped.frequency_caps, {}, NOW, SESSION)
    assert within_caps(capped, capped.frequency_caps, {slot.key: 2}, NOW, SESSION)
    assert not within_caps(capped, capped.frequency_caps, {slot.key: 3}, NOW, SESSION)


def test_yesterdays_counter_does_not_count_today() -> None:
    capped = campaign(frequency_caps=[{"max": 1, "window": "day"}])
    [yesterday] = impression_counters(capped, capped.frequency_caps, NOW - timedelta(days=1), SESSION)
    assert within_caps(capped, capped.frequency_caps, {yesterday.key: 5}, NOW, SESSION)


def test_every_cap_must_have_room() -> None:
    capped = campaign(frequency_caps=[{"max": 10, "window": "week"}, {"max": 1, "window": "session"}])
    week, session = impression_counters(capped, capped.frequency_caps, NOW, SESSION)
    assert not within_caps(capped, capped.frequency_caps, {week.key: 0, session.key: 1}, NOW, SESSION)
    assert within_caps(capped, capped.frequency_caps, {week.key: 9}, NOW, SESSION)


def test_an_advertiser_cap_counts_every_campaign_of_the_advertiser() -> None:
    cap = [{"max": 2, "window": "day", "scope": "advertiser"}]
    first = campaign(campaign_id="a", frequency_caps=cap)
    second = campaign(campaign_id="b", frequency_caps=cap)
    other_advertiser = campaign(campaign_id="c", advertiser_id="adv-2", frequency_caps=cap)
    [slot] = impression_counters(first, first.frequency_caps, NOW, SESSION)
    assert impression_counters(second, second.frequency_caps, NOW, SESSION)[0].key == slot.key
    assert not within_caps(second, second.frequency_caps, {slot.key: 2}, NOW, SESSION)
    assert within_caps(other_advertiser, other_advertiser.frequency_caps, {slot.key: 2}, NOW, SESSION)


def test_campaign_and_advertiser_counters_are_distinct() -> None:
    capped = campaign(frequency_caps=[{"max": 2, "window": "day"}, {"max": 5, "window": "day", "scope": "advertiser"}])
    keys = [slot.key for slot in impression_counters(capped, capped.frequency_caps, NOW, SESSION)]
    assert len(set(keys)) == 2


def test_counters_expire_after_their_window_plus_grace() -> None:
    capped = campaign(frequency_caps=[{"max": 1, "window": "hour"}, {"max": 1, "window": "lifetime"}])
    hour, lifetime = impression_counters(capped, capped.frequency_caps, NOW, SESSION)
    assert hour.expires_at == at("2026-11-25T14:00:00") + EXPIRY_GRACE
    assert lifetime.expires_at > NOW + timedelta(days=365)


def test_sliding_counters_expire_at_their_window_end_plus_grace_from_any_zone() -> None:
    capped = campaign(frequency_caps=[{"max": 1, "window": "session"}, {"max": 1, "window": "lifetime"}])
    moment = NOW.astimezone(timezone(timedelta(hours=-5)))
    session, lifetime = impression_counters(capped, capped.frequency_caps, moment, SESSION)
    assert session.expires_at == window_end(CapWindow.SESSION, moment) + EXPIRY_GRACE
    assert lifetime.expires_at == window_end(CapWindow.LIFETIME, moment) + EXPIRY_GRACE
    assert session.expires_at.utcoffset() == lifetime.expires_at.utcoffset() == timedelta(0)


def test_a_sliding_counters_expiry_is_a_whole_hour_and_never_sooner_than_its_lifetime() -> None:
    # Given an impression received at some second of an hour
    capped = campaign(frequency_caps=[{"max": 1, "window": "session"}, {"max": 1, "window": "lifetime"}])
    caps = [CounterCap.of(cap, capped) for cap in capped.frequency_caps]
    received = NOW.replace(minute=17, second=42, microsecond=123)
    slots = counter_slots(caps, received, SESSION, received)
    for slot, lifetime in zip(slots, (SESSION_LIFETIME, LIFETIME_HORIZON), strict=True):
        # Then its counter's expiry (in the listener's partition) does not tell that second, and the counter lives
        # at least its lifetime and grace from it, under an hour more
        assert (slot.expires_at.minute, slot.expires_at.second, slot.expires_at.microsecond) == (0, 0, 0)
        assert timedelta(0) < slot.expires_at - (received + lifetime + EXPIRY_GRACE) < timedelta(hours=1)


def test_a_late_report_moves_no_sliding_counters_end_back() -> None:
    # Given an impression reported four days after it happened (a batch may be up to a token's lifetime late)
    capped = campaign(frequency_caps=[{"max": 1, "window": "session"}, {"max": 1, "window": "day"}])
    caps = [CounterCap.of(cap, capped) for cap in capped.frequency_caps]
    happened = NOW - timedelta(days=4)
    session, day = counter_slots(caps, happened, SESSION, NOW)
    # Then the session's counter lives its lifetime from the report, not from the moment (already past), while
    # the day's bucket and end stay the moment's
    assert session.expires_at == window_end(CapWindow.SESSION, NOW) + EXPIRY_GRACE
    assert (day.key, day.expires_at) == (
        counter_key(capped.frequency_caps[1], capped, window_bucket(CapWindow.DAY, happened, SESSION)),
        window_end(CapWindow.DAY, happened) + EXPIRY_GRACE,
    )


ADVERTISER_DAY = {"max": 3, "window": "day", "scope": "advertiser"}


def test_an_advertiser_cap_applies_to_siblings_that_do_not_declare_it() -> None:
    capped = campaign(campaign_id="capped", frequency_caps=[ADVERTISER_DAY])
    sibling = campaign(campaign_id="sibling")
    stranger = campaign(campaign_id="stranger", advertiser_id="adv-2")
    caps = AdvertiserCaps([capped, sibling, stranger])
    [slot] = impression_counters(capped, caps.caps_of(capped), NOW, SESSION)
    # An impression of the uncapped sibling lands in the advertiser's counter...
    assert [s.key for s in impression_counters(sibling, caps.caps_of(sibling), NOW, SESSION)] == [slot.key]
    # ...and the advertiser's cap, once reached, stops the sibling too, but not another advertiser
    assert within_caps(sibling, caps.caps_of(sibling), {slot.key: 2}, NOW, SESSION)
    assert not within_caps(sibling, caps.caps_of(sibling), {slot.key: 3}, NOW, SESSION)
    assert caps.caps_of(stranger) == ()


def test_siblings_declaring_one_window_differently_share_its_counter_and_the_strictest_maximum() -> None:
    loose = campaign(campaign_id="loose", frequency_caps=[{**ADVERTISER_DAY, "max": 5}])
    strict = campaign(
        campaign_id="strict",
        frequency_caps=[{**ADVERTISER_DAY, "max": 2}, {"max": 9, "window": "week", "scope": "advertiser"}],
    )
    caps = AdvertiserCaps([loose, strict])
    expected = {(CapWindow.DAY, 2), (CapWindow.WEEK, 9)}
    for member in (loose, strict):
        in_force = caps.caps_of(member)
        assert {(cap.window, cap.max) for cap in in_force} == expected
        assert {cap.scope for cap in in_force} == {CapScope.ADVERTISER}
    assert impression_counters(loose, caps.caps_of(loose), NOW, SESSION) == impression_counters(
        strict, caps.caps_of(strict), NOW, SESSION
    )


def test_campaign_caps_stay_with_their_campaign() -> None:
    capped = campaign(campaign_id="capped", frequency_caps=[{"max": 1, "window": "day"}])
    sibling = campaign(campaign_id="sibling")
    caps = AdvertiserCaps([capped, sibling])
    assert caps.caps_of(sibling) == ()
    assert caps.caps_of(capped) == tuple(capped.frequency_caps)


def test_only_active_campaigns_put_advertiser_caps_in_force() -> None:
    paused = campaign(campaign_id="paused", status="paused", frequency_caps=[{**ADVERTISER_DAY, "max": 1}])
    sibling = campaign(campaign_id="sibling")
    caps = AdvertiserCaps([paused, sibling])
    assert caps.caps_of(sibling) == ()
    # A late impression of the paused campaign itself still counts under its own caps
    assert [(cap.window, cap.max) for cap in caps.caps_of(paused)] == [(CapWindow.DAY, 1)]


@given(
    moment=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.sampled_from(ZONES)
    ),
    session=st.sampled_from([SESSION, session_key(None, NOW), "s:other"]),
)
def test_impression_counters_are_each_windows_bucket_and_end_at_the_moment(moment: datetime, session: str) -> None:
    """The per-hour caching in impression_counters gives what the window functions give for the exact moment."""
    capped = campaign(frequency_caps=[{"max": 9, "window": window} for window in CapWindow])
    slots = impression_counters(capped, capped.frequency_caps, moment, session)
    assert [(slot.key, slot.expires_at) for slot in slots] == [
        (
            counter_key(cap, capped, window_bucket(cap.window, moment, session)),
            window_end(cap.window, moment) + EXPIRY_GRACE,
        )
        for cap in capped.frequency_caps
    ]
    assert all(slot.expires_at.utcoffset() == timedelta(0) for slot in slots)


def test_an_ad_whose_owners_have_no_counter_is_within_caps_as_the_full_check_says() -> None:
    # Given random campaigns with caps and a listener's counters for a few of them, some full
    rng = random.Random(8)
    campaigns = [
        campaign(
            campaign_id=f"c{i}",
            advertiser_id=f"a{i % 5}",
            frequency_caps=[
                {"max": rng.randint(1, 3), "window": rng.choice(["day", "session", "hour"]), "scope": scope}
                for scope in rng.sample(["campaign", "advertiser"], rng.randint(1, 2))
            ],
        )
        for i in range(40)
    ]
    session = session_key("s", NOW)
    counts: dict[str, int] = {}
    for heard in rng.sample(campaigns, 8):
        for slot in impression_counters(heard, heard.frequency_caps, NOW, session):
            counts[slot.key] = rng.randint(1, 3)
    owners = CountedOwners.of(counts)
    # Then every ad the shortcut passes is within its caps by the full check, and it passes some capped ads
    passed = [c for c in campaigns if not owners.may_have_full_cap(c)]
    assert passed
    assert all(within_caps(c, c.frequency_caps, counts, NOW, session) for c in passed)
    assert not all(within_caps(c, c.frequency_caps, counts, NOW, session) for c in campaigns)


@pytest.mark.parametrize("moment", [NOW, at("2026-11-29T23:59:59.999999").astimezone(ZONES[2])])
def test_caps_with_built_key_prefixes_say_what_the_full_check_says(moment: datetime) -> None:
    # Given random campaigns with caps in every window and a listener's counters, some full, some not
    rng = random.Random(13)
    campaigns = [
        campaign(
            campaign_id=f"c{i}",
            advertiser_id=f"a{i % 4}",
            frequency_caps=[
                {"max": rng.randint(1, 3), "window": window, "scope": scope}
                for scope, window in rng.sample([(s, w) for s in CapScope for w in CapWindow], rng.randint(1, 3))
            ],
        )
        for i in range(60)
    ]
    session = session_key("s", moment)
    counts: dict[str, int] = {}
    for heard in rng.sample(campaigns, 30):
        for slot in impression_counters(heard, heard.frequency_caps, moment, session):
            counts[slot.key] = rng.randint(1, 3)
    # When one decision checks them all with built prefixes and one dict of buckets
    buckets: dict[CapWindow, str] = {}
    states = [
        counter_state([CounterCap.of(cap, c) for cap in c.frequency_caps], counts, buckets, moment, session)
        for c in campaigns
    ]
    built = [within for within, _ in states]
    # Then each verdict is the full check's, and both verdicts occur
    assert built == [within_caps(c, c.frequency_caps, counts, moment, session) for c in campaigns]
    assert set(built) == {True, False}
    # And each exposure is the largest of the campaign's current counts
    assert [heard for _, heard in states] == [
        max(counts.get(counter_key(cap, c, window_bucket(cap.window, moment, session)), 0) for cap in c.frequency_caps)
        for c in campaigns
    ]


def test_a_counter_key_of_another_shape_sends_every_ad_to_the_full_check() -> None:
    owners = CountedOwners.of({"legacy-key": 3})
    assert owners.may_have_full_cap(campaign())


@pytest.mark.parametrize(
    "key", ["cap#campaign#c1", "cap#campaign", "caps#campaign#c1#day", "cap#listener#c1#day", "#campaign#c1#day", ""]
)
def test_a_key_not_of_a_counters_four_fields_sends_every_ad_to_the_full_check(key: str) -> None:
    owners = CountedOwners.of({"cap#campaign#c9#day#2026-11-30": 1, key: 1})
    assert owners == CountedOwners(frozenset({"c9"}), frozenset(), unknown=True)


def test_the_owners_of_counters_are_their_campaigns_and_advertisers_by_scope() -> None:
    keys = ["cap#campaign#c1#day#2026-11-30", "cap#advertiser#a1#session#s#1", "cap#campaign#c2#hour#2026-11-30T10"]
    assert CountedOwners.of(dict.fromkeys(keys, 1)) == CountedOwners(
        frozenset({"c1", "c2"}), frozenset({"a1"}), unknown=False
    )
