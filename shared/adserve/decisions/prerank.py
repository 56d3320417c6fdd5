"""Bounded scoring: past ``top_k`` eligible ads, only the top K by a cheap per-ad key reach the model.

The key is ``value_cpm x prior``, where an ad's *prior* is the serving model's own score for it with an
anonymous listener (every listener field hashed empty): one batched predict over the placement's ads, once
per model version and catalog snapshot (``TargetingIndex.priors``), then a lookup per request. Why this key:
it is what the policy ranks by (score x value) minus the listener's part, so it keeps the ads the model
would rank high for anyone; unlike a hand-made prior it needs no data the catalog lacks and follows each
retrained model; unlike the FM's ad-only terms it works for any model the contract admits, not only a
factorization machine. Sorting 1,000 keys costs microseconds; the model, the record and the policy then
handle K ads instead of all of them.

Why K = 500 by default: with compact decision records each scored ad costs Decide about 0.5 us (features,
ONNX, policy, its record columns): at 1,000 eligible ads K = 100, 200, 500 and 1,000 gave p50 0.7, 0.7, 0.9
and 1.2 ms (two interleaved runs, 2 shared cores, 2026-12-02). What K bounds is the growth: past K eligible
ads only the O(eligible) filters grow, not the scoring or the record. 500 keeps the p99 budget (10 ms) with
ample room while the policy still explores among half of a thousand; a deployment that wants broader
exploration or a tighter tail sets ``PRERANK_TOP_K``. Bench figure 10 measures the default against scoring every ad.

The policy explores among the K only, so every served propensity is exact for what was scored; the ads
pre-ranked out had probability 0, so the decision record leaves them out of its candidates and counts them
(``prerank_dropped``): off-policy estimates see only ads that could have been served. At or under K eligible
ads nothing runs and nothing changes. Ties keep catalog order (a stable sort), so the cut is deterministic.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adserve.decisions.targeting import AdCandidate, TargetingIndex
from adserve.models.ctr_model import Scorer
from adserve.models.features import FeatureEncoder

DEFAULT_TOP_K = 500
"""``PRERANK_TOP_K``'s default: at 1,000 eligible ads, half reach the model (bench figure 10 measures both)."""


@dataclass(frozen=True)
class Prerank:
    kept: list[AdCandidate]
    """The top K in their eligible (catalog) order; all the eligible ads when there are at most K."""
    eligible: Sequence[AdCandidate]
    keys: np.ndarray
    """``value_cpm x prior`` of each eligible ad when the cut ran, else empty."""
    dropped_positions: np.ndarray
    """Where the ads cut sit in ``eligible``, in order."""

    @property
    def dropped_count(self) -> int:
        return len(self.dropped_positions)

    def dropped(self) -> list[tuple[AdCandidate, float]]:
        """Each ad cut with its key (explain reports them; serving only counts them)."""
        keys = self.keys.tolist()
        return [(self.eligible[position], keys[position]) for position in self.dropped_positions.tolist()]

    @property
    def threshold(self) -> float:
        """The lowest kept key (the K-th largest); only meaningful when the cut ran."""
        kept = np.ones(len(self.keys), dtype=bool)
        kept[self.dropped_positions] = False
        return float(self.keys[kept].min())


def prerank(
    index: TargetingIndex, eligible: Sequence[AdCandidate], model: Scorer, encoder: FeatureEncoder, top_k: int
) -> Prerank:
    """Keep the ``top_k`` eligible ads with the largest ``value_cpm x prior`` (ties: catalog order)."""
    if len(eligible) <= top_k:
        return Prerank(list(eligible), eligible, np.zeros(0), np.zeros(0, dtype=np.intp))
    keys = index.priors(model, encoder)[index.positions(eligible)]
    order = np.argsort(-keys, kind="stable")
    kept = [eligible[position] for position in np.sort(order[:top_k]).tolist()]
    return Prerank(kept, eligible, keys, np.sort(order[top_k:]))
