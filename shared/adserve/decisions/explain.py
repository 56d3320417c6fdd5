"""Explain mode's rules: for one ad of the catalog, the first rule of Decide's pipeline that removes it.

The targeting rules here restate the catalog's load (status, then a currency without an exchange rate: such a
campaign is in no index) and ``TargetingIndex.select`` per ad, in its order (status, flight, placement,
each dimension, the request's exclusions, then the consent mode's ban on targeting the listener's own
fields), so that the explanation can name the rule and the value; tests hold the two to the same verdicts.
The later rules (pacing, consent to capping, caps, the policy) are judged in ``DecisionService`` with the very
functions the serving path uses. Nothing here runs unless a request asks for an explanation.
"""

from collections import Counter
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Final

import numpy as np

from adserve.campaigns.booking import not_served
from adserve.campaigns.currencies import ExchangeRates
from adserve.campaigns.model import Campaign, FrequencyCap
from adserve.core.trusted import trusted
from adserve.core.vocabulary import PLAYS, Placement
from adserve.decisions.api import CapState, Contributions, DecisionRequest, ExplainedAd, Rule
from adserve.decisions.targeting import PERSONAL_DIMENSIONS, listener_hour
from adserve.models.factorization import FmTerms, pairs_of

DIMENSIONS: tuple[str, ...] = ("countries", "devices", "age_buckets", "content_types", "genres", "hours")
"""Targeting dimensions in the order ``TargetingIndex`` applies them."""


MAX_EXPLAINED_BYTES: Final = 4 * 1024 * 1024
"""The JSON of the ads an explanation lists, at most: Lambda's synchronous response is at most 6 MB, in which the
body's quotes are escaped too, and an explanation of every ad of 10,000 campaigns, 500 of them scored, took 5.7 MB."""
ENTRY_BYTES_BOUND: Final = 16 * 1024
"""More than the JSON of any one explained ad (a test holds it to the largest it builds): a catalog of up to
``MAX_EXPLAINED_BYTES`` / this many ads is listed whole without measuring each."""
_RULE_ORDER: Final = {rule: order for order, rule in enumerate(Rule)}


def listed(
    ads: Sequence[ExplainedAd], max_bytes: int = MAX_EXPLAINED_BYTES
) -> tuple[list[ExplainedAd], dict[Rule, int]]:
    """The ads an explanation lists, in their order, and how many of each rule it leaves out to stay within
    *max_bytes*.

    Those of the earliest rules go first (a paused campaign says least about this decision, a scored ad most),
    each rule's from the end of the list: what stays is every ad a later rule decided and the first of the rule
    cut into.
    """
    if len(ads) * ENTRY_BYTES_BOUND <= max_bytes:
        return list(ads), {}
    sizes = [len(ad.model_dump_json()) for ad in ads]
    held = sum(sizes)
    left_out: set[int] = set()
    for index in sorted(range(len(ads)), key=lambda i: (_RULE_ORDER[ads[i].rule], -i)):
        if held <= max_bytes:
            break
        left_out.add(index)
        held -= sizes[index]
    omitted = Counter(ads[index].rule for index in left_out)
    return [ad for index, ad in enumerate(ads) if index not in left_out], {r: omitted[r] for r in Rule if r in omitted}


def listener_values(request: DecisionRequest, now: datetime) -> dict[str, Hashable]:
    """The request's value each targeting list must contain."""
    listener = request.listener
    return {
        "countries": listener.country,
        "devices": listener.device,
        "age_buckets": listener.age_bucket,
        "content_types": listener.context.content_type,
        "genres": listener.context.genre,
        "hours": listener_hour(request, now),
    }


def _text(value: Hashable) -> str:
    return "none" if value is None else str(getattr(value, "value", value))


def removed(campaign: Campaign, ad_id: str, rule: Rule, detail: str, **found: object) -> ExplainedAd:
    return ExplainedAd.model_validate(
        {
            "ad_id": ad_id,
            "campaign_id": campaign.campaign_id,
            "advertiser_id": campaign.advertiser_id,
            "rule": rule,
            "detail": detail,
            **found,
        }
    )


def targeting_removal(
    campaign: Campaign,
    ad_id: str,
    request: DecisionRequest,
    now: datetime,
    values: dict[str, Hashable],
    *,
    contextual: bool,
    rates: ExchangeRates,
) -> ExplainedAd | None:
    """The first targeting-stage rule that removes the ad (the catalog's load included), or None when ``select``
    would keep it."""
    return (
        _booking_removal(campaign, ad_id, request.placement, now, rates)
        or _dimension_removal(campaign, ad_id, values, contextual=contextual)
        or (
            removed(campaign, ad_id, Rule.EXCLUDED, "the request's exclude_ads names it")
            if ad_id in request.exclude_ads
            else None
        )
        or (_contextual_removal(campaign, ad_id) if contextual else None)
    )


def _booking_removal(
    campaign: Campaign, ad_id: str, placement: Placement, now: datetime, rates: ExchangeRates
) -> ExplainedAd | None:
    """Status, flight, currency (``not_served``) and placement (and the creative's format there): what the campaign
    booked, whoever listens (the catalog leaves out, and counts, an active campaign without a rate at load only while
    its flight has not ended)."""
    booked_off = not_served(campaign, now, rates)
    if booked_off is not None:
        return removed(campaign, ad_id, Rule(booked_off.rule.value), booked_off.detail)
    if placement not in campaign.placements:
        runs = ", ".join(p.value for p in campaign.placements)
        return removed(campaign, ad_id, Rule.PLACEMENT, f"runs in {runs}, not {placement.value}")
    creative_format = next(creative.format for creative in campaign.creatives if creative.ad_id == ad_id)
    if creative_format not in PLAYS[placement]:
        plays = " or ".join(sorted(PLAYS[placement]))
        detail = f"a {creative_format.value} creative; {placement.value} plays {plays}"
        return removed(campaign, ad_id, Rule.PLACEMENT, detail)
    return None


def _dimension_removal(
    campaign: Campaign, ad_id: str, values: dict[str, Hashable], *, contextual: bool
) -> ExplainedAd | None:
    for dimension in DIMENSIONS:
        if contextual and dimension in PERSONAL_DIMENSIONS:
            continue  # a contextual decision does not look at the listener's own fields (the consent rule)
        allowed = getattr(campaign.targeting, dimension)
        value = values[dimension]
        if allowed and value not in allowed:
            targeted = [_text(item) for item in allowed]
            return removed(
                campaign,
                ad_id,
                Rule.TARGETING,
                f"{dimension} targets {', '.join(targeted)}; the listener's is {_text(value)}",
                dimension=dimension,
                listener_value=_text(value),
                targeted=targeted,
            )
    return None


def _contextual_removal(campaign: Campaign, ad_id: str) -> ExplainedAd | None:
    """Contextual mode: a campaign that targets the listener's own fields is not eligible at all."""
    for dimension in DIMENSIONS:
        allowed = getattr(campaign.targeting, dimension)
        if dimension in PERSONAL_DIMENSIONS and allowed:
            return removed(
                campaign,
                ad_id,
                Rule.CONSENT,
                f"contextual mode: the campaign targets the listener's own {dimension}",
                dimension=dimension,
                targeted=[_text(item) for item in allowed],
            )
    return None


def cap_state(cap: FrequencyCap, count: int) -> CapState:
    return trusted(CapState, {"window": cap.window.value, "scope": cap.scope.value, "count": count, "max": cap.max})


def contributions(terms: FmTerms, fields: Sequence[str]) -> list[Contributions]:
    """Each scored row's terms, named by field and field pair."""
    names = [f"{fields[f]}*{fields[g]}" for f, g in pairs_of(len(fields))]
    return [
        trusted(
            Contributions,
            {
                "bias": terms.bias,
                "fields": dict(zip(fields, linear, strict=True)),
                "pairs": dict(zip(names, pairs, strict=True)),
                "logit": logit,
            },
        )
        for linear, pairs, logit in zip(terms.linear.tolist(), terms.pairs.tolist(), terms.logits.tolist(), strict=True)
    ]


def decomposition_mismatch(terms: FmTerms, scores: np.ndarray) -> str | None:
    """None when the terms reproduce the served scores (sigmoid of their sum), else how far they are off."""
    if not len(scores):
        return None
    rebuilt = 1.0 / (1.0 + np.exp(-terms.logits))
    error = float(np.max(np.abs(rebuilt - scores)))
    return None if error <= 1e-5 else f"the terms give scores up to {error:.2g} from the served ones"
