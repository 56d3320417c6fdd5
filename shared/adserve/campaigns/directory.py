"""Campaigns by id, as Record needs them to know an impression's caps: cached per execution environment.

Unlike Decide's catalog it keeps every campaign whatever its status (an impression of a campaign paused a
moment ago still happened) and encodes no features, so Record never imports numpy. An id the snapshot does
not know triggers an early reload, at most once per `miss_refresh_seconds`: a campaign created after the
last load is found within seconds, and a flood of unknown ids cannot turn into a flood of Scans. An id still
unknown whose decision is newer than the load (``decided_at``, less ``LISTING_LAG``) is a campaign created
since, not a deleted one: ``CampaignNotYetListedError`` fails its record, and SQS redelivers it once the
directory can list it, rather than its impression being acknowledged and never counted.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from adserve.campaigns.frequency_caps import AdvertiserCaps, CounterCap
from adserve.campaigns.model import Campaign
from adserve.core.decision_ids import decided_at
from adserve.core.errors import CampaignNotYetListedError
from adserve.core.refreshing import FIRST_LOAD_RETRY_SECONDS, RefreshingValue

LISTING_LAG: Final = timedelta(seconds=10)
"""How long a campaign written before a load may still be missing from its Scan (eventually consistent), with
the clocks of Decide and Record apart: a decision this much older than the load named a campaign it listed."""


class CampaignSource(Protocol):
    def list_campaigns(self) -> list[Campaign]: ...


@dataclass(frozen=True)
class _Snapshot:
    by_id: dict[str, Campaign]
    advertiser_caps: AdvertiserCaps
    caps_by_id: dict[str, tuple[CounterCap, ...]]
    """Each campaign's caps in force with their counter key prefixes, resolved once at load: Record asks for them
    per impression."""
    loaded_at: datetime
    """The wall-clock time the load began: campaigns created before it (less LISTING_LAG) are listed."""


class CampaignDirectory:
    def __init__(
        self,
        source: CampaignSource,
        ttl_seconds: float,
        *,
        miss_refresh_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._source = source
        self._clock = clock
        self._monotonic = monotonic
        self._first_failure: tuple[Exception, float] | None = None
        """The failed first load's error and when: the answer for FIRST_LOAD_RETRY_SECONDS (``_current``)."""
        self._miss_refresh = min(miss_refresh_seconds, ttl_seconds)
        self._snapshot = RefreshingValue(self._load, ttl_seconds, name="campaign directory", monotonic=monotonic)

    def campaign(self, campaign_id: str, *, decision_id: str | None = None) -> Campaign | None:
        """The campaign, or None when it does not exist (deleted, or never created).

        Raises CampaignNotYetListedError for an id not listed although its outcome's decision (``decided_at`` of
        *decision_id*, read only on a miss; None, or an id that does not say when: unknown) is newer than the
        load: the campaign was created since.
        """
        found = self._current(self._snapshot.get).by_id.get(campaign_id)
        if found is None:
            snapshot = self._current(lambda: self._snapshot.get_if_fresher_than(self._miss_refresh))
            found = snapshot.by_id.get(campaign_id)
            decided = None if found is not None or decision_id is None else decided_at(decision_id)
            if decided is not None and decided > snapshot.loaded_at - LISTING_LAG:
                raise CampaignNotYetListedError(
                    f"campaign {campaign_id} is not listed yet: its decision is newer than the directory's load"
                )
        return found

    def _current(self, read: Callable[[], _Snapshot]) -> _Snapshot:
        """*read*'s snapshot; until a first load succeeds, its failure is the answer for FIRST_LOAD_RETRY_SECONDS:
        a batch of a hundred records asked for the directory a hundred times, a full Scan each while the table
        failed (and, with the table hung, ran the invocation past its timeout)."""
        failure = self._first_failure
        if failure is not None and self._monotonic() - failure[1] < FIRST_LOAD_RETRY_SECONDS:
            raise failure[0].with_traceback(None)
        try:
            snapshot = read()
        except Exception as error:
            if self._snapshot.age_seconds() == float("inf"):  # never loaded: nothing to serve meanwhile
                self._first_failure = (error, self._monotonic())
            raise
        self._first_failure = None
        return snapshot

    def counter_caps_of(self, campaign: Campaign) -> tuple[CounterCap, ...]:
        """The caps an impression of the campaign counts in, its advertiser's caps declared by siblings included,
        with their counter key prefixes."""
        snapshot = self._snapshot.get()
        if snapshot.by_id.get(campaign.campaign_id) is campaign:
            return snapshot.caps_by_id[campaign.campaign_id]
        return _counter_caps(snapshot.advertiser_caps, campaign)  # a campaign from an earlier snapshot

    def advertiser_caps_of(self, advertiser_id: str) -> tuple[CounterCap, ...]:
        """The advertiser caps in force for an advertiser, for an impression of a campaign no longer listed."""
        caps = self._snapshot.get().advertiser_caps.of_advertiser(advertiser_id)
        return tuple(CounterCap.of_advertiser(cap, advertiser_id) for cap in caps)

    def _load(self) -> _Snapshot:
        loaded_at = self._clock()
        campaigns = self._source.list_campaigns()
        by_id = {campaign.campaign_id: campaign for campaign in campaigns}
        advertiser_caps = AdvertiserCaps(campaigns)
        caps_by_id = {campaign_id: _counter_caps(advertiser_caps, campaign) for campaign_id, campaign in by_id.items()}
        return _Snapshot(by_id, advertiser_caps, caps_by_id, loaded_at)


def _counter_caps(advertiser_caps: AdvertiserCaps, campaign: Campaign) -> tuple[CounterCap, ...]:
    return tuple(CounterCap.of(cap, campaign) for cap in advertiser_caps.caps_of(campaign))
