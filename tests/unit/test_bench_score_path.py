"""Figure 2's score path makes Decide's calls and computes the matrix the per-request encoding gave."""

import random
from datetime import UTC, datetime

import numpy as np
from adserve.decisions.api import DecisionRequest
from adserve.decisions.service import listener_features
from adserve.models.features import FeatureEncoder, candidate_features
from adserve.privacy.consent import ServingMode

from bench import catalogs
from bench.decide_latency import MAX_ADS, load_model
from bench.onnx_scoring import ScorePath, ad_columns


def test_the_score_path_scores_every_ad_of_the_catalog_with_the_rows_encoded_per_request() -> None:
    # Given figure 2's score path over figure 1a's catalog of 50 campaigns
    encoder = FeatureEncoder()
    model = load_model(encoder)
    request = DecisionRequest.model_validate(catalogs.decision_request_document(MAX_ADS))
    index, positions = ad_columns(50, model, encoder)
    path = ScorePath(model, encoder, request, index, positions, random.Random(3))
    # When it builds one request's index matrix from the catalog's load-time arrays
    indices, values, _ = path.indices()
    # Then it is the matrix of every ad's own row next to the listener's, encoded from their features per request
    listener_row = encoder.encode_listener(listener_features(request, datetime.now(UTC), ServingMode.PERSONALISED))
    ads = index.ads
    expected = encoder.encode(
        listener_row,
        np.stack([encoder.encode_ad(ad.features) for ad in ads]),
        encoder.encode_candidates([candidate_features(None)] * len(ads)),
    )
    assert len(ads) == 50
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_array_equal(values, [ad.campaign.value_cpm for ad in ads])
    assert path() == MAX_ADS
