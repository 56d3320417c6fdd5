"""The decision service end to end on in-memory ports: caps, fail-closed, ranking, tokens, the record."""

import base64
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from urllib.parse import parse_qs, urlparse

import pytest
from adserve.campaigns.frequency_caps import session_key
from adserve.campaigns.model import Campaign
from adserve.core.decision_ids import decided_at, new_decision_id
from adserve.core.errors import SecretKeysUnavailableError
from adserve.core.refreshing import RefreshingValue
from adserve.core.vocabulary import EventType
from adserve.decisions.api import DecisionResponse
from adserve.decisions.policy import EpsilonGreedy
from adserve.decisions.service import DecisionService, PolicySettings, listener_features
from adserve.delivery.pacing import PacingState, TrafficProfile, pace
from adserve.models.features import CONTEXTUAL_FIELDS
from adserve.outcomes.decision_records import DecisionRecord
from adserve.outcomes.tokens import TokenSigner
from adserve.privacy.consent import ConsentRules, ServingMode

from devstack.fakes import (
    ConstantScorer,
    InMemoryCampaigns,
    InMemoryCounters,
    InMemoryPacingStore,
    RecordingDecisionLog,
)
from tests.support.builders import NOW, campaign, decision_request, impression_counters
from tests.support.decision_service import SIGNER, in_memory_service
from tests.support.privacy import PSEUDONYMS, pseudonym

BASE_URL = "https://api.example.com"
T = TypeVar("T")
service = in_memory_service


def test_ads_are_ranked_by_value_one_per_advertiser() -> None:
    cheap = campaign(campaign_id="cheap", advertiser_id="a", value_cpm=1)
    rich = campaign(campaign_id="rich", advertiser_id="b", value_cpm=30)
    rich_sibling = campaign(campaign_id="rich-2", advertiser_id="b", value_cpm=20)
    response = service(cheap, rich, rich_sibling).decide(decision_request(max_ads=3), BASE_URL)
    assert [ad.campaign_id for ad in response.ads] == ["rich", "cheap"]
    assert [ad.rank for ad in response.ads] == [1, 2]
    assert response.model_version == "constant"


def test_a_capped_campaign_at_its_cap_is_not_returned() -> None:
    capped = campaign(
        campaign_id="capped", advertiser_id="a", value_cpm=50, frequency_caps=[{"max": 2, "window": "day"}]
    )
    free = campaign(campaign_id="free", advertiser_id="b")
    [slot] = impression_counters(capped, capped.frequency_caps, NOW, session_key(PSEUDONYMS.session("session-1"), NOW))
    counters = InMemoryCounters(counts={pseudonym("listener-1"): {slot.key: 2}})
    response = service(capped, free, counters=counters).decide(decision_request(), BASE_URL)
    assert [ad.campaign_id for ad in response.ads] == ["free"]
    assert counters.reads == 1


def test_an_advertiser_cap_stops_the_advertisers_campaigns_that_do_not_declare_it() -> None:
    # Given an advertiser whose cheaper campaign declares a daily advertiser cap of 2 and whose dearer one none
    capped = campaign(
        campaign_id="capped",
        advertiser_id="a",
        value_cpm=5,
        frequency_caps=[{"max": 2, "window": "day", "scope": "advertiser"}],
    )
    sibling = campaign(campaign_id="sibling", advertiser_id="a", value_cpm=50)
    other = campaign(campaign_id="other", advertiser_id="b", value_cpm=1)
    [slot] = impression_counters(capped, capped.frequency_caps, NOW, session_key(PSEUDONYMS.session("session-1"), NOW))
    # Below the cap the uncapped sibling is served; at the cap neither campaign of the advertiser is
    below = InMemoryCounters(counts={pseudonym("listener-1"): {slot.key: 1}})
    response = service(capped, sibling, other, counters=below).decide(decision_request(), BASE_URL)
    assert [ad.campaign_id for ad in response.ads] == ["sibling", "other"]
    at_cap = InMemoryCounters(counts={pseudonym("listener-1"): {slot.key: 2}})
    response = service(capped, sibling, other, counters=at_cap).decide(decision_request(), BASE_URL)
    assert [ad.campaign_id for ad in response.ads] == ["other"]
    assert at_cap.reads == 1
    # Unreadable counters withhold the sibling too: it is under its advertiser's cap
    unreadable = InMemoryCounters(available=False)
    response = service(capped, sibling, other, counters=unreadable).decide(decision_request(), BASE_URL)
    assert [ad.campaign_id for ad in response.ads] == ["other"]


def test_counters_are_read_once_whatever_the_number_of_capped_candidates() -> None:
    caps = [{"max": 5, "window": "hour"}, {"max": 9, "window": "week", "scope": "advertiser"}]
    campaigns = [campaign(campaign_id=f"c{i}", advertiser_id=f"a{i}", frequency_caps=caps) for i in range(40)]
    counters = InMemoryCounters()
    response = service(*campaigns, counters=counters).decide(decision_request(max_ads=10), BASE_URL)
    assert len(response.ads) == 10
    assert counters.reads == 1


def test_no_capped_candidate_means_no_counter_read() -> None:
    counters = InMemoryCounters()
    service(campaign(), counters=counters).decide(decision_request(), BASE_URL)
    assert counters.reads == 0


def test_unreadable_counters_fail_closed_for_capped_campaigns_only() -> None:
    capped = campaign(
        campaign_id="capped", advertiser_id="a", value_cpm=50, frequency_caps=[{"max": 9, "window": "day"}]
    )
    free = campaign(campaign_id="free", advertiser_id="b")
    log = RecordingDecisionLog()
    response = service(capped, free, counters=InMemoryCounters(available=False), log=log).decide(
        decision_request(), BASE_URL
    )
    assert [ad.campaign_id for ad in response.ads] == ["free"]
    assert log.records[0].cap_check == "unavailable"


def test_no_eligible_ad_is_an_empty_decision_that_is_still_logged() -> None:
    log = RecordingDecisionLog()
    response = service(campaign(targeting={"countries": ["US"]}), log=log).decide(decision_request(), BASE_URL)
    assert response.ads == []
    assert len(log.records) == 1


def test_tracking_urls_carry_tokens_for_their_own_event_type() -> None:
    response = service(campaign()).decide(decision_request(), BASE_URL)
    [ad] = response.ads
    for event_type in EventType:
        url = urlparse(getattr(ad.tracking, event_type.value))
        assert f"{url.scheme}://{url.netloc}" == BASE_URL
        assert url.path == f"/v1/events/{event_type.value}"
        claims = SIGNER.verify(parse_qs(url.query)["t"][0], event_type, NOW)
        assert (claims.decision_id, claims.ad_id, claims.listener) == (
            response.decision_id,
            ad.ad_id,
            pseudonym("listener-1"),
        )
        assert claims.session == f"s:{PSEUDONYMS.session('session-1')}"


def test_the_decision_record_holds_what_retraining_needs() -> None:
    log = RecordingDecisionLog()
    first = campaign(campaign_id="first", advertiser_id="a", value_cpm=20)
    second = campaign(campaign_id="second", advertiser_id="b", value_cpm=10)
    request = decision_request(max_ads=1)
    response = service(first, second, log=log).decide(request, BASE_URL)
    [record] = log.records
    assert record.decision_id == response.decision_id
    assert record.model_version == "constant"
    assert record.listener_features == listener_features(request, NOW, ServingMode.PERSONALISED)
    assert "listener-1" not in record.model_dump_json()
    assert [c.ad_id for c in record.inline_candidates] == ["first-ad-1", "second-ad-1"]
    assert [(c.ad_id, c.rank, c.propensity) for c in record.chosen] == [("first-ad-1", 1, 1.0)]
    assert record.inline_candidates[0].features["category"] == "retail"


def test_a_queue_failure_does_not_fail_the_decision() -> None:
    response = service(campaign(), log=RecordingDecisionLog(fail=True)).decide(decision_request(), BASE_URL)
    assert len(response.ads) == 1


@pytest.mark.parametrize("epsilon", [0.0, 0.2, 1.0])
def test_returned_propensities_are_probabilities(epsilon: float) -> None:
    campaigns = [campaign(campaign_id=f"c{i}", advertiser_id=f"a{i}", value_cpm=i + 1) for i in range(5)]
    decider = service(*campaigns)
    decider.policy = PolicySettings(exploration=EpsilonGreedy(epsilon), token_ttl=timedelta(hours=1))
    for ad in decider.decide(decision_request(max_ads=5), BASE_URL).ads:
        assert 0 < ad.propensity <= 1


def test_a_record_over_the_queue_limit_keeps_the_chosen_and_best_candidates() -> None:
    log = RecordingDecisionLog()
    campaigns = [campaign(campaign_id=f"c{i:04d}", advertiser_id=f"a{i:04d}", value_cpm=i + 1) for i in range(300)]
    response = service(*campaigns, log=log).decide(decision_request(max_ads=3), BASE_URL)
    [record] = log.records
    body = record.to_json_within(20_000)
    trimmed = DecisionRecord.model_validate_json(body)
    assert len(body.encode()) <= 20_000
    assert trimmed.candidates_dropped == 300 - len(trimmed.candidates) > 0
    kept = {candidate.ad_id for candidate in trimmed.inline_candidates}
    assert {ad.ad_id for ad in response.ads} <= kept
    assert record.to_json_within(10_000_000) == record.model_dump_json()


def test_records_and_responses_built_from_trusted_values_equal_validated_ones() -> None:
    # Given a decision built without re-validating the catalog's and the model's values
    log = RecordingDecisionLog()
    response = service(campaign(), campaign(campaign_id="c2", advertiser_id="b"), log=log).decide(
        decision_request(max_ads=2), BASE_URL
    )
    [record] = log.records
    # Then validating their own dumps gives equal models: nothing was built that validation would refuse
    assert DecisionRecord.model_validate(record.model_dump()) == record
    assert DecisionResponse.model_validate(response.model_dump()) == response
    assert DecisionRecord.model_validate_json(record.model_dump_json()).model_dump_json() == record.model_dump_json()


def paced(campaign_id: str, probability: float, *, age: timedelta = timedelta(0)) -> PacingState:
    """A pacing state as the step writes it, *age* old at NOW."""
    booked = campaign(campaign_id=campaign_id, budget={"unit": "impressions", "daily": 1000})
    state = pace(booked, None, 0, 0, TrafficProfile.uniform(), NOW - age)
    return state.model_copy(update={"serve_probability": probability})


def test_pacing_throttles_each_campaign_with_its_probability_and_logs_it_per_candidate() -> None:
    budget = {"unit": "impressions", "daily": 1000}
    half = campaign(campaign_id="half", advertiser_id="a", value_cpm=30, budget=budget)
    stopped = campaign(campaign_id="stopped", advertiser_id="b", value_cpm=20, budget=budget)
    unjudged = campaign(campaign_id="unjudged", advertiser_id="c", value_cpm=25, budget=budget)
    stale = campaign(campaign_id="stale", advertiser_id="d", value_cpm=25, budget=budget)
    free = campaign(campaign_id="free", advertiser_id="e", value_cpm=1)
    store = InMemoryPacingStore()
    for state in (paced("half", 0.5), paced("stopped", 0.0), paced("stale", 1.0, age=timedelta(minutes=6))):
        store.put(state)
    log = RecordingDecisionLog()
    decider = service(half, stopped, unjudged, stale, free, log=log, pacing=store)
    served = [decider.decide(decision_request(max_ads=3), BASE_URL) for _ in range(400)]
    assert {ad.campaign_id for response in served for ad in response.ads} == {"half", "free"}
    shown = sum(any(ad.campaign_id == "half" for ad in response.ads) for response in served)
    assert 150 < shown < 250  # p = 0.5 over 400 decisions
    logged = {c.campaign_id: c.serve_probability for record in log.records for c in record.inline_candidates}
    assert logged == {"half": 0.5, "free": 1.0}
    assert store.scans == 1  # one Scan per catalog load, none per decision


# Consent: what a decision may do with the listener's data


def _token(response: DecisionResponse, event_type: EventType) -> str:
    url: str = getattr(response.ads[0].tracking, event_type.value)
    return parse_qs(urlparse(url).query)["t"][0]


def _capped_and_free() -> tuple[Campaign, Campaign]:
    capped = campaign(
        campaign_id="capped", advertiser_id="a", value_cpm=50, frequency_caps=[{"max": 5, "window": "day"}]
    )
    return capped, campaign(campaign_id="free", advertiser_id="b")


def test_without_consent_a_strict_deployment_serves_contextually_and_keeps_nothing_about_the_listener() -> None:
    # Given a strict deployment, a capped and an uncapped campaign, and a request that says nothing of consent
    counters, log = InMemoryCounters(), RecordingDecisionLog()
    decide = service(*_capped_and_free(), counters=counters, log=log, consent=ConsentRules("strict"))
    # When it decides
    response = decide.decide(decision_request(), BASE_URL)
    # Then the listener's counters are never read, the capped campaign is withheld, and the decision is contextual
    assert counters.reads == 0
    assert [ad.campaign_id for ad in response.ads] == ["free"]
    assert response.mode == ServingMode.CONTEXTUAL
    # And nothing stored or signed can be linked to the listener
    [record] = log.records
    assert (record.mode, record.listener_hash, record.cap_check) == ("contextual", None, "not_permitted")
    assert set(record.listener_features) == set(CONTEXTUAL_FIELDS)
    claims = SIGNER.verify(_token(response, EventType.IMPRESSION), EventType.IMPRESSION, NOW)
    assert (claims.listener, claims.session) == (None, "")


def test_a_legacy_deployment_without_consent_personalises_caps_and_measures() -> None:
    counters, log = InMemoryCounters(), RecordingDecisionLog()
    response = service(*_capped_and_free(), counters=counters, log=log).decide(decision_request(), BASE_URL)
    assert counters.reads == 1
    assert response.mode == ServingMode.PERSONALISED
    assert log.records[0].listener_hash == pseudonym("listener-1")
    assert log.records[0].listener_features["device"] == "mobile"


@pytest.mark.parametrize("consent", [{"personalise": True}, {"personalise": True, "cap_frequency": True}, None])
def test_a_minor_is_never_personalised_whatever_the_consent_says(consent: dict[str, bool] | None) -> None:
    # Given a deployment that would personalise without consent, and a listener aged 13-17
    log = RecordingDecisionLog()
    device_targeted = campaign(campaign_id="by-device", advertiser_id="c", targeting={"devices": ["mobile"]})
    decide = service(*_capped_and_free(), device_targeted, log=log)
    listener = {**decision_request().listener.model_dump(mode="json"), "age_bucket": "13-17"}
    response = decide.decide(decision_request(listener=listener, consent=consent), BASE_URL)
    # Then the decision is contextual: no campaign targeting the listener's own fields, none of them logged
    assert response.mode == ServingMode.CONTEXTUAL
    assert "by-device" not in {ad.campaign_id for ad in response.ads}
    assert not {"device", "age_bucket"} & log.records[0].listener_features.keys()


def test_capping_consent_alone_reads_and_signs_the_pseudonym_but_logs_no_listener_fields() -> None:
    counters, log = InMemoryCounters(), RecordingDecisionLog()
    decide = service(*_capped_and_free(), counters=counters, log=log, consent=ConsentRules("strict"))
    response = decide.decide(decision_request(consent={"cap_frequency": True}), BASE_URL)
    assert counters.reads == 1
    assert {ad.campaign_id for ad in response.ads} == {"capped", "free"}
    claims = SIGNER.verify(_token(response, EventType.IMPRESSION), EventType.IMPRESSION, NOW)
    assert claims.listener == pseudonym("listener-1")
    [record] = log.records
    assert (record.mode, record.listener_hash) == ("contextual", None)
    assert set(record.listener_features) == set(CONTEXTUAL_FIELDS)


def test_no_raw_listener_or_session_id_reaches_a_token_or_the_record() -> None:
    log = RecordingDecisionLog()
    response = service(*_capped_and_free(), log=log).decide(decision_request(), BASE_URL)
    assert all(ad.tracking is not None for ad in response.ads)
    payloads = [
        base64.urlsafe_b64decode(token.split(".")[1] + "==").decode()
        for ad in response.ads
        if ad.tracking is not None
        for url in ad.tracking.model_dump().values()
        for token in parse_qs(urlparse(url).query)["t"]
    ]
    stored = [*payloads, log.records[0].model_dump_json(), response.model_dump_json()]
    assert not any("listener-1" in text or "session-1" in text for text in stored)


def test_decision_ids_are_version_7_uuids_that_say_when_in_canonical_text() -> None:
    # When many decision ids are drawn
    before = datetime.now(UTC)
    ids = [new_decision_id() for _ in range(2_000)]
    after = datetime.now(UTC)
    # Then each is a version-7 RFC 9562 UUID written as uuid.UUID writes it, of a time within the draw, and
    # none repeats
    for decision_id in ids:
        parsed = uuid.UUID(decision_id)
        assert (parsed.version, parsed.variant, str(parsed)) == (7, uuid.RFC_4122, decision_id)
        decided = decided_at(decision_id)
        assert decided is not None
        assert before - timedelta(milliseconds=1) <= decided <= after
    assert len(set(ids)) == len(ids)
    assert decided_at(str(uuid.uuid4())) is None
    assert decided_at("d-1") is None


def reloading_service(
    clock: list[float], loads: list[str], load_waits: Callable[[str], None] = lambda _name: None
) -> DecisionService:
    """A service as Decide's wiring builds it, whose catalog and keys count their reloads; each waits in
    *load_waits* (by its name) before answering."""

    def monotonic() -> float:
        return clock[0]

    def loaded(name: str, value: T) -> Callable[[], T]:
        def load() -> T:
            loads.append(name)
            load_waits(name)
            return value

        return load

    class CountedCampaigns(InMemoryCampaigns):
        def list_campaigns(self) -> list[Campaign]:
            loads.append("catalog")
            load_waits("catalog")
            return super().list_campaigns()

    service = in_memory_service(source=CountedCampaigns([campaign()]), monotonic=monotonic)
    signer = RefreshingValue(loaded("signing keys", SIGNER), 300, name="signing keys", monotonic=monotonic)
    keys = RefreshingValue(loaded("pseudonym keys", PSEUDONYMS), 300, name="pseudonym keys", monotonic=monotonic)
    return replace(
        service, signer=signer.get, pseudonyms=keys.get, cached=[keys.reloadable()], signing_keys=signer.reloadable()
    )


def test_at_low_traffic_every_decision_reloads_every_due_value_and_serves() -> None:
    # Given decisions five minutes apart (every value is due on each), with healthy dependencies
    clock, loads = [1_000.0], list[str]()
    service = reloading_service(clock, loads)
    for _ in range(3):
        clock[0] += 301
        loads.clear()
        # Then each decision reloads them all and serves: none waits for a later decision that may come late
        assert service.decide(decision_request(), BASE_URL).ads
        assert sorted(loads) == ["catalog", "pseudonym keys", "signing keys"]


def test_explain_answers_while_the_signing_keys_were_never_loaded_and_a_decision_to_serve_reports_them() -> None:
    # Given an environment whose init could not read the signing keys, and Secrets Manager still failing for them
    attempts = [0]

    def unreadable() -> TokenSigner:
        attempts[0] += 1
        raise SecretKeysUnavailableError("signing keys unreadable")

    signer = RefreshingValue(unreadable, 300, name="signing keys")
    service = replace(in_memory_service(campaign()), signer=signer.get, signing_keys=signer.reloadable())
    # When it explains, then serves
    explained = service.decide(decision_request(explain=True), BASE_URL)
    # Then explain, which signs nothing, answers without waiting on the keys (a read that times out takes seconds);
    # a decision to serve tries them once, on entry, and meets their failure at its read rather than trying again
    assert explained.ads
    assert attempts == [0]
    with pytest.raises(SecretKeysUnavailableError):
        service.decide(decision_request(), BASE_URL)
    assert attempts == [1]


def test_after_an_init_that_loaded_nothing_the_first_decision_loads_every_value_at_once() -> None:
    # Given an environment whose init read neither the catalog nor the keys (its reads failed), and loads that each
    # wait until all three run: one after another, at their reads, the first would give up at the barrier
    clock, loads = [1_000.0], list[str]()
    together = threading.Barrier(3, timeout=30)

    def load_waits(_name: str) -> None:
        together.wait()

    service = reloading_service(clock, loads, load_waits)
    # When the first decision comes
    response = service.decide(decision_request(), BASE_URL)
    # Then it loaded the three at once, each once, waiting for the slowest rather than their sum, and served
    assert sorted(loads) == ["catalog", "pseudonym keys", "signing keys"]
    assert response.ads


def test_a_slow_catalog_reload_does_not_keep_the_keys_waiting_for_a_later_decision() -> None:
    # Given a service whose values were loaded, then all fell due together (sparse traffic), and reloads that each
    # wait until all three run: one after another (the catalog first), the catalog's would give up at the barrier
    clock, loads = [1_000.0], list[str]()
    together = threading.Barrier(3, timeout=30)
    waiting = [False]

    def load_waits(_name: str) -> None:
        if waiting[0]:
            together.wait()

    service = reloading_service(clock, loads, load_waits)
    assert service.decide(decision_request(), BASE_URL).ads
    clock[0] += 301
    loads.clear()
    waiting[0] = True
    # When a decision finds them all due
    response = service.decide(decision_request(), BASE_URL)
    # Then it reloaded all three at once (waiting for the slowest, not their sum) and served from the new catalog:
    # the old one, past its maximum age, serves nothing
    assert sorted(loads) == ["catalog", "pseudonym keys", "signing keys"]
    assert response.ads


@pytest.mark.parametrize("explain", [False, True])
def test_the_model_arm_follows_the_listener_only_where_its_data_may_pick_what_it_is_served(explain: bool) -> None:
    # Without that consent (strict: nothing), a per-listener arm would let every unlinked record's model version
    # carry a stable bit of the listener; the split key is the decision's id instead
    keys: list[str] = []

    def scorer(key: str) -> ConstantScorer:
        keys.append(key)
        return ConstantScorer()

    for rules in (ConsentRules("legacy"), ConsentRules("strict")):
        service = replace(in_memory_service(campaign(), consent=rules), scorer=scorer)
        for _ in range(2):
            service.decide(decision_request(explain=explain), BASE_URL)
    personalised, contextual = keys[:2], keys[2:]
    assert personalised == [pseudonym("listener-1")] * 2
    assert pseudonym("listener-1") not in contextual
    assert len(set(contextual)) == 2  # a key per decision
    assert all(decided_at(key) is not None for key in contextual)  # the decision ids
