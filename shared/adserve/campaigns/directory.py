"""Campaigns by id, as Record needs them to know an impression's caps: cached per execution environment.

Unlike Decide's catalog it keeps every campaign whatever its status (an impression of a campaign paused a
moment ago still happened) and encodes no features, so Record never imports numpy. An id the snapshot does
not know triggers an early reload, at most once per `miss_refresh_seconds`: a campaign created after the
last load is found within seconds, and a flood of unknown ids cannot turn into a flood of Scans.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from adserve.campaigns.frequency_caps import AdvertiserCaps, CounterCap
from adserve.campaigns.model import Campaign
from adserve.core.refreshing import RefreshingValue


class CampaignSource(Protocol):
    def list_campaigns(self) -> list[Campaign]: ...


@dataclass(frozen=True)
class _Snapshot:
    by_id: dict[str, Campaign]
    advertiser_caps: AdvertiserCaps
    caps_by_id: dict[str, tuple[CounterCap, ...]]
    """Each campaign's caps in force with their counter key prefixes, resolved once at load: Record asks for them
    per impression."""


class CampaignDirectory:
    def __init__(
        self,
        source: CampaignSource,
        ttl_seconds: float,
        *,
        miss_refresh_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._miss_refresh = min(miss_refresh_seconds, ttl_seconds)
        self._snapshot = RefreshingValue(self._load, ttl_seconds, name="campaign directory", monotonic=monotonic)

    def campaign(self, campaign_id: str) -> Campaign | None:
        """The campaign, or None when it does not exist (deleted, or never created)."""
        found = self._snapshot.get().by_id.get(campaign_id)
        if found is None:
            found = self._snapshot.get_if_fresher_than(self._miss_refresh).by_id.get(campaign_id)
        return found

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
        campaigns = self._source.list_campaigns()
        by_id = {campaign.campaign_id: campaign for campaign in campaigns}
        advertiser_caps = AdvertiserCaps(campaigns)
        caps_by_id = {campaign_id: _counter_caps(advertiser_caps, campaign) for campaign_id, campaign in by_id.items()}
        return _Snapshot(by_id, advertiser_caps, caps_by_id)


def _counter_caps(advertiser_caps: AdvertiserCaps, campaign: Campaign) -> tuple[CounterCap, ...]:
    return tuple(CounterCap.of(cap, campaign) for cap in advertiser_caps.caps_of(campaign))
