"""Decide's catalog when the campaign store fails: a stale snapshot serves for a bounded time, then nothing."""

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from adserve.campaigns.model import Campaign
from adserve.core.errors import ConfigurationError, DeliveryStoreUnavailableError
from adserve.core.observability import MetricName, metrics
from adserve.core.refreshing import FIRST_LOAD_RETRY_SECONDS, RefreshingValue, Reloadables, reload_due, reloaded_first
from adserve.core.vocabulary import Placement
from adserve.decisions.catalog import CampaignCatalog
from adserve.delivery.pacing import PacingState
from adserve.models.features import FeatureEncoder
from adserve.wiring.settings import DecideSettings

from devstack.fakes import InMemoryLogStore, InMemoryPacingStore
from tests.support.builders import NOW, campaign, pacing_state

TTL = 30.0
MAX_AGE = 300.0


@dataclass
class FailingAfterFirstLoad:
    """A campaign store that answers once, then fails every Scan until told to recover."""

    campaigns: list[Campaign]
    failing: bool = False
    scans: int = 0

    def list_campaigns(self) -> list[Campaign]:
        self.scans += 1
        if self.failing and self.scans > 1:
            raise ConnectionError("campaigns table unreachable")
        return list(self.campaigns)


@dataclass
class Clock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def emitted() -> Iterator[dict[str, Any]]:
    """The metrics recorded during the test (Powertools keeps them until a flush)."""
    metrics.clear_metrics()
    yield metrics.metric_set
    metrics.clear_metrics()


def values(emitted: dict[str, Any], name: MetricName) -> list[float]:
    return list(emitted[name]["Value"]) if name in emitted else []


def catalog_over(source: FailingAfterFirstLoad, clock: Clock) -> CampaignCatalog:
    return CampaignCatalog(
        source,
        FeatureEncoder(),
        TTL,
        max_age_seconds=MAX_AGE,
        pacing=InMemoryPacingStore(),
        pacing_max_age=timedelta(minutes=5),
        monotonic=clock,
    )


def paced_catalog(
    source: FailingAfterFirstLoad, pacing: InMemoryPacingStore, clock: Clock, archive: InMemoryLogStore | None = None
) -> CampaignCatalog:
    """A catalog refreshing every TTL whose wall clock moves with its monotonic one (NOW at 1,000 s)."""
    return CampaignCatalog(
        source,
        FeatureEncoder(),
        TTL,
        max_age_seconds=MAX_AGE,
        pacing=pacing,
        pacing_max_age=timedelta(minutes=5),
        monotonic=clock,
        clock=lambda: NOW + timedelta(seconds=clock.now - 1_000.0),
        archive=archive,
    )


def paced_ads(catalog: CampaignCatalog) -> list[str]:
    """The ads served in the mid-roll: a campaign paced to p = 0 stays in the index, but the throttle never draws it."""
    return [ad.ad_id for ad in catalog.ads_for(Placement.AUDIO_MIDROLL).ads if ad.serve_probability > 0]


def test_a_failing_store_is_served_from_the_snapshot_until_the_max_age_then_nothing(emitted: dict[str, Any]) -> None:
    # Given a catalog loaded once, after which every refresh fails
    source = FailingAfterFirstLoad([campaign(campaign_id="paused-since")])
    clock = Clock()
    catalog = catalog_over(source, clock)
    assert [ad.ad_id for ad in catalog.ads_for(Placement.AUDIO_MIDROLL).ads] == ["paused-since-ad-1"]
    source.failing = True
    # When refreshes keep failing (one attempt per TTL) for less than the max age, the snapshot keeps serving
    for _ in range(9):
        clock.now += TTL
        assert [ad.ad_id for ad in catalog.ads_for(Placement.AUDIO_MIDROLL).ads] == ["paused-since-ad-1"]
    assert source.scans == 10
    assert values(emitted, MetricName.CATALOG_STALE) == []
    assert values(emitted, MetricName.CATALOG_AGE_SECONDS) == [TTL * n for n in range(10)]
    # Then past the max age nothing is served, and each refusal is counted
    clock.now += MAX_AGE - 9 * TTL + 1
    assert catalog.ads_for(Placement.AUDIO_MIDROLL).ads == []
    assert catalog.ads_for(Placement.AUDIO_PREROLL).ads == []
    assert source.scans == 11
    assert values(emitted, MetricName.CATALOG_STALE) == [1.0, 1.0]
    assert values(emitted, MetricName.CATALOG_AGE_SECONDS)[-2:] == [MAX_AGE + 1, MAX_AGE + 1]


def test_a_budgeted_campaign_sits_out_once_its_state_is_too_old_or_was_read_too_long_ago_and_only_it() -> None:
    # Given two budgeted campaigns loaded with pacing states 250 s and 10 s old (fresh for 50 s and 290 s more:
    # the first one's step has stopped updating it, say its flight just ended) and an unbudgeted one
    loaded_at = NOW
    daily = {"unit": "impressions", "daily": 1_000}
    stopped, healthy = campaign(campaign_id="stopped", budget=daily), campaign(campaign_id="healthy", budget=daily)
    pacing = InMemoryPacingStore()
    pacing.put(pacing_state(stopped, 1.0, loaded_at - timedelta(seconds=250)))
    pacing.put(pacing_state(healthy, 1.0, loaded_at - timedelta(seconds=10)))
    source, clock = FailingAfterFirstLoad([stopped, healthy, campaign(campaign_id="free")]), Clock()
    catalog = paced_catalog(source, pacing, clock)

    assert paced_ads(catalog) == ["free-ad-1", "healthy-ad-1", "stopped-ad-1"]
    # When every refresh fails (nobody reads the pacing table again)
    source.failing = True
    clock.now += 49
    assert paced_ads(catalog) == ["free-ad-1", "healthy-ad-1", "stopped-ad-1"]
    # Then the first sits out once its state is past the pacing max age
    clock.now += 2
    assert paced_ads(catalog) == ["free-ad-1", "healthy-ad-1"]
    # and the other once the states were read a pacing step and a refresh ago (90 s): the step may have stopped it
    # since, unseen; the unbudgeted one serves on
    clock.now += 38
    assert paced_ads(catalog) == ["free-ad-1", "healthy-ad-1"]
    clock.now += 2
    assert paced_ads(catalog) == ["free-ad-1"]


def test_a_refresh_that_succeeds_again_serves_again() -> None:
    source = FailingAfterFirstLoad([campaign()], failing=True)
    clock = Clock()
    catalog = catalog_over(source, clock)
    catalog.ads_for(Placement.AUDIO_MIDROLL)
    clock.now += MAX_AGE + TTL
    assert catalog.ads_for(Placement.AUDIO_MIDROLL).ads == []
    source.failing = False
    clock.now += TTL
    assert [ad.campaign.campaign_id for ad in catalog.ads_for(Placement.AUDIO_MIDROLL).ads] == ["cmp-1"]


def test_a_failed_reload_neither_makes_the_value_younger_nor_hammers_the_source() -> None:
    loads: list[float] = []
    clock = Clock()

    def load() -> str:
        loads.append(clock.now)
        if len(loads) > 1:
            raise ConnectionError("down")
        return "first"

    value = RefreshingValue(load, 10.0, name="test", monotonic=clock)
    assert value.age_seconds() == float("inf")
    assert value.get() == "first"
    clock.now += 10
    assert value.get() == "first"  # the reload failed; the previous value serves
    assert value.age_seconds() == 10
    clock.now += 5
    assert value.get() == "first"
    assert len(loads) == 2  # the next attempt waits a TTL from the failed one
    assert value.age_seconds() == 15


def test_only_the_first_load_tries_again_and_it_raises_the_last_error_when_every_attempt_fails() -> None:
    # Without a value nothing can be served: the first load tries again at once; a reload does not (the
    # previous value serves until the next TTL)
    clock = Clock()
    answers: list[str | Exception] = [TimeoutError("slow"), TimeoutError("slow"), "keys", TimeoutError("slow"), "new"]

    def load() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    value = RefreshingValue(load, 10.0, name="test", first_load_attempts=3, monotonic=clock)
    assert value.get() == "keys"
    clock.now += 10
    assert value.get() == "keys"  # one reload attempt, failed
    assert answers == ["new"]
    failing = RefreshingValue(lambda: int("x"), 10.0, name="test", first_load_attempts=2, monotonic=clock)
    with pytest.raises(ValueError, match="invalid literal"):
        failing.get()


@pytest.mark.parametrize("max_age", ["30", "10"])
def test_a_max_age_within_the_refresh_interval_is_refused(max_age: str) -> None:
    environ = {
        "CAMPAIGNS_TABLE_NAME": "c",
        "PACING_TABLE_NAME": "p",
        "FREQUENCY_CAPS_TABLE_NAME": "f",
        "OUTCOMES_QUEUE_URL": "q",
        "LOGS_BUCKET_NAME": "l",
        "SIGNING_KEY_SECRET_ID": "s",
        "PSEUDONYM_KEY_SECRET_ID": "k",
        "MODEL_DIR": "/opt/model",
        "MODELS_BUCKET_NAME": "m",
        "CATALOG_TTL_SECONDS": "30",
        "CATALOG_MAX_AGE_SECONDS": max_age,
    }
    with pytest.raises(ConfigurationError, match="CATALOG_MAX_AGE_SECONDS"):
        DecideSettings.from_env(environ)
    assert DecideSettings.from_env({**environ, "CATALOG_MAX_AGE_SECONDS": "31"}).catalog_max_age_seconds == 31
    # A TTL above the default max age is refused too: its snapshot would expire before each refresh
    del environ["CATALOG_MAX_AGE_SECONDS"]
    with pytest.raises(ConfigurationError, match="CATALOG_MAX_AGE_SECONDS"):
        DecideSettings.from_env({**environ, "CATALOG_TTL_SECONDS": "400"})


def test_explain_reads_its_index_and_its_campaigns_from_one_load() -> None:
    # Given a catalog reloaded on every read (TTL 0, as the settings allow) whose table gains a campaign
    class Growing:
        def __init__(self) -> None:
            self.scans = 0

        def list_campaigns(self) -> list[Campaign]:
            self.scans += 1
            return [campaign(campaign_id="old")] + ([campaign(campaign_id="new")] if self.scans > 1 else [])

    catalog = CampaignCatalog(
        Growing(),
        FeatureEncoder(),
        0,
        max_age_seconds=MAX_AGE,
        pacing=InMemoryPacingStore(),
        pacing_max_age=timedelta(minutes=5),
    )
    # When explain asks for its view, before and after the campaign lands
    for _ in range(2):
        index, campaigns = catalog.view(Placement.AUDIO_MIDROLL)
        # Then the index holds exactly the listed campaigns' ads: the two come from the same load
        assert {ad.campaign.campaign_id for ad in index.ads} == {listed.campaign_id for listed in campaigns}


class Counting:
    """A loader that counts its loads and answers the count."""

    def __init__(self) -> None:
        self.loads = 0

    def __call__(self) -> int:
        self.loads += 1
        return self.loads


def test_the_due_values_and_the_never_loaded_ones_reload_at_once_and_the_others_wait_for_their_ttl() -> None:
    # Given two values past their TTL and one never loaded (an init whose read failed), whose loads each wait until
    # all three run (one after the other, the first would give up at the barrier and keep its value), and one
    # within its TTL
    clock = Clock()
    together = threading.Barrier(3, timeout=30)
    waiting = [False]

    def meeting(loader: Counting) -> Callable[[], int]:
        def load() -> int:
            if waiting[0]:
                together.wait()
            return loader()

        return load

    loaders = [Counting() for _ in range(4)]
    due = [
        RefreshingValue(meeting(loader), TTL, name=f"due{n}", monotonic=clock) for n, loader in enumerate(loaders[:2])
    ]
    fresh = RefreshingValue(loaders[2], 10 * TTL, name="fresh", monotonic=clock)
    unloaded = RefreshingValue(meeting(loaders[3]), TTL, name="unloaded", monotonic=clock)
    for value in (*due, fresh):
        value.get()
    clock.now += TTL
    waiting[0] = True
    values = [value.reloadable() for value in (*due, fresh, unloaded)]
    assert [value.cache.due() for value in values] == [True, True, False, False]
    # When the due ones are reloaded
    still_unloaded = reload_due(values)
    # Then the due values reloaded and the unloaded one loaded, all together; the fresh one was not read; none is
    # due or unloaded any more
    assert [loader.loads for loader in loaders] == [2, 2, 1, 1]
    assert [value.peek() for value in (*due, unloaded)] == [2, 2, 1]
    assert not still_unloaded
    assert not any(value.cache.due() for value in values)


def test_a_single_due_value_reloads_on_the_callers_thread() -> None:
    clock, threads = Clock(), list[str]()

    def load() -> int:
        threads.append(threading.current_thread().name)
        return len(threads)

    value = RefreshingValue(load, TTL, name="keys", monotonic=clock)
    value.get()
    clock.now += TTL
    reload_due([value.reloadable()])
    assert threads == [threading.current_thread().name] * 2
    assert value.peek() == 2


def test_within_a_block_no_listed_value_reloads_after_the_entry_even_one_that_falls_due_in_it() -> None:
    # Given a value reloaded on every request (TTL 0) and another that falls due while the block's entry reloads
    # the first (a slow catalog, the keys due a moment later), both listed for the block, and one not listed
    clock = Clock()
    slow_loads, keys_loads, other_loads = Counting(), Counting(), Counting()

    def slow() -> int:
        clock.now += 2.2
        return slow_loads()

    catalog = RefreshingValue(slow, 0.0, name="catalog", monotonic=clock)
    keys = RefreshingValue(keys_loads, 1.0, name="keys", monotonic=clock)
    unlisted = RefreshingValue(other_loads, 1.0, name="unlisted", monotonic=clock)
    for value in (catalog, keys, unlisted):
        value.get()
    clock.now += 0.5
    # When a block (a decision) reloads the due listed value first, then reads each twice
    with reloaded_first(Reloadables([catalog.reloadable(), keys.reloadable()])):
        reads = [value.get() for value in (catalog, keys, unlisted, catalog, keys, unlisted)]
    # Then the catalog reloaded once, on entry, and the keys served as held: no reload of a listed value started
    # after the entry's, so their time budgets do not add up on one decision. The unlisted one reloaded on its
    # first read, as it would anywhere (a block holds only what it reloads)
    assert reads == [2, 1, 2, 2, 1, 2]
    # And outside a block (or in the next one) a due value reloads as ever
    assert (catalog.get(), keys.get()) == (3, 2)


def test_a_restored_value_is_due_at_once_and_after_a_failed_reload_again_within_seconds_not_a_ttl() -> None:
    clock, calls = Clock(), [0]

    def load() -> int:
        calls[0] += 1
        if calls[0] == 2:
            raise ConnectionError("secrets manager unreachable")
        return calls[0]

    value = RefreshingValue(load, TTL, name="keys", monotonic=clock)
    value.get()
    value.expire()  # a SnapStart restore: held for an unknown time
    assert value.due()
    reload_due([value.reloadable()])
    assert (calls, value.peek(), value.due()) == ([2], 1, False)
    clock.now += FIRST_LOAD_RETRY_SECONDS
    assert value.due()
    assert value.get() == 3


@dataclass
class FlakyPacingStore(InMemoryPacingStore):
    """The pacing table, throttled (every Scan refused) while ``failing``."""

    failing: bool = False

    def list_states(self) -> dict[str, PacingState]:
        if self.failing:
            raise DeliveryStoreUnavailableError("pacing table throttled")
        return super().list_states()


def test_a_refresh_that_cannot_read_the_pacing_table_keeps_the_states_it_read_a_step_and_a_refresh(
    emitted: dict[str, Any],
) -> None:
    # Given a budgeted campaign loaded with a pacing state 100 s old (a large catalog's step paces it in turns: a
    # state read on time may be that old) and an unbudgeted one; refreshes every 30 s, pacing steps every 60 s
    loaded_at = NOW
    budgeted = campaign(campaign_id="budgeted", budget={"unit": "impressions", "daily": 1_000})
    pacing = FlakyPacingStore()
    pacing.put(pacing_state(budgeted, 1.0, loaded_at - timedelta(seconds=100)))
    clock = Clock()
    catalog = paced_catalog(FailingAfterFirstLoad([budgeted, campaign(campaign_id="free")]), pacing, clock)

    assert paced_ads(catalog) == ["budgeted-ad-1", "free-ad-1"]
    # When the next refreshes cannot read the pacing table (the campaigns table answers)
    pacing.failing = True
    clock.now += TTL + 1  # read 31 s ago
    # Then the budgeted campaign keeps serving on the state it had, and the failure is counted
    assert paced_ads(catalog) == ["budgeted-ad-1", "free-ad-1"]
    assert values(emitted, MetricName.PACING_STATE_UNREADABLE) == [1.0]
    clock.now += TTL  # 61 s
    assert paced_ads(catalog) == ["budgeted-ad-1", "free-ad-1"]
    clock.now += 28  # 89 s
    assert paced_ads(catalog) == ["budgeted-ad-1", "free-ad-1"]
    # but not once the states were read a step and a refresh ago (the step may have stopped it meanwhile)
    clock.now += 2
    assert paced_ads(catalog) == ["free-ad-1"]
    clock.now += TTL
    assert paced_ads(catalog) == ["free-ad-1"]
    assert values(emitted, MetricName.PACING_STATE_UNREADABLE) == [1.0] * 4  # one a refresh: 31, 61, 91, 121 s


def test_a_budgeted_campaign_sits_out_90_s_after_its_read_however_long_the_load_took_after_it() -> None:
    # Given a load whose catalog snapshot takes 5 s to put after the pacing table was read, then failing refreshes
    loaded_at, clock = NOW, Clock()
    budgeted = campaign(campaign_id="budgeted", budget={"unit": "impressions", "daily": 1_000})
    pacing = InMemoryPacingStore()
    pacing.put(pacing_state(budgeted, 1.0, loaded_at - timedelta(seconds=10)))

    class SlowArchive(InMemoryLogStore):
        def put_if_absent(self, key: str, body: bytes) -> None:
            clock.now += 5
            super().put_if_absent(key, body)

    source = FailingAfterFirstLoad([budgeted, campaign(campaign_id="free")])
    catalog = paced_catalog(source, pacing, clock, SlowArchive())

    assert paced_ads(catalog) == ["budgeted-ad-1", "free-ad-1"]
    source.failing = True
    # Then it serves until 90 s after the read, not 90 s after the load's end
    clock.now = 1_000.0 + 89
    assert paced_ads(catalog) == ["budgeted-ad-1", "free-ad-1"]
    clock.now = 1_000.0 + 91
    assert paced_ads(catalog) == ["free-ad-1"]


def test_a_restored_catalog_whose_reload_failed_reports_its_age_as_json_can_carry_it(emitted: dict[str, Any]) -> None:
    # Given a catalog restored from a snapshot (of unknown age) whose reload fails: no ad served
    clock = Clock()
    source = FailingAfterFirstLoad([campaign(campaign_id="restored")])
    catalog = catalog_over(source, clock)
    catalog.warm()
    catalog.expire()
    source.failing = True
    assert catalog.ads_for(Placement.AUDIO_MIDROLL).ads == []
    # Then its age is just past the max age, not Infinity, which no EMF line (JSON) can carry, and it is stale
    assert values(emitted, MetricName.CATALOG_AGE_SECONDS) == [MAX_AGE + 1]
    assert values(emitted, MetricName.CATALOG_STALE) == [1.0]
    json.dumps(dict(emitted), allow_nan=False)
