"""Figure 2: ONNX scoring alone, plus our like-for-like counterpart of the VW peer's predict.

``onnx_predict`` times ``CtrModel.predict`` on an index matrix that is already encoded.
``score_path`` times what a request adds around it: the listener's features and their encoding, stacking
the (catalog-time) ad rows, the ONNX call and the epsilon-greedy slate: the part of Decide that the VW
peer's text building + ``predict`` (which returns its exploration pmf) corresponds to.
"""

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
from adserve.decisions.api import DecisionRequest
from adserve.decisions.catalog import ad_features
from adserve.decisions.policy import EpsilonGreedy, choose_slate
from adserve.decisions.service import listener_features
from adserve.models.ctr_model import CtrModel
from adserve.models.features import FeatureEncoder, candidate_features
from adserve.privacy.consent import ServingMode

from bench import catalogs
from bench.decide_latency import EPSILON, MAX_ADS, SIZES, load_model
from bench.stats import iterations_for, measure


def ad_rows(size: int, encoder: FeatureEncoder) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Encoded ad rows (as the catalog caches them), their CPM values and advertisers."""
    campaigns = catalogs.campaigns(size)
    rows = [encoder.encode_ad(ad_features(c, c.creatives[0].ad_id, c.creatives[0].format.value)) for c in campaigns]
    values = np.array([c.value_cpm for c in campaigns], dtype=np.float64)
    return rows, values, [c.advertiser_id for c in campaigns]


@dataclass
class ScorePath:
    """Decide's scoring and policy steps for one request, over ads whose rows the catalog already encoded."""

    model: CtrModel
    encoder: FeatureEncoder
    request: DecisionRequest
    rows: list[np.ndarray]
    values: np.ndarray
    advertisers: list[str]
    rng: random.Random

    def __call__(self) -> int:
        listener_row = self.encoder.encode_listener(
            listener_features(self.request, datetime.now(UTC), ServingMode.PERSONALISED)
        )
        stacked = np.stack(self.rows)  # Decide stacks the per-ad rows on every request
        own = self.encoder.encode_candidates([candidate_features(None)] * len(stacked))
        scores = self.model.predict(self.encoder.encode(listener_row, stacked, own)).astype(np.float64)
        return len(choose_slate(scores * self.values, self.advertisers, MAX_ADS, EpsilonGreedy(EPSILON), self.rng))


def run(quick: bool = False) -> dict[str, Any]:
    encoder = FeatureEncoder()
    model = load_model(encoder)
    request = DecisionRequest.model_validate(catalogs.decision_request_document(MAX_ADS))
    listener_row = encoder.encode_listener(listener_features(request, datetime.now(UTC), ServingMode.PERSONALISED))
    rng = random.Random(3)
    results: dict[str, Any] = {"sizes": {}}
    for size in SIZES:
        rows, values, advertisers = ad_rows(size, encoder)
        indices = encoder.encode(
            listener_row, np.stack(rows), encoder.encode_candidates([candidate_features(None)] * len(rows))
        )
        iterations = iterations_for(size, 3000, quick)
        warmup = max(iterations // 10, 20)
        predict = measure(partial(model.predict, indices), iterations, warmup)
        path = measure(ScorePath(model, encoder, request, rows, values, advertisers, rng), iterations, warmup)
        results["sizes"][str(size)] = {"onnx_predict": predict.to_dict(), "score_path": path.to_dict()}
    return results
