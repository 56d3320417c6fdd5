"""Decide: targeting, frequency caps (one read), batch scoring, the serving policy, tokens and the log."""

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np
from aws_lambda_powertools.metrics import MetricUnit

from adserve.campaigns.frequency_caps import CounterReading, first_full_cap, session_key
from adserve.core.decision_ids import new_decision_id
from adserve.core.errors import CapStoreUnavailableError, DecisionLogUnavailableError
from adserve.core.observability import MetricName, count_degraded, emit, logger
from adserve.core.refreshing import Reloadable, Reloadables, reloaded_first
from adserve.core.trusted import trusted
from adserve.core.vocabulary import EventType
from adserve.decisions.api import (
    DecisionRequest,
    DecisionResponse,
    ExplainedAd,
    Explanation,
    Rule,
    Scoring,
    ServedAd,
    TrackingUrls,
)
from adserve.decisions.catalog import CampaignCatalog
from adserve.decisions.explain import (
    cap_state,
    contributions,
    decomposition_mismatch,
    listed,
    listener_values,
    removed,
    targeting_removal,
)
from adserve.decisions.policy import (
    Choice,
    ExplorationPolicy,
    SquareCB,
    choose_slate,
    relative_uncertainty,
    served_exploration,
)
from adserve.decisions.prerank import DEFAULT_TOP_K, Prerank, prerank
from adserve.decisions.targeting import AdCandidate, listener_hour
from adserve.decisions.throttling import throttle
from adserve.models.ctr_model import Decomposable, Scorer, Trained
from adserve.models.factorization import FmTerms
from adserve.models.features import CONTEXTUAL_FIELDS, FeatureEncoder, FeatureSpec, candidate_features
from adserve.models.heard_ads import HeardAds, ad_id_column
from adserve.outcomes.decision_records import (
    CapCheck,
    CompactCandidates,
    DecisionRecord,
    LoggedCandidate,
    LoggedChoice,
    LoggedPolicy,
    exposure_column,
)
from adserve.outcomes.tokens import TokenSigner, TrackingClaims
from adserve.privacy.consent import ConsentRules, Permissions, ServingMode
from adserve.privacy.pseudonyms import Pseudonymizer


class CounterReader(Protocol):
    def read_counters(self, listener: str, now: datetime) -> dict[str, int]:
        """All live counters of one listener in one request; raises CapStoreUnavailableError."""
        ...


class DecisionLog(Protocol):
    def publish(self, record: DecisionRecord) -> None: ...


@dataclass(frozen=True, slots=True)
class ServedExploration:
    """The policy one model serves with, that policy as its records name it, and, for SquareCB's optimism, the
    impressions of each ad the model learned from."""

    policy: ExplorationPolicy
    logged: LoggedPolicy
    heard: HeardAds | None = None

    def heard_of(self, ad_rows: np.ndarray, spec: FeatureSpec) -> np.ndarray | None:
        """The impressions of each candidate's ad the model learned from, for the policy's optimism; None without."""
        if self.heard is None:
            return None
        return self.heard.of(ad_rows[:, ad_id_column(spec, in_ad_rows=True)])

    def uncertainty(self, scores: np.ndarray, ad_rows: np.ndarray, spec: FeatureSpec) -> np.ndarray | None:
        """Each candidate's ``relative_uncertainty`` for the policy's optimism; None without one."""
        heard = self.heard_of(ad_rows, spec)
        return None if heard is None else relative_uncertainty(scores, heard)


@dataclass(frozen=True)
class PolicySettings:
    exploration: ExplorationPolicy
    """The configured policy; with ``gamma_scale``, SquareCB's gamma is each model's and this one's is the cap."""
    token_ttl: timedelta
    prerank_top_k: int = DEFAULT_TOP_K
    """Past this many eligible ads only the top K by ``value_cpm x prior`` are scored (``decisions.prerank``)."""
    gamma_scale: float = 0.0
    """SquareCB's gamma grows with the decisions each model learned from (``policy.served_exploration``); 0: off."""
    _by_version: dict[str, ServedExploration] = field(default_factory=dict, init=False, repr=False, compare=False)

    def for_model(self, model: Scorer) -> ServedExploration:
        """The policy ``model`` serves with: derived from its manifest at its first decision, then one lookup.

        Keyed by version, which is immutable, so a model's gamma never changes while it serves.
        """
        served = self._by_version.get(model.version)
        if served is None:
            served = self._by_version[model.version] = self._served(model)
        return served

    def _served(self, model: Scorer) -> ServedExploration:
        logged, heard = (model.logged_decisions, model.heard_ads) if isinstance(model, Trained) else (None, None)
        policy = served_exploration(self.exploration, self.gamma_scale, logged, heard_counted=heard is not None)
        optimistic = isinstance(policy, SquareCB) and policy.optimism > 0.0
        return ServedExploration(policy, policy.logged(), heard if optimistic else None)

    def logged_for(self, model_version: str) -> LoggedPolicy:
        """The logged policy of a model that has served this decision (``for_model`` was called for it)."""
        return self._by_version[model_version].logged


@dataclass
class DecisionService:
    """One per execution environment; holds no per-request state."""

    catalog: CampaignCatalog
    counters: CounterReader
    scorer: Callable[[str], Scorer]
    """The model of a decision, champion or challenger by a key: the listener's pseudonym when its data may pick what
    it is served (``personalise``), else the decision's id, so a listener without that consent is not held to one arm
    (which every record's model version would show); called once per decision."""
    decision_log: DecisionLog
    signer: Callable[[], TokenSigner]
    pseudonyms: Callable[[], Pseudonymizer]
    consent: ConsentRules
    encoder: FeatureEncoder
    policy: PolicySettings
    rng: random.Random
    tracking_base_url: str | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    new_decision_id: Callable[[], str] = new_decision_id
    """A fresh id per decision; a seam so that a fixed seed reproduces a decision byte for byte."""
    cached: Sequence[Reloadable] = ()
    """The cached values every decision reads besides its catalog (model pointer, pseudonym keys): with the catalog,
    the due ones reload at once before it, and within it they serve as held (``reloaded_first``)."""
    signing_keys: Reloadable | None = None
    """The signing keys' cache (``signer``), listed so for a decision that serves; explain signs nothing, so its entry
    neither reloads them nor waits for a first load of them that keeps failing."""
    _serving: Reloadables = field(init=False, repr=False, compare=False)
    _explaining: Reloadables = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        read = (self.catalog.reloadable(), *self.cached)
        self._explaining = Reloadables(read)
        self._serving = Reloadables(read if self.signing_keys is None else (*read, self.signing_keys))

    def decide(self, request: DecisionRequest, request_base_url: str) -> DecisionResponse:
        """Choose up to max_ads ads; tracking links point at the configured base URL, else the request's.

        An explain request (``request.explain``) takes its own branch (``_explain``), so serving pays nothing
        for it: its ads carry no tracking URLs, it reads the caps but counts nothing, and its decision record
        is flagged ``explain`` (Record leaves it out of the request counts, training skips it).

        The cached values that are due (the catalog and ``cached``) reload first, at once (``reloaded_first``): a
        decision waits for the slowest of their time budgets, not their sum, and none that is due when it starts
        waits for a later one.
        """
        if request.explain:
            with reloaded_first(self._explaining):
                return self._explain(request)
        with reloaded_first(self._serving):
            return self._serve(request, request_base_url)

    def _serve(self, request: DecisionRequest, request_base_url: str) -> DecisionResponse:
        started = time.perf_counter()
        now = self.clock()
        tracking_base_url = self.tracking_base_url or request_base_url
        listener = request.listener
        permissions = self.consent.permissions(request.consent, listener.age_bucket)
        in_placement = self.catalog.ads_for(request.placement)
        pseudonyms = self.pseudonyms()
        pseudonym = pseudonyms.listener(listener.id)
        session = session_key(pseudonyms.session(listener.session_id) if listener.session_id else None, now)
        selected = in_placement.select_positions(request, now, contextual=not permissions.personalise)
        targeted = in_placement.at(selected)
        emit(MetricName.CANDIDATES_FILTERED_BY_TARGETING, MetricUnit.Count, len(in_placement) - len(targeted))
        paced = throttle(targeted, self.rng)
        if len(paced) < len(targeted):
            emit(MetricName.CANDIDATES_FILTERED_BY_PACING, MetricUnit.Count, len(targeted) - len(paced))
        counted = pseudonym if permissions.cap_frequency else None
        within_caps, cap_check, reading = self._apply_caps(paced, counted, now, session)
        decision_id = self.new_decision_id()
        model = self.scorer(pseudonym if permissions.personalise else decision_id)
        ranked = prerank(in_placement, within_caps, model, self.encoder, self.policy.prerank_top_k)
        if ranked.dropped_count:
            emit(MetricName.CANDIDATES_FILTERED_BY_PRERANK, MetricUnit.Count, ranked.dropped_count)
        eligible = ranked.kept
        features = listener_features(request, now, permissions.mode)
        exposures = exposures_of(eligible, reading if permissions.personalise else None, now, session)
        # Pacing, caps and pre-ranking only remove ads: when none did, the selection's positions are theirs.
        positions = selected if len(eligible) == len(targeted) else in_placement.positions(eligible)
        ad_rows, values, advertisers = in_placement.columns(positions)
        scores = self._score(model, features, ad_rows, exposures)
        choices = self._choose(
            model, scores=scores, values=values, ad_rows=ad_rows, advertisers=advertisers, max_ads=request.max_ads
        )
        ads = self._served_ads(
            decision_id=decision_id,
            listener=counted,
            session=session if counted else "",
            eligible=eligible,
            scores=scores,
            choices=choices,
            base_url=tracking_base_url,
            now=now,
        )
        response = self._answer(
            request=request,
            decision_id=decision_id,
            model_version=model.version,
            ads=ads,
            explanation=None,
            permissions=permissions,
            pseudonym=pseudonym,
            features=features,
            eligible=eligible,
            scores=scores,
            values=values,
            cap_check=cap_check,
            exposures=exposures,
            now=now,
            prerank_dropped=ranked.dropped_count,
        )
        emit(MetricName.DECISIONS, MetricUnit.Count, 1)
        emit(MODE_METRICS[permissions.mode], MetricUnit.Count, 1)
        emit(MetricName.ADS_RETURNED, MetricUnit.Count, len(response.ads))
        if not response.ads:
            emit(MetricName.EMPTY_DECISIONS, MetricUnit.Count, 1)
        emit(MetricName.DECIDE_LATENCY, MetricUnit.Milliseconds, (time.perf_counter() - started) * 1000)
        return response

    def _explain(self, request: DecisionRequest) -> DecisionResponse:
        """Decide as ``decide`` does, but say for every ad of the catalog which rule removed it.

        The rules run in the serving path's order: targeting (``explain.targeting_removal``), pacing (the same
        ``throttle``, its draws kept), capping consent and caps (one read, as ``_apply_caps``), scoring and
        the same ``choose_slate`` (its slot distributions kept).
        """
        now = self.clock()
        listener = request.listener
        permissions = self.consent.permissions(request.consent, listener.age_bucket)
        pseudonyms = self.pseudonyms()
        pseudonym = pseudonyms.listener(listener.id)
        session = session_key(pseudonyms.session(listener.session_id) if listener.session_id else None, now)
        index, campaigns = self.catalog.view(request.placement)
        contextual = not permissions.personalise
        values = listener_values(request, now)
        in_index = {(ad.campaign.campaign_id, ad.ad_id): ad for ad in index.ads}
        verdicts: dict[tuple[str, str], ExplainedAd] = {}
        targeted: list[AdCandidate] = []
        for campaign in campaigns:
            for creative in campaign.creatives:
                key = (campaign.campaign_id, creative.ad_id)
                removal = targeting_removal(
                    campaign,
                    creative.ad_id,
                    request,
                    now,
                    values,
                    contextual=contextual,
                    rates=self.catalog.exchange_rates,
                )
                if removal is not None:
                    verdicts[key] = removal
                elif key in in_index:
                    targeted.append(in_index[key])
                else:  # a budgeted campaign the catalog stopped serving (``CatalogSnapshot.serving``)
                    verdicts[key] = removed(
                        campaign,
                        creative.ad_id,
                        Rule.PACING,
                        "its pacing state is older than PACING_MAX_AGE_SECONDS, or was read a pacing step and a "
                        "refresh ago with no read since: it sits out until a fresh one",
                        serve_probability=0.0,
                    )
        drawn: dict[str, float] = {}
        paced = throttle(targeted, self.rng, drawn)
        kept = {id(ad) for ad in paced}
        for ad in targeted:
            if id(ad) not in kept:
                draw = drawn[ad.campaign.campaign_id]
                verdicts[(ad.campaign.campaign_id, ad.ad_id)] = removed(
                    ad.campaign,
                    ad.ad_id,
                    Rule.PACING,
                    f"pacing serves it with probability {ad.serve_probability:.4g}; the draw was {draw:.4g}",
                    serve_probability=ad.serve_probability,
                    draw=draw,
                )
        counted = pseudonym if permissions.cap_frequency else None
        within_caps, cap_check, reading = self._explain_caps(paced, counted, now, session, verdicts)
        decision_id = self.new_decision_id()
        model = self.scorer(pseudonym if permissions.personalise else decision_id)
        ranked = prerank(index, within_caps, model, self.encoder, self.policy.prerank_top_k)
        verdicts.update(self._prerank_verdicts(ranked, len(within_caps)))
        eligible = ranked.kept
        features = listener_features(request, now, permissions.mode)
        exposures = exposures_of(eligible, reading if permissions.personalise else None, now, session)
        ad_rows, values_cpm, advertisers = index.columns(index.positions(eligible))
        indices = self._indices(features, ad_rows, exposures)
        scores = self._score(model, features, ad_rows, exposures)
        slots: list[np.ndarray] = []
        choices = self._choose(
            model,
            scores=scores,
            values=values_cpm,
            ad_rows=ad_rows,
            advertisers=advertisers,
            max_ads=request.max_ads,
            trace=slots,
        )
        scorings, unavailable = self._scorings(
            model,
            features=features,
            eligible=eligible,
            indices=indices,
            ad_rows=ad_rows,
            scores=scores,
            values_cpm=values_cpm,
            exposures=exposures,
            slots=slots,
        )
        chosen = {choice.index: choice for choice in choices}
        for position, ad in enumerate(eligible):
            verdicts[(ad.campaign.campaign_id, ad.ad_id)] = self._policy_verdict(
                ad,
                position=position,
                eligible=eligible,
                chosen=chosen,
                choices=choices,
                max_ads=request.max_ads,
                scoring=scorings[position],
            )
        ads = [
            trusted(
                ServedAd,
                {
                    "ad_id": eligible[choice.index].ad_id,
                    "campaign_id": eligible[choice.index].campaign.campaign_id,
                    "advertiser_id": eligible[choice.index].campaign.advertiser_id,
                    "creative": eligible[choice.index].view,
                    "score": float(scores[choice.index]),
                    "propensity": choice.propensity,
                    "rank": choice.rank,
                    "tracking": None,
                },
            )
            for choice in choices
        ]
        wanted = request.explain_campaign
        ordered, omitted = listed(
            [
                verdicts[(c.campaign_id, creative.ad_id)]
                for c in campaigns
                if wanted is None or c.campaign_id == wanted
                for creative in c.creatives
            ]
        )
        explanation = trusted(
            Explanation, {"ads": ordered, "contributions_unavailable": unavailable, "omitted": omitted}
        )
        response = self._answer(
            request=request,
            decision_id=decision_id,
            model_version=model.version,
            ads=ads,
            explanation=explanation,
            permissions=permissions,
            pseudonym=pseudonym,
            features=features,
            eligible=eligible,
            scores=scores,
            values=values_cpm,
            cap_check=cap_check,
            exposures=exposures,
            now=now,
            prerank_dropped=ranked.dropped_count,
        )
        emit(MetricName.EXPLAINED_DECISIONS, MetricUnit.Count, 1)
        return response

    def _explain_caps(
        self,
        paced: Sequence[AdCandidate],
        listener: str | None,
        now: datetime,
        session: str,
        verdicts: dict[tuple[str, str], ExplainedAd],
    ) -> tuple[list[AdCandidate], CapCheck, CounterReading | None]:
        """``_apply_caps`` with reasons: the first full cap of each refused campaign, with its count."""
        if not any(ad.caps for ad in paced):
            return list(paced), "not_needed", None
        counts: dict[str, int] | None = None
        if listener is not None:
            try:
                counts = self.counters.read_counters(listener, now)
            except CapStoreUnavailableError:
                logger.exception("frequency caps unreadable; explaining with capped campaigns withheld")
        eligible = []
        for ad in paced:
            key = (ad.campaign.campaign_id, ad.ad_id)
            if not ad.caps:
                eligible.append(ad)
            elif listener is None:
                verdicts[key] = removed(
                    ad.campaign, ad.ad_id, Rule.CONSENT, "a capped campaign, and the listener gave no capping consent"
                )
            elif counts is None:
                verdicts[key] = removed(
                    ad.campaign, ad.ad_id, Rule.FREQUENCY_CAP, "the caps table is unreadable: capped ads are withheld"
                )
            elif (full := first_full_cap(ad.campaign, ad.caps, counts, now, session)) is not None:
                cap, count = full
                verdicts[key] = removed(
                    ad.campaign,
                    ad.ad_id,
                    Rule.FREQUENCY_CAP,
                    f"{cap.scope.value} cap of {cap.max} per {cap.window.value}: the listener is at {count}",
                    cap=cap_state(cap, count),
                )
            else:
                eligible.append(ad)
        check: CapCheck = "not_permitted" if listener is None else "unavailable" if counts is None else "ok"
        return eligible, check, None if counts is None else CounterReading.of(counts)

    def _scorings(
        self,
        model: Scorer,
        *,
        features: dict[str, str],
        eligible: Sequence[AdCandidate],
        indices: np.ndarray,
        ad_rows: np.ndarray,
        scores: np.ndarray,
        values_cpm: np.ndarray,
        exposures: list[int | None],
        slots: list[np.ndarray],
    ) -> tuple[list[Scoring], str | None]:
        """What explain says of each eligible ad's scoring, and why there are no contributions (None: there are)."""
        terms, unavailable = self._decompose(model, indices, scores)
        heard = self.policy.for_model(model).heard_of(ad_rows, self.encoder.spec)
        terms_of = [None] * len(eligible) if terms is None else contributions(terms, self.encoder.spec.fields)
        scorings = [
            trusted(
                Scoring,
                {
                    "score": float(scores[position]),
                    "value_cpm": float(values_cpm[position]),
                    "expected_value": float(scores[position] * values_cpm[position]),
                    "rank_probabilities": [float(slot[position]) for slot in slots],
                    "features": {**features, **ad.features, **candidate_features(exposures[position])},
                    "contributions": terms_of[position],
                    "heard": None if heard is None else int(heard[position]),
                },
            )
            for position, ad in enumerate(eligible)
        ]
        return scorings, unavailable

    def _prerank_verdicts(self, ranked: Prerank, eligible: int) -> dict[tuple[str, str], ExplainedAd]:
        """The ads pre-ranking kept from the model, each with its key and the lowest kept one."""
        verdicts = {}
        cut = (
            f"pre-ranking scored only the top {self.policy.prerank_top_k} of {eligible} eligible ads by value_cpm x "
            "prior score, each advertiser's best first"
        )
        for ad, key, best in ranked.dropped():
            last = ranked.lowest_kept(best_of_advertiser=best)
            if best:  # more advertisers than places: the places went to the advertisers with better best ads
                why = f"its key {key:.4g}, its advertiser's best, is below the last advertiser's best kept, {last:.4g}"
            elif last is None:
                why = "the advertisers' best ads took every place, and it is not its advertiser's best"
            else:
                why = f"it is not its advertiser's best, and its key {key:.4g} is below the last other kept, {last:.4g}"
            verdicts[(ad.campaign.campaign_id, ad.ad_id)] = removed(
                ad.campaign, ad.ad_id, Rule.PRERANK, f"{cut}: {why}"
            )
        return verdicts

    @staticmethod
    def _policy_verdict(
        ad: AdCandidate,
        *,
        position: int,
        eligible: Sequence[AdCandidate],
        chosen: dict[int, Choice],
        choices: list[Choice],
        max_ads: int,
        scoring: Scoring,
    ) -> ExplainedAd:
        """Served, out of the pool once its advertiser filled a slot with more to fill, or not drawn."""
        campaign = ad.campaign
        choice = chosen.get(position)
        if choice is not None:
            detail = f"served at rank {choice.rank} with probability {choice.propensity:.4g}"
            return removed(
                campaign, ad.ad_id, Rule.SERVED, detail, rank=choice.rank, propensity=choice.propensity, scoring=scoring
            )
        sibling = next((c for c in choices if eligible[c.index].campaign.advertiser_id == campaign.advertiser_id), None)
        if sibling is not None and sibling.rank < max_ads:
            by = eligible[sibling.index].ad_id
            detail = f"its advertiser's ad {by} took rank {sibling.rank}; one ad per advertiser"
            return removed(
                campaign, ad.ad_id, Rule.ADVERTISER_SEPARATION, detail, by_ad_id=by, rank=sibling.rank, scoring=scoring
            )
        first = scoring.rank_probabilities[0] if scoring.rank_probabilities else 0.0
        detail = f"the policy did not draw it (probability {first:.4g} at rank 1)"
        return removed(campaign, ad.ad_id, Rule.NOT_CHOSEN, detail, scoring=scoring)

    @staticmethod
    def _decompose(model: Scorer, indices: np.ndarray, scores: np.ndarray) -> tuple[FmTerms | None, str | None]:
        """The FM's terms for the scored rows, or why there are none (never an error: explain still answers)."""
        if not isinstance(model, Decomposable):
            return None, f"model {model.version} offers no parameters to decompose"
        parameters = model.fm_parameters()
        if isinstance(parameters, str):
            return None, parameters
        terms = parameters.terms(indices)
        mismatch = decomposition_mismatch(terms, scores)
        if mismatch is not None:
            return None, f"model {model.version}: {mismatch}"
        return terms, None

    def _apply_caps(
        self, targeted: Sequence[AdCandidate], listener: str | None, now: datetime, session: str
    ) -> tuple[list[AdCandidate], CapCheck, CounterReading | None]:
        """Read the listener's counters once; if that fails, capped campaigns are not served (fail closed).
        Without a listener to count (no capping consent) nothing is read and capped campaigns are withheld.

        Returns the very candidates of *targeted* (the index cuts their columns by identity), fewer or all, and
        the counters read with what the check derived from them (None when none were), for ``exposures_of``.
        """
        if not any(ad.caps for ad in targeted):
            return list(targeted), "not_needed", None
        if listener is None:
            uncapped = [ad for ad in targeted if not ad.caps]
            emit(MetricName.CANDIDATES_FILTERED_BY_CONSENT, MetricUnit.Count, len(targeted) - len(uncapped))
            return uncapped, "not_permitted", None
        try:
            counts = self.counters.read_counters(listener, now)
        except CapStoreUnavailableError:
            logger.exception("frequency caps unreadable; serving uncapped campaigns only")
            count_degraded(MetricName.CAP_CHECK_FAILURES)
            uncapped = [ad for ad in targeted if not ad.caps]
            emit(MetricName.CANDIDATES_FILTERED_BY_CAP, MetricUnit.Count, len(targeted) - len(uncapped))
            return uncapped, "unavailable", None
        reading = CounterReading.of(counts)
        state = reading.state
        # Most ads of a large catalog: uncapped, or capped but never heard by this listener (``state`` then
        # builds no key). Every capped candidate's state is kept in the reading for ``exposures_of``.
        eligible = [ad for ad in targeted if not ad.caps or state(ad.campaign, ad.counter_caps, now, session)[0]]
        emit(MetricName.CANDIDATES_FILTERED_BY_CAP, MetricUnit.Count, len(targeted) - len(eligible))
        return eligible, "ok", reading

    def _choose(
        self,
        model: Scorer,
        *,
        scores: np.ndarray,
        values: np.ndarray,
        ad_rows: np.ndarray,
        advertisers: np.ndarray,
        max_ads: int,
        trace: list[np.ndarray] | None = None,
    ) -> list[Choice]:
        """The slate ``model`` serves with its exploration policy (``PolicySettings.for_model``)."""
        exploration = self.policy.for_model(model)
        uncertainty = exploration.uncertainty(scores, ad_rows, self.encoder.spec)
        return choose_slate(
            scores * values, advertisers, max_ads, exploration.policy, self.rng, uncertainty=uncertainty, trace=trace
        )

    def _indices(self, features: dict[str, str], ad_rows: np.ndarray, exposures: list[int | None]) -> np.ndarray:
        """Every candidate in ``SERVING_SLOT`` with its exposure (``FeatureEncoder.candidate_rows``)."""
        encoder = self.encoder
        return encoder.encode(encoder.encode_listener(features), ad_rows, encoder.candidate_rows(exposures))

    def _score(
        self, model: Scorer, features: dict[str, str], ad_rows: np.ndarray, exposures: list[int | None]
    ) -> np.ndarray:
        if not len(ad_rows):
            return np.zeros(0, dtype=np.float64)
        return model.predict(self._indices(features, ad_rows, exposures)).astype(np.float64)

    def _served_ads(
        self,
        *,
        decision_id: str,
        listener: str | None,
        session: str,
        eligible: Sequence[AdCandidate],
        scores: np.ndarray,
        choices: list[Choice],
        base_url: str,
        now: datetime,
    ) -> list[ServedAd]:
        signer = self.signer()
        expires_at = int((now + self.policy.token_ttl).timestamp())
        served = []
        for choice in choices:
            ad = eligible[choice.index]
            campaign = ad.campaign
            claims = TrackingClaims(
                decision_id=decision_id,
                ad_id=ad.ad_id,
                campaign_id=campaign.campaign_id,
                advertiser_id=campaign.advertiser_id,
                listener=listener,
                session=session,
                event_type=EventType.IMPRESSION.value,
                expires_at=expires_at,
            )
            served.append(
                trusted(
                    ServedAd,
                    {
                        "ad_id": ad.ad_id,
                        "campaign_id": campaign.campaign_id,
                        "advertiser_id": campaign.advertiser_id,
                        "creative": ad.view,
                        "score": float(scores[choice.index]),
                        "propensity": choice.propensity,
                        "rank": choice.rank,
                        "tracking": tracking_urls(signer, base_url, claims),
                    },
                )
            )
        return served

    def _answer(
        self,
        *,
        request: DecisionRequest,
        decision_id: str,
        model_version: str,
        ads: list[ServedAd],
        explanation: Explanation | None,
        permissions: Permissions,
        pseudonym: str,
        features: dict[str, str],
        eligible: Sequence[AdCandidate],
        scores: np.ndarray,
        values: np.ndarray,
        cap_check: CapCheck,
        exposures: list[int | None],
        now: datetime,
        prerank_dropped: int,
    ) -> DecisionResponse:
        """The response, and its decision record logged (flagged ``explain`` when it carries an explanation).

        A decision that cannot be logged is still served: the listener is not punished for our queue. The
        record is compact (schema 2) when the catalog's snapshot is written, else inline with every ad's features.
        """
        response = trusted(
            DecisionResponse,
            {
                "decision_id": decision_id,
                "model_version": model_version,
                "mode": permissions.mode,
                "ads": ads,
                "explanation": explanation,
            },
        )
        catalog_version = self.catalog.logged_version()
        candidates: list[LoggedCandidate] | CompactCandidates
        if catalog_version is None:
            candidates = [
                trusted(
                    LoggedCandidate,
                    {
                        **ad.logged,
                        "score": score,
                        "value_cpm": value,
                        "serve_probability": ad.serve_probability,
                        "exposure": exposure,
                    },
                )
                for ad, score, value, exposure in zip(
                    eligible, scores.tolist(), values.tolist(), exposures, strict=True
                )
            ]
        else:
            candidates = trusted(
                CompactCandidates,
                {
                    "ad_id": [ad.ad_id for ad in eligible],
                    "score": scores.tolist(),
                    "value_cpm": values.tolist(),
                    "serve_probability": [ad.serve_probability for ad in eligible],
                    "exposure": exposure_column(exposures),
                },
            )
        record = trusted(
            DecisionRecord,
            {
                "kind": "decision",
                "schema_version": 1 if catalog_version is None else 2,
                "catalog_version": catalog_version,
                "decision_id": response.decision_id,
                "decided_at": now,
                "model_version": response.model_version,
                "policy": self.policy.logged_for(response.model_version),
                "mode": permissions.mode,
                "listener_hash": pseudonym if permissions.measure else None,
                "listener_features": features,
                "placement": request.placement.value,
                "max_ads": request.max_ads,
                "cap_check": cap_check,
                "candidates": candidates,
                "chosen": [
                    trusted(
                        LoggedChoice,
                        {"ad_id": ad.ad_id, "rank": ad.rank, "score": ad.score, "propensity": ad.propensity},
                    )
                    for ad in response.ads
                ],
                "candidates_dropped": 0,
                "prerank_dropped": prerank_dropped,
                "explain": explanation is not None,
            },
        )
        try:
            self.decision_log.publish(record)
        except DecisionLogUnavailableError:
            logger.exception("decision record not published", extra={"decision_id": response.decision_id})
            count_degraded(MetricName.DECISION_LOG_FAILURES)
        return response


def exposures_of(
    eligible: Sequence[AdCandidate], reading: CounterReading | None, now: datetime, session: str
) -> list[int | None]:
    """Each candidate's ``exposure`` (``campaigns.frequency_caps.counter_state``), from the counters the caps check
    already read and the states it already derived: no extra round trip, no key built twice. None where nothing
    was counted: no counters read (contextual, no capping consent, no capped candidate, caps unreadable) or an
    uncapped campaign (``features.exposure_value``).
    """
    if reading is None:
        return [None] * len(eligible)
    state = reading.state
    return [None if not ad.caps else state(ad.campaign, ad.counter_caps, now, session)[1] for ad in eligible]


def listener_features(request: DecisionRequest, now: datetime, mode: ServingMode) -> dict[str, str]:
    """The listener's side of the feature encoder's input; the same keys the trainer reads from the log.

    A contextual decision has only CONTEXTUAL_FIELDS: the others are not even logged.
    """
    listener = request.listener
    features = {
        "country": listener.country,
        "device": listener.device.value,
        "age_bucket": listener.age_bucket.value if listener.age_bucket else "",
        "content_type": listener.context.content_type.value,
        "genre": listener.context.genre or "",
        "placement": request.placement.value,
        "hour_of_day": str(listener_hour(request, now)),
        "day_of_week": str(now.weekday()),
    }
    if mode is ServingMode.CONTEXTUAL:
        return {name: features[name] for name in CONTEXTUAL_FIELDS}
    return features


MODE_METRICS = {
    ServingMode.PERSONALISED: MetricName.PERSONALISED_DECISIONS,
    ServingMode.CONTEXTUAL: MetricName.CONTEXTUAL_DECISIONS,
}


EVENT_TYPES = tuple(event_type.value for event_type in EventType)


def tracking_urls(signer: TokenSigner, base_url: str, claims: TrackingClaims) -> TrackingUrls:
    """One URL per event type, each with a token that is valid for that type only.

    Tokens are URL-safe base64 and a dot, which percent-encoding leaves as they are: no quoting needed.
    """
    tokens = signer.sign_each(claims, EVENT_TYPES)
    urls = {
        event_type: f"{base_url}/v1/events/{event_type}?t={token}"
        for event_type, token in zip(EVENT_TYPES, tokens, strict=True)
    }
    return trusted(TrackingUrls, urls)
