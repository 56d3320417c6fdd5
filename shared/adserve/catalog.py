"""The campaign catalog as Decide sees it: loaded once per execution environment, refreshed on a short TTL.

Ad features are encoded when the catalog loads, so the hot path only stacks precomputed rows.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from adserve.campaigns import Campaign, CampaignStatus
from adserve.features import FeatureEncoder
from adserve.observability import logger
from adserve.targeting import AdCandidate
from adserve.vocabulary import Placement


class CampaignSource(Protocol):
    def list_campaigns(self) -> list[Campaign]: ...


def ad_features(campaign: Campaign, ad_id: str, ad_format: str) -> dict[str, str]:
    """The ad's side of the feature encoder's input."""
    return {
        "advertiser_id": campaign.advertiser_id,
        "campaign_id": campaign.campaign_id,
        "ad_id": ad_id,
        "category": campaign.category,
        "format": ad_format,
    }


@dataclass(frozen=True)
class CatalogSnapshot:
    by_placement: dict[Placement, list[AdCandidate]]
    loaded_at: float


class CampaignCatalog:
    def __init__(
        self,
        source: CampaignSource,
        encoder: FeatureEncoder,
        ttl_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._encoder = encoder
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._snapshot: CatalogSnapshot | None = None

    def ads_for(self, placement: Placement) -> Sequence[AdCandidate]:
        """Active ads that run in this placement; a stale snapshot keeps serving if a refresh fails."""
        snapshot = self._snapshot
        if snapshot is None or self._monotonic() - snapshot.loaded_at >= self._ttl:
            snapshot = self._refresh(snapshot)
        return snapshot.by_placement.get(placement, [])

    def _refresh(self, stale: CatalogSnapshot | None) -> CatalogSnapshot:
        try:
            campaigns = self._source.list_campaigns()
        except Exception:
            if stale is None:
                raise
            logger.exception("campaign catalog refresh failed; serving the previous snapshot")
            self._snapshot = CatalogSnapshot(stale.by_placement, self._monotonic())
            return self._snapshot
        self._snapshot = self._build(campaigns)
        logger.info("campaign catalog loaded", extra={"campaigns": len(campaigns)})
        return self._snapshot

    def _build(self, campaigns: list[Campaign]) -> CatalogSnapshot:
        by_placement: dict[Placement, list[AdCandidate]] = {}
        for campaign in sorted(campaigns, key=lambda c: c.campaign_id):
            if campaign.status is not CampaignStatus.ACTIVE:
                continue
            for creative in campaign.creatives:
                features = ad_features(campaign, creative.ad_id, creative.format.value)
                ad = AdCandidate(campaign, creative, features, self._encoder.encode_ad(features))
                for placement in campaign.placements:
                    by_placement.setdefault(placement, []).append(ad)
        return CatalogSnapshot(by_placement, self._monotonic())
