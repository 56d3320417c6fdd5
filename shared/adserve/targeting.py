"""Which ads may be shown to this listener in this placement, before caps and scoring."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from adserve.campaigns import Campaign, CampaignStatus, Creative
from adserve.decision_api import DecisionRequest


@dataclass(frozen=True, slots=True)
class AdCandidate:
    """One creative of one campaign, with its model features encoded once when the catalog loads."""

    campaign: Campaign
    creative: Creative
    features: dict[str, str]
    encoded: np.ndarray

    @property
    def ad_id(self) -> str:
        return self.creative.ad_id


def listener_hour(request: DecisionRequest, now: datetime) -> int:
    """Targeting hours are listener-local; fall back to the UTC hour when the app does not say."""
    local_hour = request.listener.context.local_hour
    return now.hour if local_hour is None else local_hour


def campaign_matches(campaign: Campaign, request: DecisionRequest, now: datetime) -> bool:
    """Status, flight and every targeting dimension; an empty targeting list admits everyone."""
    if campaign.status is not CampaignStatus.ACTIVE:
        return False
    if not campaign.flight_start <= now < campaign.flight_end:
        return False
    if request.placement not in campaign.placements:
        return False
    listener = request.listener
    targeting = campaign.targeting
    if targeting.countries and listener.country not in targeting.countries:
        return False
    if targeting.devices and listener.device not in targeting.devices:
        return False
    if targeting.age_buckets and listener.age_bucket not in targeting.age_buckets:
        return False
    if targeting.content_types and listener.context.content_type not in targeting.content_types:
        return False
    if targeting.genres and listener.context.genre not in targeting.genres:
        return False
    return not targeting.hours or listener_hour(request, now) in targeting.hours


def select_candidates(
    ads: Iterable[AdCandidate], request: DecisionRequest, now: datetime
) -> Sequence[AdCandidate]:
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
