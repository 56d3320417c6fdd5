"""Which ads may be shown to this listener in this placement, before caps and scoring."""

import copy
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from adserve.campaigns.frequency_caps import CounterCap
from adserve.campaigns.model import Campaign, CampaignStatus, Creative, FrequencyCap
from adserve.core.trusted import trusted
from adserve.core.vocabulary import Placement
from adserve.decisions.api import CreativeView, DecisionRequest
from adserve.models.ctr_model import Scorer
from adserve.models.features import FeatureEncoder, candidate_features


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
    rate: float = 1.0
    """The campaign's currency in the ranking currency (``adserve.decisions.exchange_rates``); 1 for the ranking
    currency itself."""
    value: float = field(init=False)
    """``value_cpm x rate``: the value the policy ranks the ad by and its decision record logs (a CPM in the
    ranking currency; the very ``value_cpm`` when the campaign is priced in it)."""
    ad_id: str = field(init=False)
    view: CreativeView = field(init=False)
    """The creative as responses show it, built once rather than per served ad."""
    logged: dict[str, Any] = field(init=False)
    """The fields of the ad's decision-record candidate that no request changes, in the record's order."""
    counter_caps: tuple[CounterCap, ...] = field(init=False)
    """``caps`` with their counters' key prefixes, which no request changes either."""

    def __post_init__(self) -> None:
        creative, campaign = self.creative, self.campaign
        view = trusted(
            CreativeView,
            {
                "format": creative.format.value,
                "title": creative.title,
                "media_url": str(creative.media_url),
                "click_url": str(creative.click_url),
                "duration_seconds": creative.duration_seconds,
            },
        )
        object.__setattr__(self, "value", campaign.value_cpm * self.rate)
        object.__setattr__(self, "ad_id", creative.ad_id)
        object.__setattr__(self, "view", view)
        logged = {
            "ad_id": creative.ad_id,
            "campaign_id": campaign.campaign_id,
            "advertiser_id": campaign.advertiser_id,
            "features": self.features,
        }
        object.__setattr__(self, "logged", logged)
        object.__setattr__(self, "counter_caps", tuple(CounterCap.of(cap, campaign) for cap in self.caps))

    def paced(self, serve_probability: float) -> "AdCandidate":
        """This ad with another serve probability, sharing everything else built at load.

        A refresh gives every budgeted campaign its new probability: rebuilding its ads for it (view, logged
        fields, cap prefixes) cost more than the rest of a refresh that parses nothing new.
        """
        if serve_probability == self.serve_probability:
            return self
        ad = object.__new__(AdCandidate)
        for name in _AD_CANDIDATE_SLOTS:
            object.__setattr__(ad, name, getattr(self, name))
        object.__setattr__(ad, "serve_probability", serve_probability)
        return ad


_AD_CANDIDATE_SLOTS = tuple(field.name for field in fields(AdCandidate))


def listener_hour(request: DecisionRequest, now: datetime) -> int:
    """Targeting hours are listener-local; fall back to the UTC hour when the app does not say."""
    local_hour = request.listener.context.local_hour
    return now.hour if local_hour is None else local_hour


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(moment: datetime) -> int:
    """An aware instant as integer microseconds: compares exactly as the datetimes do."""
    return (moment - _EPOCH) // _MICROSECOND


_DIMENSIONS: tuple[tuple[str, Callable[[DecisionRequest, datetime], Hashable]], ...] = (
    ("countries", lambda request, _now: request.listener.country),
    ("devices", lambda request, _now: request.listener.device),
    ("age_buckets", lambda request, _now: request.listener.age_bucket),
    ("content_types", lambda request, _now: request.listener.context.content_type),
    ("genres", lambda request, _now: request.listener.context.genre),
    ("hours", listener_hour),
)
"""Each targeting list, and the request's value it must contain; an empty list admits everyone."""

PRIORS_KEPT = 2
"""Model versions whose priors an index keeps: a champion and a challenger serve at once."""

PATCHED_AT_MOST = 20
"""A refresh patches an index when at most one ad in this many was edited; past it, a build costs less."""

PERSONAL_DIMENSIONS = frozenset({"devices", "age_buckets"})
"""Targeting on the listener's own fields: a contextual decision may not use them, so only campaigns that do
not target them are eligible (models.features.CONTEXTUAL_FIELDS draws the same line for the model)."""


def _runs(campaign: Campaign, placement: Placement) -> bool:
    """What no request changes of whether the campaign serves here: active, and booked in the placement."""
    return campaign.status is CampaignStatus.ACTIVE and placement in campaign.placements


def _patched_masks(
    masks: dict[Hashable, np.ndarray], untargeted: np.ndarray, lists: list[tuple[int, Sequence[Hashable]]]
) -> tuple[dict[Hashable, np.ndarray], np.ndarray]:
    """One dimension's masks (``TargetingIndex._masks``) with the ads at some positions targeting anew: each
    position's ``lists`` entry gives its new targeting list. Copies; the masks given are left as they were."""
    untargeted = untargeted.copy()
    for position, allowed in lists:
        untargeted[position] = not allowed
    patched = {item: mask.copy() for item, mask in masks.items()}
    for position, allowed in lists:
        for item, mask in patched.items():
            mask[position] = untargeted[position] or item in allowed
    for _, allowed in lists:
        for item in allowed:
            if item not in patched:  # listed by no other ad: its mask is the untargeted ads and the edited listers
                patched[item] = untargeted.copy()
                for other, listed in lists:
                    if item in listed:
                        patched[item][other] = True
    return patched, untargeted


class TargetingIndex:
    """The ads of one placement, with what targeting needs precomputed when the catalog loads.

    A campaign matches when it is active, in flight, runs in the placement, and each targeting list is
    empty or holds the request's value. Per dimension and value the index keeps the mask of ads admitting
    it, so a request costs a few vector ANDs instead of checking every campaign.
    """

    def __init__(self, placement: Placement, ads: Sequence[AdCandidate]) -> None:
        self.placement = placement
        self.ads = list(ads)
        campaigns = [ad.campaign for ad in self.ads]
        self._static = np.array([_runs(c, placement) for c in campaigns], dtype=bool)
        self._starts = np.array([_micros(c.flight_start) for c in campaigns], dtype=np.int64)
        self._ends = np.array([_micros(c.flight_end) for c in campaigns], dtype=np.int64)
        self._dimensions = [
            (name in PERSONAL_DIMENSIONS, *self._masks(campaigns, name, value)) for name, value in _DIMENSIONS
        ]
        self._index_positions()
        self._rows = np.stack([ad.encoded for ad in self.ads]) if self.ads else np.zeros((0, 0), dtype=np.int64)
        self._values = np.array([ad.value for ad in self.ads], dtype=np.float64)
        self._codes: dict[str, int] = {}
        codes = self._codes
        self._advertisers = np.array([codes.setdefault(c.advertiser_id, len(codes)) for c in campaigns], dtype=np.int64)
        self._priors: dict[str, np.ndarray] = {}

    def _index_positions(self) -> None:
        self._positions: dict[str, list[int]] = {}
        for position, ad in enumerate(self.ads):
            self._positions.setdefault(ad.ad_id, []).append(position)
        self._position_of = {id(ad): position for position, ad in enumerate(self.ads)}

    def refreshed(self, ads: Sequence[AdCandidate]) -> "TargetingIndex":
        """The index of a refresh's *ads* for the same placement, built from this one when they line up with its
        ads position by position (a build costs tens of milliseconds a placement at 10,000 campaigns, on a
        request): what depends only on campaigns and creatives is shared where those are the same objects
        (repaced, or with new caps), and patched at the few positions whose campaign was edited."""
        if len(ads) != len(self.ads):
            return TargetingIndex(self.placement, ads)
        edited = [
            position
            for position, (new, old) in enumerate(zip(ads, self.ads, strict=True))
            if new.campaign is not old.campaign or new.creative is not old.creative or new.rate != old.rate
        ]
        if len(edited) > len(ads) // PATCHED_AT_MOST:
            return TargetingIndex(self.placement, ads)
        index = copy.copy(self)
        index.ads = list(ads)
        if edited:
            index._patch(edited)
        else:  # the priors too: they depend on neither pacing nor caps
            index._priors = dict(self._priors)
            index._position_of = {id(ad): position for position, ad in enumerate(index.ads)}
        return index

    def _patch(self, edited: list[int]) -> None:
        """Rebuild the columns and masks at *edited* positions, on copies: the index this was copied from may
        still be serving."""
        ads, placement = self.ads, self.placement
        self._static, self._starts, self._ends = self._static.copy(), self._starts.copy(), self._ends.copy()
        self._rows, self._values, self._advertisers = self._rows.copy(), self._values.copy(), self._advertisers.copy()
        self._codes = dict(self._codes)
        for position in edited:
            ad, campaign = ads[position], ads[position].campaign
            self._static[position] = _runs(campaign, placement)
            self._starts[position] = _micros(campaign.flight_start)
            self._ends[position] = _micros(campaign.flight_end)
            self._rows[position] = ad.encoded
            self._values[position] = ad.value
            self._advertisers[position] = self._codes.setdefault(campaign.advertiser_id, len(self._codes))
        self._dimensions = [
            (
                personal,
                value,
                *_patched_masks(masks, untargeted, [(p, getattr(ads[p].campaign.targeting, name)) for p in edited]),
            )
            for (personal, value, masks, untargeted), (name, _) in zip(self._dimensions, _DIMENSIONS, strict=True)
        ]
        self._index_positions()
        self._priors = {}

    @staticmethod
    def _masks(
        campaigns: list[Campaign], name: str, value: Callable[[DecisionRequest, datetime], Hashable]
    ) -> tuple[Callable[[DecisionRequest, datetime], Hashable], dict[Hashable, np.ndarray], np.ndarray]:
        """(the request's value, mask per listed value, mask for any other value: the untargeted ads)."""
        lists: list[Sequence[Hashable]] = [getattr(c.targeting, name) for c in campaigns]
        untargeted = np.array([not allowed for allowed in lists], dtype=bool)
        listing: dict[Hashable, list[int]] = {}
        for position, allowed in enumerate(lists):
            for item in allowed:
                listing.setdefault(item, []).append(position)
        masks: dict[Hashable, np.ndarray] = {}
        for item, positions in listing.items():
            masks[item] = untargeted.copy()
            masks[item][positions] = True
        return value, masks, untargeted

    def positions(self, ads: Sequence[AdCandidate]) -> np.ndarray:
        """Where some of this index's ads sit in its load-time arrays."""
        position_of = self._position_of
        return np.fromiter((position_of[id(ad)] for ad in ads), dtype=np.intp, count=len(ads))

    def priors(self, model: Scorer, encoder: FeatureEncoder) -> np.ndarray:
        """Per ad, its value (``value_cpm`` in the ranking currency) ``x`` the model's score for an anonymous
        listener: pre-ranking's key
        (``adserve.decisions.prerank``), one batched predict per model version for the snapshot's lifetime.
        The candidate fields are unknown too (``candidate_features(None)``): a prior knows no exposure."""
        priors = self._priors.get(model.version)
        if priors is None:
            anonymous = encoder.encode_listener({})
            unknown = encoder.encode_candidates([candidate_features(None)] * len(self.ads))
            scores = model.predict(encoder.encode(anonymous, self._rows, unknown)) if self.ads else np.zeros(0)
            priors = self._values * np.asarray(scores, dtype=np.float64)
            if len(self._priors) >= PRIORS_KEPT:  # the oldest version's: refreshes carry the cache over
                del self._priors[next(iter(self._priors))]
            self._priors[model.version] = priors
        return priors

    def advertiser_codes(self, positions: np.ndarray) -> np.ndarray:
        """The advertiser of each ad at ``positions``, as a code (equal codes, equal advertisers)."""
        return self._advertisers.take(positions)

    def columns(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Encoded rows, values (CPMs in the ranking currency, ``AdCandidate.value``) and advertiser codes of the ads
        at ``positions``, cut from load-time arrays."""
        return self._rows.take(positions, axis=0), self._values[positions], self._advertisers[positions]

    def __len__(self) -> int:
        return len(self.ads)

    def select(self, request: DecisionRequest, now: datetime, *, contextual: bool = False) -> list[AdCandidate]:
        """Ads whose campaign targets this request, minus the ads the caller asked to exclude, in order.

        A contextual decision admits, on the listener's own fields, only the ads that do not target them.
        """
        return self.at(self.select_positions(request, now, contextual=contextual))

    def at(self, positions: np.ndarray) -> list[AdCandidate]:
        """The ads at ``positions``, in their order."""
        ads = self.ads
        return [ads[position] for position in positions.tolist()]

    def select_positions(self, request: DecisionRequest, now: datetime, *, contextual: bool = False) -> np.ndarray:
        """Where ``select``'s ads sit in this index: a decision that filters none of them out cuts its columns
        with these, without looking each ad up again (``positions``)."""
        moment = _micros(now)
        mask = self._static & (self._starts <= moment) & (moment < self._ends)
        for personal, value, masks, untargeted in self._dimensions:
            mask &= untargeted if personal and contextual else masks.get(value(request, now), untargeted)
        for ad_id in request.exclude_ads:
            for position in self._positions.get(ad_id, ()):
                mask[position] = False
        return np.flatnonzero(mask)
