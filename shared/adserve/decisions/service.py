"""Decide: targeting, frequency caps (one read), batch scoring, the serving policy, tokens and the log."""

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np
from aws_lambda_powertools.metrics import MetricUnit

from adserve.campaigns.frequency_caps import session_key, within_caps
from adserve.core.errors import CapStoreUnavailableError, DecisionLogUnavailableError
from adserve.core.observability import MetricName, logger, metrics
from adserve.core.trusted import trusted
from adserve.core.vocabulary import EventType
from adserve.decisions.api import DecisionRequest, DecisionResponse, ServedAd, TrackingUrls
from adserve.decisions.catalog import CampaignCatalog
from adserve.decisions.policy import Choice, ExplorationPolicy, choose_slate
from adserve.decisions.targeting import AdCandidate, listener_hour
from adserve.decisions.throttling import throttle
from adserve.models.ctr_model import Scorer
from adserve.models.features import CONTEXTUAL_FIELDS, FeatureEncoder
from adserve.outcomes.decision_records import CapCheck, DecisionRecord, LoggedCandidate, LoggedChoice
from adserve.outcomes.tokens import TokenSigner, TrackingClaims
from adserve.privacy.consent import ConsentRules, Permissions, ServingMode
from adserve.privacy.pseudonyms import Pseudonymizer


class CounterReader(Protocol):
    def read_counters(self, listener: str, now: datetime) -> dict[str, int]:
        """All live counters of one listener in one request; raises CapStoreUnavailableError."""
        ...


class DecisionLog(Protocol):
    def publish(self, record: DecisionRecord) -> None: ...


@dataclass(frozen=True)
class PolicySettings:
    exploration: ExplorationPolicy
    token_ttl: timedelta


@dataclass
class DecisionService:
    """One per execution environment; holds no per-request state."""

    catalog: CampaignCatalog
    counters: CounterReader
    scorer: Callable[[str], Scorer]
    """The model for this listener (champion or challenger by its pseudonym); called once per decision."""
    decision_log: DecisionLog
    signer: Callable[[], TokenSigner]
    pseudonyms: Callable[[], Pseudonymizer]
    consent: ConsentRules
    encoder: FeatureEncoder
    policy: PolicySettings
    rng: random.Random
    tracking_base_url: str | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    new_decision_id: Callable[[], str] = lambda: str(uuid.uuid4())
    """A fresh id per decision; a seam so that a fixed seed reproduces a decision byte for byte."""

    def decide(self, request: DecisionRequest, request_base_url: str) -> DecisionResponse:
        """Choose up to max_ads ads; tracking links point at the configured base URL, else the request's."""
        started = time.perf_counter()
        now = self.clock()
        tracking_base_url = self.tracking_base_url or request_base_url
        listener = request.listener
        permissions = self.consent.permissions(request.consent, listener.age_bucket)
        pseudonyms = self.pseudonyms()
        pseudonym = pseudonyms.listener(listener.id)
        session = session_key(pseudonyms.session(listener.session_id) if listener.session_id else None, now)
        in_placement = self.catalog.ads_for(request.placement)
        targeted = in_placement.select(request, now, contextual=not permissions.personalise)
        metrics.add_metric(
            MetricName.CANDIDATES_FILTERED_BY_TARGETING, MetricUnit.Count, len(in_placement) - len(targeted)
        )
        paced = throttle(targeted, self.rng)
        if len(paced) < len(targeted):
            metrics.add_metric(MetricName.CANDIDATES_FILTERED_BY_PACING, MetricUnit.Count, len(targeted) - len(paced))
        counted = pseudonym if permissions.cap_frequency else None
        eligible, cap_check = self._apply_caps(paced, counted, now, session)
        model = self.scorer(pseudonym)
        features = listener_features(request, now, permissions.mode)
        ad_rows, values, advertisers = in_placement.columns(eligible)
        scores = self._score(model, features, ad_rows)
        choices = choose_slate(scores * values, advertisers, request.max_ads, self.policy.exploration, self.rng)
        decision_id = self.new_decision_id()
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
        response = trusted(
            DecisionResponse,
            {"decision_id": decision_id, "model_version": model.version, "mode": permissions.mode, "ads": ads},
        )
        self._log(
            request=request,
            response=response,
            permissions=permissions,
            pseudonym=pseudonym,
            features=features,
            eligible=eligible,
            scores=scores,
            values=values,
            cap_check=cap_check,
            now=now,
        )
        metrics.add_metric(MetricName.DECISIONS, MetricUnit.Count, 1)
        metrics.add_metric(MODE_METRICS[permissions.mode], MetricUnit.Count, 1)
        metrics.add_metric(MetricName.ADS_RETURNED, MetricUnit.Count, len(response.ads))
        if not response.ads:
            metrics.add_metric(MetricName.EMPTY_DECISIONS, MetricUnit.Count, 1)
        metrics.add_metric(MetricName.DECIDE_LATENCY, MetricUnit.Milliseconds, (time.perf_counter() - started) * 1000)
        return response

    def _apply_caps(
        self, targeted: Sequence[AdCandidate], listener: str | None, now: datetime, session: str
    ) -> tuple[list[AdCandidate], CapCheck]:
        """Read the listener's counters once; if that fails, capped campaigns are not served (fail closed).
        Without a listener to count (no capping consent) nothing is read and capped campaigns are withheld.

        Returns the very candidates of *targeted* (the index cuts their columns by identity), fewer or all.
        """
        if not any(ad.caps for ad in targeted):
            return list(targeted), "not_needed"
        if listener is None:
            uncapped = [ad for ad in targeted if not ad.caps]
            metrics.add_metric(
                MetricName.CANDIDATES_FILTERED_BY_CONSENT, MetricUnit.Count, len(targeted) - len(uncapped)
            )
            return uncapped, "not_permitted"
        try:
            counts = self.counters.read_counters(listener, now)
        except CapStoreUnavailableError:
            logger.exception("frequency caps unreadable; serving uncapped campaigns only")
            metrics.add_metric(MetricName.CAP_CHECK_FAILURES, MetricUnit.Count, 1)
            uncapped = [ad for ad in targeted if not ad.caps]
            metrics.add_metric(MetricName.CANDIDATES_FILTERED_BY_CAP, MetricUnit.Count, len(targeted) - len(uncapped))
            return uncapped, "unavailable"
        verdicts: dict[str, bool] = {}
        eligible = []
        for ad in targeted:
            campaign = ad.campaign
            if campaign.campaign_id not in verdicts:
                verdicts[campaign.campaign_id] = within_caps(campaign, ad.caps, counts, now, session)
            if verdicts[campaign.campaign_id]:
                eligible.append(ad)
        metrics.add_metric(MetricName.CANDIDATES_FILTERED_BY_CAP, MetricUnit.Count, len(targeted) - len(eligible))
        return eligible, "ok"

    def _score(self, model: Scorer, features: dict[str, str], ad_rows: np.ndarray) -> np.ndarray:
        if not len(ad_rows):
            return np.zeros(0, dtype=np.float64)
        listener_row = self.encoder.encode_listener(features)
        return model.predict(self.encoder.encode(listener_row, ad_rows)).astype(np.float64)

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

    def _log(
        self,
        *,
        request: DecisionRequest,
        response: DecisionResponse,
        permissions: Permissions,
        pseudonym: str,
        features: dict[str, str],
        eligible: Sequence[AdCandidate],
        scores: np.ndarray,
        values: np.ndarray,
        cap_check: CapCheck,
        now: datetime,
    ) -> None:
        """A decision that cannot be logged is still served: the listener is not punished for our queue."""
        record = DecisionRecord.model_construct(
            decision_id=response.decision_id,
            decided_at=now,
            model_version=response.model_version,
            policy=self.policy.exploration.logged(),
            mode=permissions.mode,
            listener_hash=pseudonym if permissions.measure else None,
            listener_features=features,
            placement=request.placement.value,
            max_ads=request.max_ads,
            cap_check=cap_check,
            candidates=[
                trusted(
                    LoggedCandidate,
                    {**ad.logged, "score": score, "value_cpm": value, "serve_probability": ad.serve_probability},
                )
                for ad, score, value in zip(eligible, scores.tolist(), values.tolist(), strict=True)
            ],
            chosen=[
                trusted(
                    LoggedChoice,
                    {"ad_id": ad.ad_id, "rank": ad.rank, "score": ad.score, "propensity": ad.propensity},
                )
                for ad in response.ads
            ],
        )
        try:
            self.decision_log.publish(record)
        except DecisionLogUnavailableError:
            logger.exception("decision record not published", extra={"decision_id": response.decision_id})
            metrics.add_metric(MetricName.DECISION_LOG_FAILURES, MetricUnit.Count, 1)


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
