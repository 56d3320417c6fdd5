"""Figure 2: ONNX scoring alone, plus our like-for-like counterpart of the VW peer's predict.

``onnx_predict`` times ``CtrModel.predict`` on an index matrix that is already encoded.
``score_path`` times what a request adds around it, with the calls Decide makes: the listener's features and
their encoding, the ad rows cut from the catalog's load-time arrays, the candidates' rows, the ONNX call and
the epsilon-greedy slate: the part of Decide that the VW peer's text building + ``predict`` (which returns
its exploration pmf) corresponds to.
"""

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
from adserve.core.vocabulary import Placement
from adserve.decisions.api import DecisionRequest
from adserve.decisions.policy import EpsilonGreedy, choose_slate
from adserve.decisions.service import listener_features
from adserve.decisions.targeting import TargetingIndex
from adserve.models.ctr_model import CtrModel
from adserve.models.features import FeatureEncoder
from adserve.privacy.consent import ServingMode

from bench import catalogs
from bench.decide_latency import EPSILON, MAX_ADS, SIZES, fake_service, load_model
from bench.stats import iterations_for, measure


def ad_columns(size: int, model: CtrModel, encoder: FeatureEncoder) -> tuple[TargetingIndex, np.ndarray]:
    """The targeting index of figure 1a's catalog of ``size`` campaigns (its ad rows encoded when the catalog
    loads, as Decide's are) and the positions of all its ads: a request that every ad matches."""
    index = fake_service(size, model, encoder).service.catalog.ads_for(Placement(catalogs.PLACEMENT))
    return index, np.arange(len(index))


@dataclass
class ScorePath:
    """Decide's scoring and policy steps for one request, as ``DecisionService`` runs them: the listener's
    features and row, the ads' rows cut from the catalog's load-time arrays, each candidate's row (no
    exposure: ``candidate_rows``), the ONNX call and the epsilon-greedy slate."""

    model: CtrModel
    encoder: FeatureEncoder
    request: DecisionRequest
    index: TargetingIndex
    positions: np.ndarray
    rng: random.Random

    def indices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The request's index matrix, with the ads' CPM values and advertiser codes."""
        encoder = self.encoder
        features = listener_features(self.request, datetime.now(UTC), ServingMode.PERSONALISED)
        ad_rows, values, advertisers = self.index.columns(self.positions)
        candidates = encoder.candidate_rows([None] * len(ad_rows))
        return encoder.encode(encoder.encode_listener(features), ad_rows, candidates), values, advertisers

    def __call__(self) -> int:
        indices, values, advertisers = self.indices()
        scores = self.model.predict(indices).astype(np.float64)
        return len(choose_slate(scores * values, advertisers, MAX_ADS, EpsilonGreedy(EPSILON), self.rng))


def run(quick: bool = False) -> dict[str, Any]:
    encoder = FeatureEncoder()
    model = load_model(encoder)
    request = DecisionRequest.model_validate(catalogs.decision_request_document(MAX_ADS))
    listener_row = encoder.encode_listener(listener_features(request, datetime.now(UTC), ServingMode.PERSONALISED))
    rng = random.Random(3)
    results: dict[str, Any] = {"sizes": {}}
    for size in SIZES:
        index, positions = ad_columns(size, model, encoder)
        if len(index) != size:
            raise RuntimeError(f"the score path's catalog has {len(index)} ads in the placement, not {size}")
        ad_rows = index.columns(positions)[0]
        indices = encoder.encode(listener_row, ad_rows, encoder.candidate_rows([None] * size))
        iterations = iterations_for(size, 3000, quick)
        warmup = max(iterations // 10, 20)
        predict = measure(partial(model.predict, indices), iterations, warmup)
        path = measure(ScorePath(model, encoder, request, index, positions, rng), iterations, warmup)
        results["sizes"][str(size)] = {"onnx_predict": predict.to_dict(), "score_path": path.to_dict()}
    return results
