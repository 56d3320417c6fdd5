"""Explain mode: every ad of the catalog with the first rule that removed it, and each score taken apart."""

import random
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from adserve.campaigns.frequency_caps import AdvertiserCaps, session_key
from adserve.campaigns.model import Campaign, Creative
from adserve.cli.explain import format_explanation
from adserve.core.observability import MetricName, metrics
from adserve.decisions.api import DecisionResponse, ExplainedAd, Rule
from adserve.decisions.explain import ENTRY_BYTES_BOUND, MAX_EXPLAINED_BYTES, listed
from adserve.decisions.policy import SquareCB
from adserve.decisions.service import DecisionService, PolicySettings
from adserve.models.ctr_model import CtrModel
from adserve.models.factorization import FmParameters, NotDecomposableError, pairs_of
from adserve.models.features import DEFAULT_SPEC, FeatureEncoder
from adserve.models.heard_ads import HeardAds, ad_id_column
from adserve.privacy.consent import ConsentRules
from adserve.training.factorization_machine import FactorizationMachine, TrainingConfig
from adserve.training.model_files import write_model_dir
from adserve.training.onnx_export import _compact, export_onnx
from pydantic import ValidationError

from devstack.fakes import (
    ConstantScorer,
    InMemoryCounters,
    InMemoryPacingStore,
    RecordingDecisionLog,
)
from tests.support.builders import NOW, campaign, decision_request, impression_counters, pacing_state
from tests.support.decision_service import in_memory_service
from tests.support.privacy import PSEUDONYMS, pseudonym
from tests.unit import test_decide_golden as golden

BOOTSTRAP_DIR = Path(__file__).parents[2] / "layers" / "model" / "bootstrap"
BASE_URL = "https://api.example.com"


service = in_memory_service


def explain(decider: DecisionService, **overrides: Any) -> DecisionResponse:
    return decider.decide(decision_request(explain=True, **overrides), BASE_URL)


def by_campaign(response: DecisionResponse) -> dict[str, ExplainedAd]:
    assert response.explanation is not None
    return {ad.campaign_id: ad for ad in response.explanation.ads}


def test_a_budgeted_campaign_whose_pacing_state_aged_in_the_snapshot_is_explained_as_pacing() -> None:
    # Given a budgeted campaign loaded with a pacing state 290 s old (the max age is 300 s) and another one
    budgeted = campaign(campaign_id="budgeted", advertiser_id="adv-b", budget={"unit": "impressions", "daily": 1_000})
    pacing = InMemoryPacingStore()
    pacing.put(pacing_state(budgeted, 0.5, NOW - timedelta(seconds=290)))
    clock = [0.0]
    decider = service(
        budgeted, campaign(campaign_id="plain", advertiser_id="adv-p"), pacing=pacing, monotonic=lambda: clock[0]
    )
    decider.decide(decision_request(), BASE_URL)
    # When, 15 s later and before the next refresh, its state is past the max age and the decision is explained
    clock[0] = 15.0
    explained = by_campaign(explain(decider))
    # Then it is not served, and explain says why (it has a verdict, as every ad of the catalog: no KeyError)
    assert (explained["budgeted"].rule, explained["budgeted"].serve_probability) == (Rule.PACING, 0.0)
    assert explained["plain"].rule is Rule.SERVED


def one_rule_each() -> tuple[list[Campaign], InMemoryCounters]:
    """A catalog where each rule removes exactly one campaign (served: the two ads of a two-ad break)."""
    hour = NOW.hour
    campaigns = [
        campaign(campaign_id="paused", status="paused"),
        campaign(campaign_id="ended", flight_end=(NOW - timedelta(days=1)).isoformat()),
        campaign(campaign_id="elsewhere", placements=["podcast_midroll"]),
        campaign(campaign_id="t-countries", targeting={"countries": ["NO", "DK"]}),
        campaign(campaign_id="t-devices", targeting={"devices": ["desktop"]}),
        campaign(campaign_id="t-age", targeting={"age_buckets": ["35-44"]}),
        campaign(campaign_id="t-content", targeting={"content_types": ["podcast"]}),
        campaign(campaign_id="t-genres", targeting={"genres": ["rock"]}),
        campaign(campaign_id="t-hours", targeting={"hours": [(hour + 1) % 24]}),
        campaign(campaign_id="excluded"),
        campaign(campaign_id="paced", budget={"unit": "impressions", "daily": 1000}),  # no pacing state: p = 0
        campaign(campaign_id="capped", advertiser_id="adv-cap", frequency_caps=[{"max": 2, "window": "day"}]),
        campaign(campaign_id="best", advertiser_id="adv-a", value_cpm=30),
        campaign(campaign_id="sibling", advertiser_id="adv-a", value_cpm=20),
        campaign(campaign_id="second", advertiser_id="adv-b", value_cpm=10),
        campaign(campaign_id="third", advertiser_id="adv-b", value_cpm=5),
    ]
    capped = campaigns[11]
    session = session_key(PSEUDONYMS.session("session-1"), NOW)
    (slot,) = impression_counters(capped, AdvertiserCaps(campaigns).caps_of(capped), NOW, session)
    return campaigns, InMemoryCounters(counts={pseudonym("listener-1"): {slot.key: 2}})


def test_each_rule_removes_the_one_campaign_built_for_it_and_is_named_once() -> None:
    campaigns, counters = one_rule_each()
    log = RecordingDecisionLog()
    response = explain(service(*campaigns, counters=counters, log=log), max_ads=2, exclude_ads=["excluded-ad-1"])
    verdicts = by_campaign(response)
    assert set(verdicts) == {c.campaign_id for c in campaigns}  # every campaign of the catalog, any status
    rules = {campaign_id: ad.rule for campaign_id, ad in verdicts.items()}
    assert rules == {
        "paused": Rule.STATUS,
        "ended": Rule.FLIGHT,
        "elsewhere": Rule.PLACEMENT,
        **{f"t-{name}": Rule.TARGETING for name in ("countries", "devices", "age", "content", "genres", "hours")},
        "excluded": Rule.EXCLUDED,
        "paced": Rule.PACING,
        "capped": Rule.FREQUENCY_CAP,
        "sibling": Rule.ADVERTISER_SEPARATION,
        "third": Rule.NOT_CHOSEN,
        "best": Rule.SERVED,
        "second": Rule.SERVED,
    }
    counts = Counter(rules.values())
    assert counts[Rule.TARGETING] == 6
    assert counts[Rule.SERVED] == 2
    assert all(count == 1 for rule, count in counts.items() if rule not in {Rule.TARGETING, Rule.SERVED})
    # What each rule saw, named
    assert {verdicts[f"t-{n}"].dimension for n in ("countries", "devices", "age", "content", "genres", "hours")} == {
        "countries",
        "devices",
        "age_buckets",
        "content_types",
        "genres",
        "hours",
    }
    assert verdicts["t-countries"].listener_value == "SE"
    assert verdicts["t-countries"].targeted == ["NO", "DK"]
    assert verdicts["t-hours"].listener_value == str(NOW.hour)
    assert verdicts["paced"].serve_probability == 0.0
    assert verdicts["paced"].draw is not None
    assert verdicts["paced"].draw >= 0.0
    cap = verdicts["capped"].cap
    assert cap is not None
    assert (cap.window, cap.scope, cap.count, cap.max) == ("day", "campaign", 2, 2)
    assert verdicts["sibling"].by_ad_id == "best-ad-1"
    assert verdicts["sibling"].rank == 1
    assert verdicts["best"].propensity == pytest.approx(1.0)
    scored = {campaign_id for campaign_id, ad in verdicts.items() if ad.scoring is not None}
    assert scored == {"best", "sibling", "second", "third"}
    third = verdicts["third"].scoring
    assert third is not None
    assert third.rank_probabilities == [0.0, 0.0]  # greedy: never a chance
    assert third.expected_value == pytest.approx(0.05 * 5)
    # The ads themselves: the ones served, without a single tracking URL; the record is flagged
    assert [(ad.campaign_id, ad.rank, ad.tracking) for ad in response.ads] == [("best", 1, None), ("second", 2, None)]
    (record,) = log.records
    assert record.explain
    assert record.cap_check == "ok"
    assert [choice.ad_id for choice in record.chosen] == ["best-ad-1", "second-ad-1"]
    assert '"explain":true' in record.model_dump_json()


def test_consent_removes_targeting_of_own_fields_in_contextual_mode_and_capped_campaigns_without_capping() -> None:
    own_fields = campaign(campaign_id="own-fields", targeting={"devices": ["mobile"]})
    capped = campaign(campaign_id="capped", advertiser_id="adv-2", frequency_caps=[{"max": 2, "window": "day"}])
    plain = campaign(campaign_id="plain", advertiser_id="adv-3")
    counters = InMemoryCounters()
    decider = service(own_fields, capped, plain, counters=counters, consent=ConsentRules("strict"))
    contextual = by_campaign(explain(decider, consent={"personalise": False, "cap_frequency": True}))
    assert contextual["own-fields"].rule is Rule.CONSENT
    assert contextual["own-fields"].dimension == "devices"
    assert contextual["capped"].rule is Rule.SERVED
    no_capping = by_campaign(explain(decider, consent={"personalise": True, "cap_frequency": False}))
    assert no_capping["own-fields"].rule is Rule.SERVED
    assert no_capping["capped"].rule is Rule.CONSENT
    assert "capping consent" in no_capping["capped"].detail
    assert counters.reads == 1  # only the request with capping consent read the caps


@pytest.mark.parametrize("consent", ["legacy", "strict"])
def test_an_explain_request_serves_exactly_what_the_same_decision_would_on_the_golden_catalog(consent: str) -> None:
    """The explanation's rules restate the serving path; on the golden catalog and requests (every targeting
    case, caps at and under their limit, exclusions), personalised and contextual without capping consent,
    with the same seed, both choose the same ads."""
    rng = random.Random(7)
    campaigns = [golden._campaign(index, rng) for index in range(80)]
    counters = golden._counters(campaigns)
    rules = ConsentRules(consent)  # type: ignore[arg-type]
    for number, request in enumerate(golden._requests(rng, campaigns)):
        served = service(*campaigns, counters=counters, seed=number, consent=rules).decide(request, BASE_URL)
        explained = service(*campaigns, counters=counters, seed=number, consent=rules).decide(
            request.model_copy(update={"explain": True}), BASE_URL
        )
        assert [(ad.ad_id, ad.rank, ad.propensity) for ad in explained.ads] == [
            (ad.ad_id, ad.rank, ad.propensity) for ad in served.ads
        ]
        assert explained.explanation is not None
        verdicts = explained.explanation.ads
        assert len(verdicts) == sum(len(c.creatives) for c in campaigns)
        assert sorted(ad.ad_id for ad in verdicts if ad.rule is Rule.SERVED) == sorted(ad.ad_id for ad in served.ads)


def _assert_contributions_sum_to_the_served_logit(model: CtrModel) -> None:
    campaigns = [
        campaign(campaign_id=f"cmp-{n}", advertiser_id=f"adv-{n}", category=category, value_cpm=5 + n)
        for n, category in enumerate(("auto", "food", "retail", "travel", "auto", "food"))
    ]
    for listener_overrides in ({}, {"consent": {"personalise": False}}):
        response = explain(service(*campaigns, scorer=model, consent=ConsentRules("legacy")), **listener_overrides)
        assert response.explanation is not None
        assert response.explanation.contributions_unavailable is None
        scored = [ad.scoring for ad in response.explanation.ads if ad.scoring is not None]
        assert len(scored) == len(campaigns)
        for scoring in scored:
            terms = scoring.contributions
            assert terms is not None
            # 8 listener, 5 ad and 2 candidate fields (exposure, slot): bias + 15 field terms + 105 pair terms
            assert list(terms.fields) == list(DEFAULT_SPEC.fields)
            assert len(terms.fields) == 15
            assert len(terms.pairs) == 105 == DEFAULT_SPEC.num_fields * (DEFAULT_SPEC.num_fields - 1) // 2
            assert {"exposure", "slot", "ad_id*exposure", "exposure*slot"} <= set(terms.fields) | set(terms.pairs)
            assert scoring.features["exposure"] == ""  # these campaigns are uncapped: nothing counted
            assert scoring.features["slot"] == "1"  # every candidate is scored in the first slot
            total = terms.bias + sum(terms.fields.values()) + sum(terms.pairs.values())
            served_logit = float(np.log(scoring.score / (1.0 - scoring.score)))
            assert total == pytest.approx(terms.logit, abs=1e-9)
            assert abs(total - served_logit) < 1e-5


def test_contributions_of_the_bootstrap_model_sum_to_the_served_logit() -> None:
    _assert_contributions_sum_to_the_served_logit(CtrModel.load(BOOTSTRAP_DIR, DEFAULT_SPEC))


def _trained(tmp_path: Path, unpaired_fields: int = 0) -> tuple[FactorizationMachine, bytes, CtrModel]:
    rng = np.random.default_rng(3)
    encoder = FeatureEncoder()
    listeners = [{"country": rng.choice(["SE", "NO", "DE"]), "device": "mobile"} for _ in range(3000)]
    ads = [{"campaign_id": f"cmp-{rng.integers(6)}", "category": rng.choice(["auto", "food"])} for _ in range(3000)]
    indices = encoder.encode_rows(listeners, ads, ads)
    clicks = rng.random(3000) < 0.05 + 0.1 * (indices[:, 0] % 2)
    fm = FactorizationMachine(DEFAULT_SPEC.hash_size, num_factors=4, seed=1, unpaired_fields=unpaired_fields)
    fm.fit(indices[:2500], clicks[:2500], indices[2500:], clicks[2500:], TrainingConfig(max_epochs=3, seed=1))
    model_bytes = export_onnx(fm, DEFAULT_SPEC.num_fields)
    write_model_dir(tmp_path, model_bytes, DEFAULT_SPEC, "trained-{sha12}", {})
    return fm, model_bytes, CtrModel.load(tmp_path, DEFAULT_SPEC)


def test_contributions_of_a_model_adserve_trains_sum_to_the_served_logit(tmp_path: Path) -> None:
    _fm, _bytes, model = _trained(tmp_path)
    _assert_contributions_sum_to_the_served_logit(model)


def test_the_parameters_read_from_the_onnx_file_are_the_exported_ones(tmp_path: Path) -> None:
    fm, model_bytes, _model = _trained(tmp_path)
    row_of, weights, factors = _compact(fm)
    read = FmParameters.from_onnx(model_bytes, DEFAULT_SPEC.hash_size)
    assert np.array_equal(read.row_of, row_of)
    assert np.array_equal(read.weights, weights.astype(np.float64))
    assert np.array_equal(read.factors, factors.astype(np.float64))
    assert read.bias == pytest.approx(float(np.float32(fm.bias)))
    indices = np.random.default_rng(0).integers(0, DEFAULT_SPEC.hash_size, (50, DEFAULT_SPEC.num_fields))
    assert np.allclose(read.terms(indices).logits, fm.logits(indices), atol=1e-5)


def test_a_model_without_pairs_among_the_listener_fields_is_explained_with_those_pairs_at_zero(tmp_path: Path) -> None:
    listener_fields = len(DEFAULT_SPEC.listener_fields)
    fm, model_bytes, model = _trained(tmp_path, unpaired_fields=listener_fields)
    read = FmParameters.from_onnx(model_bytes, DEFAULT_SPEC.hash_size)
    indices = np.random.default_rng(0).integers(0, DEFAULT_SPEC.hash_size, (50, DEFAULT_SPEC.num_fields))
    terms = read.terms(indices)

    assert read.unpaired_fields == listener_fields
    assert np.allclose(terms.logits, fm.logits(indices), atol=1e-5)
    among_listener_fields = [g < listener_fields for _f, g in pairs_of(DEFAULT_SPEC.num_fields)]
    assert not terms.pairs[:, among_listener_fields].any()
    _assert_contributions_sum_to_the_served_logit(model)


def test_a_model_that_cannot_be_decomposed_gets_rules_and_scores_but_no_contributions(tmp_path: Path) -> None:
    external = tmp_path / "external"
    _fm, model_bytes, _model = _trained(tmp_path / "fm")
    manifest = write_model_dir(external, model_bytes, DEFAULT_SPEC, "external-1", {})
    (external / "manifest.json").write_text(
        (external / "manifest.json").read_text().replace(manifest["model_type"], "gradient_boosted_trees")
    )
    for model, reason in ((ConstantScorer(), "offers no parameters"), (CtrModel.load(external, DEFAULT_SPEC), "type")):
        response = explain(service(campaign(), scorer=model))
        assert response.explanation is not None
        unavailable = response.explanation.contributions_unavailable
        assert unavailable is not None
        assert reason in unavailable
        (ad,) = response.explanation.ads
        assert ad.rule is Rule.SERVED
        assert ad.scoring is not None
        assert ad.scoring.contributions is None
        assert ad.scoring.score == pytest.approx(response.ads[0].score)


def test_explain_must_be_a_boolean() -> None:
    for value in ("true", 1, None, "yes"):
        with pytest.raises(ValidationError, match="explain"):
            decision_request(explain=value)


def test_explain_emits_none_of_the_decision_metrics_and_a_normal_response_has_no_explanation() -> None:
    decider = service(campaign())
    metrics.clear_metrics()
    explain(decider)
    emitted = set(metrics.metric_set)
    assert MetricName.EXPLAINED_DECISIONS.value in emitted
    decision_metrics = {
        MetricName.DECISIONS,
        MetricName.ADS_RETURNED,
        MetricName.EMPTY_DECISIONS,
        MetricName.PERSONALISED_DECISIONS,
        MetricName.DECIDE_LATENCY,
        MetricName.CANDIDATES_FILTERED_BY_TARGETING,
        MetricName.CANDIDATES_FILTERED_BY_CAP,
    }
    assert not emitted & {name.value for name in decision_metrics}
    metrics.clear_metrics()
    served = decider.decide(decision_request(), BASE_URL)
    assert MetricName.EXPLAINED_DECISIONS.value not in metrics.metric_set
    assert served.explanation is None
    assert "explanation" not in served.model_dump_json()
    assert served.ads[0].tracking is not None


def test_squarecb_rank_probabilities_are_the_policy_distribution_and_propensity_is_its_rank_entry() -> None:
    campaigns = [campaign(campaign_id=f"c{n}", advertiser_id=f"a{n}", value_cpm=10 + n) for n in range(4)]
    decider = service(*campaigns)
    decider.policy = PolicySettings(exploration=SquareCB(10.0), token_ttl=timedelta(hours=1))
    response = explain(decider, max_ads=2)
    assert response.explanation is not None
    scored = [ad for ad in response.explanation.ads if ad.scoring is not None]
    for slot in range(2):
        assert sum(ad.scoring.rank_probabilities[slot] for ad in scored if ad.scoring) == pytest.approx(1.0)
    for ad in response.ads:
        (explained,) = (e for e in scored if e.ad_id == ad.ad_id)
        assert explained.scoring is not None
        assert explained.scoring.rank_probabilities[ad.rank - 1] == ad.propensity


@dataclass
class HeardOne:
    """A trained model that heard the ad of campaign c0 forty times and no other; scores ads by their index."""

    heard_ads: HeardAds
    version: str = "heard-one"
    logged_decisions: int = 5_000

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return np.linspace(0.08, 0.02, len(indices), dtype=np.float32)


def test_with_optimism_each_scored_ad_says_how_often_the_model_heard_it_and_without_it_nothing() -> None:
    campaigns = [campaign(campaign_id=f"c{n}", advertiser_id=f"a{n}") for n in range(3)]
    encoder = FeatureEncoder()
    heard = encoder.encode_ad({"ad_id": campaigns[0].creatives[0].ad_id})[ad_id_column(encoder.spec, in_ad_rows=True)]
    decider = service(*campaigns, scorer=HeardOne(HeardAds(np.array([heard]), np.array([40]))))
    decider.policy = PolicySettings(exploration=SquareCB(100.0, optimism=1.0), token_ttl=timedelta(hours=1))
    response = explain(decider, max_ads=2)
    assert response.explanation is not None
    counts = {ad.campaign_id: ad.scoring.heard for ad in response.explanation.ads if ad.scoring is not None}
    assert counts == {"c0": 40, "c1": 0, "c2": 0}
    # Without the optimism the policy does not read the counts, and explain names none
    decider.policy = PolicySettings(exploration=SquareCB(100.0), token_ttl=timedelta(hours=1))
    plain = explain(decider, max_ads=2)
    assert plain.explanation is not None
    assert all(ad.scoring.heard is None for ad in plain.explanation.ads if ad.scoring is not None)
    assert '"heard"' not in plain.model_dump_json()


def test_a_file_that_is_not_an_adserve_fm_is_not_decomposable_and_says_why() -> None:
    bootstrap = (BOOTSTRAP_DIR / "model.onnx").read_bytes()
    with pytest.raises(NotDecomposableError, match="factors"):
        FmParameters.from_onnx(bootstrap.replace(b"factors", b"factorz"), DEFAULT_SPEC.hash_size)
    with pytest.raises(NotDecomposableError, match="buckets"):
        FmParameters.from_onnx(bootstrap, DEFAULT_SPEC.hash_size * 2)
    for garbage in (b"\xff" * 40, bootstrap[: len(bootstrap) // 2]):
        with pytest.raises(NotDecomposableError):
            FmParameters.from_onnx(garbage, DEFAULT_SPEC.hash_size)


def test_a_creative_whose_format_the_placement_cannot_play_is_not_served_and_explain_says_so() -> None:
    # Given a campaign in the audio break with an audio creative and a display banner
    banner = {
        "ad_id": "both-banner",
        "format": "display",
        "title": "Banner",
        "media_url": "https://cdn.example.com/b.png",
        "click_url": "https://shop.example.com/",
    }
    both = campaign(campaign_id="both")
    both = both.model_copy(update={"creatives": [*both.creatives, Creative.model_validate(banner)]})
    decider = service(both)
    # When an audio break is decided, then explained
    served = decider.decide(decision_request(max_ads=3), BASE_URL)
    verdicts = {ad.ad_id: ad for ad in explain(decider).explanation.ads}  # type: ignore[union-attr]
    # Then only the audio creative is served, and the banner's verdict names the formats the break plays
    assert [ad.ad_id for ad in served.ads] == ["both-ad-1"]
    assert verdicts["both-banner"].rule is Rule.PLACEMENT
    assert verdicts["both-banner"].detail == "a display creative; audio_midroll plays audio"


def long_ids(campaign_id: str, creatives: int = 1, **overrides: Any) -> Campaign:
    """A campaign whose ids (campaign, advertiser, ads) are 64 characters, the longest an id may be."""
    creative = campaign().creatives[0].model_dump(mode="json")
    return campaign(
        campaign_id=campaign_id.ljust(64, "c"),
        advertiser_id=campaign_id.ljust(64, "a"),
        creatives=[{**creative, "ad_id": f"{campaign_id}-{n}".ljust(64, "x")} for n in range(creatives)],
        **overrides,
    )


def genre_targeted(campaign_id: str, creatives: int = 1) -> Campaign:
    """A campaign of long ids targeting 100 genres of the longest a slug may be, none the listener's: the largest
    verdict targeting writes (the detail names each targeted value, and ``targeted`` lists them)."""
    genres = [f"{n:03d}".ljust(32, "g") for n in range(100)]
    return long_ids(campaign_id, creatives, targeting={"genres": genres})


def test_no_explained_ad_comes_near_the_bound_that_lets_a_small_catalog_skip_measuring() -> None:
    # Given the largest verdicts explain writes: targeting's over 100 long genres, and scored ads of long ids
    # with every term of the bootstrap factorization machine's contributions
    scored = [long_ids(f"scored-{n}") for n in range(3)]
    bootstrap = CtrModel.load(BOOTSTRAP_DIR, DEFAULT_SPEC)
    response = explain(service(genre_targeted("targeted"), *scored, scorer=bootstrap))
    assert response.explanation is not None
    sizes = {ad.rule: len(ad.model_dump_json()) for ad in response.explanation.ads}
    # Then each is well under the bound
    assert set(sizes) >= {Rule.TARGETING, Rule.SERVED}
    assert all(ad.scoring and ad.scoring.contributions for ad in response.explanation.ads if ad.rule is Rule.SERVED)
    assert max(sizes.values()) < ENTRY_BYTES_BOUND / 2, sizes


def test_past_its_byte_budget_an_explanation_leaves_out_the_earliest_rules_first_and_counts_them() -> None:
    campaigns, counters = one_rule_each()
    response = explain(service(*campaigns, counters=counters), exclude_ads=["excluded-ad-1"], max_ads=2)
    assert response.explanation is not None
    ads = response.explanation.ads
    sizes = [len(ad.model_dump_json()) for ad in ads]
    # When the budget holds all but the first two rules' ads and half of the third's
    by_rule = Counter(ad.rule for ad in ads)
    early = {Rule.STATUS, Rule.FLIGHT}
    budget = sum(size for ad, size in zip(ads, sizes, strict=True) if ad.rule not in early) - 1
    kept, omitted = listed(ads, max_bytes=budget)
    # Then the status, flight and placement ads go, placement's from the end, and every later one stays in order
    assert omitted == {rule: by_rule[rule] for rule in (Rule.STATUS, Rule.FLIGHT, Rule.PLACEMENT)}
    assert kept == [ad for ad in ads if ad.rule not in early | {Rule.PLACEMENT}]
    assert sum(len(ad.model_dump_json()) for ad in kept) <= budget
    # And a budget that holds them all leaves none out
    assert listed(ads, max_bytes=sum(sizes)) == (ads, {})


def test_an_explanation_of_a_catalog_too_large_to_list_stays_within_the_budget_and_counts_the_rest() -> None:
    # Given 300 campaigns of 20 ads each that targeting removes with the largest verdicts, and one served
    catalog = [genre_targeted(f"t-{n}", creatives=20) for n in range(300)]
    response = explain(service(*catalog, campaign(campaign_id="served")))
    assert response.explanation is not None
    explanation = response.explanation
    # Then the listed ads fit the budget, the served one is among them, and the rest are counted
    assert len(explanation.model_dump_json()) <= MAX_EXPLAINED_BYTES + 1024
    assert explanation.omitted[Rule.TARGETING] == 6000 - sum(ad.rule is Rule.TARGETING for ad in explanation.ads)
    assert explanation.omitted[Rule.TARGETING] > 0
    assert [ad.campaign_id for ad in explanation.ads if ad.rule is Rule.SERVED] == ["served"]


def test_the_cli_says_how_many_ads_of_each_rule_the_answer_left_out() -> None:
    campaigns, counters = one_rule_each()
    answer = explain(service(*campaigns, counters=counters)).model_dump(mode="json")
    assert "not listed" not in format_explanation(answer)
    answer["explanation"]["omitted"] = {"status": 12, "targeting": 5400}
    assert (
        "\nnot listed, to keep the answer within Lambda's response limit: 12 status, 5,400 targeting\n"
        in format_explanation(answer)
    )


def test_explain_campaign_lists_that_campaigns_ads_alone_and_explains_the_same_decision() -> None:
    campaigns, counters = one_rule_each()
    decider = service(*campaigns, counters=counters)
    whole = explain(decider, max_ads=2)
    one = explain(decider, max_ads=2, explain_campaign="t-genres")
    assert one.explanation is not None
    assert whole.explanation is not None
    assert one.explanation.ads == [ad for ad in whole.explanation.ads if ad.campaign_id == "t-genres"]
    assert [ad.ad_id for ad in one.ads] == [ad.ad_id for ad in whole.ads]


def test_the_explain_route_explains_a_request_that_does_not_say_so() -> None:
    asked = decision_request(explain_campaign="t-genres")
    assert (asked.explained().explain, asked.explained().explain_campaign) == (True, "t-genres")
    already = decision_request(explain=True)
    assert already.explained() is already
