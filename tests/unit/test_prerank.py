"""Bounded scoring: past PRERANK_TOP_K eligible ads only the top K by value_cpm x prior reach the model."""

import random
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pytest
from adserve.campaigns.model import Campaign
from adserve.core.observability import MetricName, metrics
from adserve.decisions.api import Rule
from adserve.decisions.catalog import CampaignCatalog, ad_features
from adserve.decisions.policy import EpsilonGreedy
from adserve.decisions.prerank import DEFAULT_TOP_K
from adserve.decisions.service import DecisionService, PolicySettings
from adserve.models.features import FeatureEncoder, candidate_features
from adserve.outcomes.tokens import TokenSigner
from adserve.privacy.consent import ConsentRules
from adserve.wiring.settings import DecideSettings

from devstack.fakes import InMemoryCampaigns, InMemoryCounters, InMemoryPacingStore, RecordingDecisionLog
from tests.support.builders import NOW, campaign, decision_request
from tests.support.privacy import PSEUDONYMS

BASE_URL = "https://api.example.com"
ENCODER = FeatureEncoder()


@dataclass
class SpreadScorer:
    """Scores vary by ad (and listener), so the prior, and the cut, depend on the ad as well as its value."""

    version: str = "spread"
    predicted: int = 0

    def predict(self, indices: np.ndarray) -> np.ndarray:
        self.predicted += len(indices)
        return np.asarray((indices.sum(axis=1) % 997) / 20_000 + 0.001, dtype=np.float32)


def catalog_of(count: int, seed: int = 3) -> list[Campaign]:
    rng = random.Random(seed)
    return [
        campaign(
            campaign_id=f"c{i:03d}",
            advertiser_id=f"adv-{i % 7}",
            value_cpm=rng.choice([5.0, 10.0, 10.0, 20.0, 35.5]),  # ties: the cut keeps catalog order
        )
        for i in range(count)
    ]


def service(
    campaigns: list[Campaign], top_k: int, scorer: SpreadScorer, log: RecordingDecisionLog, seed: int = 1
) -> DecisionService:
    return DecisionService(
        catalog=CampaignCatalog(
            InMemoryCampaigns(campaigns),
            ENCODER,
            ttl_seconds=60,
            max_age_seconds=300,
            pacing=InMemoryPacingStore(),
            pacing_max_age=timedelta(minutes=5),
            clock=lambda: NOW,
        ),
        counters=InMemoryCounters(),
        scorer=lambda _listener: scorer,
        decision_log=log,
        signer=lambda: TokenSigner(b"s" * 32),
        pseudonyms=lambda: PSEUDONYMS,
        consent=ConsentRules("legacy"),
        encoder=ENCODER,
        policy=PolicySettings(exploration=EpsilonGreedy(0.2), token_ttl=timedelta(hours=1), prerank_top_k=top_k),
        rng=random.Random(seed),
        clock=lambda: NOW,
    )


def documented_top(campaigns: list[Campaign], top_k: int, scorer: SpreadScorer) -> list[str]:
    """value_cpm x the model's score for an anonymous listener: each advertiser's best first, then the largest; K
    of them, ties to catalog order."""
    anonymous = ENCODER.encode_listener({})
    keyed = []
    for position, c in enumerate(sorted(campaigns, key=lambda c: c.campaign_id)):
        creative = c.creatives[0]
        row = ENCODER.encode_ad(ad_features(c, creative.ad_id, creative.format.value))
        unknown = ENCODER.encode_candidates([candidate_features(None)])  # a prior knows no exposure
        prior = float(scorer.predict(ENCODER.encode(anonymous, row[None, :], unknown))[0])
        keyed.append((-c.value_cpm * prior, position, creative.ad_id, c.advertiser_id))
    by_key = sorted(keyed)
    leaders = {advertiser: ad_id for _, _, ad_id, advertiser in reversed(by_key)}  # each one's first in key order
    first = [ad_id for _, _, ad_id, _ in by_key if ad_id in leaders.values()]
    return (first + [ad_id for _, _, ad_id, _ in by_key if ad_id not in leaders.values()])[:top_k]


def test_past_k_eligible_ads_only_the_top_k_by_value_times_prior_are_scored_and_logged() -> None:
    # Given 60 eligible ads and K = 20
    campaigns, log, scorer = catalog_of(60), RecordingDecisionLog(), SpreadScorer()
    decider = service(campaigns, 20, scorer, log)
    metrics.clear_metrics()
    # When one decision is made
    response = decider.decide(decision_request(), BASE_URL)
    scored = scorer.predicted
    # Then the record's candidates are exactly the documented top 20, in catalog order, and 40 are counted out
    record = log.records[-1]
    expected = documented_top(campaigns, 20, scorer)
    assert [c.ad_id for c in record.inline_candidates] == sorted(expected)
    assert record.prerank_dropped == 40
    assert '"prerank_dropped":40' in record.model_dump_json()
    assert metrics.metric_set[MetricName.CANDIDATES_FILTERED_BY_PRERANK]["Value"] == [40.0]
    # And only the kept ads are served
    assert {ad.ad_id for ad in response.ads} <= set(expected)
    # And the model scored the priors once (60) and the 20 kept ads for this listener, not all 60 again
    assert scored == 60 + 20
    before = scorer.predicted
    decider.decide(decision_request(), BASE_URL)
    assert scorer.predicted - before == 20


def test_the_policy_explores_among_the_k_only_with_propensities_summing_to_one() -> None:
    campaigns, scorer = catalog_of(60), SpreadScorer()
    served_log, explained_log = RecordingDecisionLog(), RecordingDecisionLog()
    served = service(campaigns, 20, scorer, served_log, seed=9).decide(decision_request(), BASE_URL)
    explained = service(campaigns, 20, scorer, explained_log, seed=9).decide(decision_request(explain=True), BASE_URL)
    assert explained.explanation is not None
    scored = [ad for ad in explained.explanation.ads if ad.scoring is not None]
    assert len(scored) == 20
    first_slot = [ad.scoring.rank_probabilities[0] for ad in scored if ad.scoring is not None]
    # epsilon-greedy over K = 20: the greedy ad 0.8 + 0.2/20, every other kept ad 0.2/20, the rest 0
    assert sum(first_slot) == pytest.approx(1.0)
    assert min(first_slot) == pytest.approx(0.2 / 20)
    # And the served path chose the same ads with the same exact propensities
    assert [(a.ad_id, a.propensity) for a in served.ads] == [(a.ad_id, a.propensity) for a in explained.ads]
    assert served_log.records[-1].candidates == explained_log.records[-1].candidates


def test_explain_names_the_prerank_rule_for_each_ad_it_removed() -> None:
    campaigns, scorer = catalog_of(60), SpreadScorer()
    response = service(campaigns, 20, scorer, RecordingDecisionLog()).decide(decision_request(explain=True), BASE_URL)
    assert response.explanation is not None
    kept = set(documented_top(campaigns, 20, scorer))
    by_rule = {ad.ad_id: ad for ad in response.explanation.ads}
    prerank = {ad_id for ad_id, ad in by_rule.items() if ad.rule is Rule.PRERANK}
    assert prerank == {c.creatives[0].ad_id for c in campaigns} - kept
    example = by_rule[sorted(prerank)[0]]
    assert example.scoring is None
    assert "top 20 of 60 eligible ads by value_cpm x prior" in example.detail
    # The rule sits between the caps and the policy, in Decide's order
    rules = list(Rule)
    assert rules.index(Rule.FREQUENCY_CAP) < rules.index(Rule.PRERANK) < rules.index(Rule.ADVERTISER_SEPARATION)


def test_one_advertiser_with_the_best_ads_leaves_room_for_the_others_best() -> None:
    # Given one advertiser's ten ads at CPM 20 and two other advertisers' ads at 10 and 9, and K = 5
    big = [campaign(campaign_id=f"big-{i}", advertiser_id="adv-big", value_cpm=20.0) for i in range(10)]
    others = [
        campaign(campaign_id="b-1", advertiser_id="adv-b", value_cpm=10.0),
        campaign(campaign_id="c-1", advertiser_id="adv-c", value_cpm=9.0),
    ]
    scorer, log = SpreadScorer(), RecordingDecisionLog()
    response = service(big + others, 5, scorer, log).decide(decision_request(max_ads=3), BASE_URL)
    # Then the others' best ads are scored, beside the big advertiser's best ads, and a break of three is filled
    kept = {c.ad_id for c in log.records[-1].inline_candidates}
    assert {"b-1-ad-1", "c-1-ad-1"} <= kept
    assert len(kept) == 5
    assert kept == set(documented_top(big + others, 5, scorer))
    assert len({ad.advertiser_id for ad in response.ads}) == 3
    # And explain says why each big ad left out was: not its advertiser's best, below the last other kept
    explained = service(big + others, 5, scorer, RecordingDecisionLog()).decide(
        decision_request(max_ads=3, explain=True), BASE_URL
    )
    assert explained.explanation is not None
    cut = [ad for ad in explained.explanation.ads if ad.rule is Rule.PRERANK]
    assert len(cut) == 7
    assert all("it is not its advertiser's best" in ad.detail for ad in cut)


def test_past_k_advertisers_each_of_the_best_k_keeps_its_best_ad() -> None:
    # Given 8 advertisers of one ad each and K = 5: the places go to the 5 best ads
    campaigns = [campaign(campaign_id=f"c{i}", advertiser_id=f"adv-{i}", value_cpm=1.0 + i) for i in range(8)]
    scorer, log = SpreadScorer(), RecordingDecisionLog()
    decided = service(campaigns, 5, scorer, log).decide(decision_request(explain=True), BASE_URL)
    assert {c.ad_id for c in log.records[-1].inline_candidates} == set(documented_top(campaigns, 5, scorer))
    assert decided.explanation is not None
    cut = [ad for ad in decided.explanation.ads if ad.rule is Rule.PRERANK]
    assert len(cut) == 3
    assert all("its advertiser's best, is below the last advertiser's best kept" in ad.detail for ad in cut)


def test_at_or_under_k_eligible_ads_nothing_changes() -> None:
    # Given 30 eligible ads: a K of exactly 30 and a K far above decide byte for byte alike
    campaigns = catalog_of(30)
    logs = [RecordingDecisionLog(), RecordingDecisionLog()]
    answers = []
    for top_k, log in zip((30, 10_000), logs, strict=True):
        decider = service(campaigns, top_k, SpreadScorer(), log, seed=4)
        decider.new_decision_id = lambda: "d-1"
        answers.append(decider.decide(decision_request(), BASE_URL).model_dump_json())
    assert answers[0] == answers[1]
    assert logs[0].records[-1].model_dump_json() == logs[1].records[-1].model_dump_json()
    assert "prerank_dropped" not in logs[0].records[-1].model_dump_json()
    assert len(logs[0].records[-1].candidates) == 30


def test_the_deployment_default_is_the_services_default() -> None:
    assert DecideSettings.model_fields["prerank_top_k"].default == DEFAULT_TOP_K == PolicySettings.prerank_top_k


def test_priors_are_computed_once_per_model_version_and_per_snapshot() -> None:
    campaigns = catalog_of(40)
    first, second = SpreadScorer("v1"), SpreadScorer("v2")
    decider = service(campaigns, 10, first, RecordingDecisionLog())
    index = decider.catalog.ads_for(decision_request().placement)
    one = index.priors(first, ENCODER)
    assert index.priors(first, ENCODER) is one
    assert first.predicted == 40
    index.priors(second, ENCODER)
    assert second.predicted == 40
