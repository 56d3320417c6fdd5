"""A DecisionService on in-memory ports at a fixed clock: what the decision tests build their cases on."""

import random
import time
from collections.abc import Callable
from datetime import timedelta

from adserve.campaigns.currencies import ExchangeRates
from adserve.campaigns.model import Campaign
from adserve.decisions.catalog import CampaignCatalog, CampaignSource
from adserve.decisions.policy import EpsilonGreedy
from adserve.decisions.service import DecisionService, PolicySettings
from adserve.models.ctr_model import Scorer
from adserve.models.features import FeatureEncoder
from adserve.outcomes.tokens import TokenSigner
from adserve.privacy.consent import ConsentRules

from devstack.fakes import (
    ConstantScorer,
    InMemoryCampaigns,
    InMemoryCounters,
    InMemoryPacingStore,
    RecordingDecisionLog,
)
from tests.support.builders import NOW
from tests.support.privacy import PSEUDONYMS

SIGNER = TokenSigner(b"s" * 32)
LEGACY = ConsentRules("legacy")
"""Consent as before it existed: most decision tests are about what a decision does once it may do it all."""


def in_memory_service(
    *campaigns: Campaign,
    counters: InMemoryCounters | None = None,
    log: RecordingDecisionLog | None = None,
    pacing: InMemoryPacingStore | None = None,
    scorer: Scorer | None = None,
    consent: ConsentRules = LEGACY,
    seed: int = 0,
    monotonic: Callable[[], float] = time.monotonic,
    source: CampaignSource | None = None,
    rates: ExchangeRates | None = None,
) -> DecisionService:
    """Greedy (epsilon 0), a constant model unless *scorer*, tokens signed with SIGNER; the catalog lists
    *campaigns*, or reads *source* (which may count its reads), and ranks in USD without other rates unless
    *rates*."""
    encoder = FeatureEncoder()
    model: Scorer = scorer or ConstantScorer()
    return DecisionService(
        catalog=CampaignCatalog(
            source or InMemoryCampaigns(list(campaigns)),
            encoder,
            ttl_seconds=60,
            max_age_seconds=300,
            pacing=pacing or InMemoryPacingStore(),
            pacing_max_age=timedelta(minutes=5),
            clock=lambda: NOW,
            monotonic=monotonic,
            exchange_rates=rates,
        ),
        counters=counters or InMemoryCounters(),
        scorer=lambda _listener: model,
        decision_log=log or RecordingDecisionLog(),
        signer=lambda: SIGNER,
        pseudonyms=lambda: PSEUDONYMS,
        consent=consent,
        encoder=encoder,
        policy=PolicySettings(exploration=EpsilonGreedy(0.0), token_ttl=timedelta(hours=1)),
        rng=random.Random(seed),
        clock=lambda: NOW,
    )
