"""Which ads may be shown to this listener in this placement, before caps and scoring."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from adserve.campaigns.model import Campaign, CampaignStatus, Creative, FrequencyCap
from adserve.decisions.api import DecisionRequest


@dataclass(frozen=True, slots=True)
class AdCandidate:
    """One creative of one campaign, with its model features encoded and its caps resolved when the catalog loads."""

    campaign: Campaign
    creative: Creative
    features: dict[str, str]
    encoded: np.ndarray
    caps: tuple[FrequencyCap, ...]
    """Every cap in force for the campaign, its advertiser's included (``AdvertiserCaps.caps_of``)."""
    serve_probability: float = 1.0
    """The pacing step's throttle for the campaign, attached when the catalog loads (``adserve.delivery.pacing``)."""

    @property
    def ad_id(self) -> str:
        return self.creative.ad_id


def listener_hour(request: DecisionRequest, now: datetime) -> int:
    """Targeting hours are listener-local; fall back to the UTC hour when the app does not say."""
    local_hour = request.listener.context.local_hour
    return now.hour if local_hour is None else local_hour


def campaign_matches(campaign: Campaign, request: DecisionRequest, now: datetime) -> bool:
    """Status, flight and every targeting dimension; an empty targeting list admits everyone."""
    listener = request.listener
    targeting = campaign.targeting
    return (
        campaign.status is CampaignStatus.ACTIVE
        and campaign.flight_start <= now < campaign.flight_end
        and request.placement in campaign.placements
        and _admits(targeting.countries, listener.country)
        and _admits(targeting.devices, listener.device)
        and _admits(targeting.age_buckets, listener.age_bucket)
        and _admits(targeting.content_types, listener.context.content_type)
        and _admits(targeting.genres, listener.context.genre)
        and _admits(targeting.hours, listener_hour(request, now))
    )


def _admits(allowed: Sequence[object], value: object) -> bool:
    return not allowed or value in allowed


def select_candidates(ads: Iterable[AdCandidate], request: DecisionRequest, now: datetime) -> Sequence[AdCandidate]:
    """Ads whose campaign targets this request, minus the ads the caller asked to exclude."""
    excluded = set(request.exclude_ads)
    verdicts: dict[str, bool] = {}
    selected = []
    for ad in ads:
        if ad.ad_id in excluded:
            continue
        campaign_id = ad.campaign.campaign_id
        if campaign_id not in verdicts:
            verdicts[campaign_id] = campaign_matches(ad.campaign, request, now)
        if verdicts[campaign_id]:
            selected.append(ad)
    return selected
