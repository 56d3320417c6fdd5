"""Bounded scoring: past ``top_k`` eligible ads, only the top K by a cheap per-ad key reach the model.

The key is ``value_cpm x prior``, the value being the ad's CPM in the ranking currency (``AdCandidate.value``, as
the policy ranks by), where an ad's *prior* is the serving model's own score for it with an
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

Each advertiser's best ad comes first, then the rest by key: a slate serves one ad per advertiser, so K ads of one
advertiser with many creatives would leave a break with one ad and the others' eligible ads unscored. Past K
advertisers, the K with the best keys keep their best ad each.

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
    best_of_advertiser: np.ndarray
    """Per eligible ad when the cut ran, whether it is its advertiser's best (the ads that come first)."""

    @property
    def dropped_count(self) -> int:
        return len(self.dropped_positions)

    def dropped(self) -> list[tuple[AdCandidate, float, bool]]:
        """Each ad cut with its key and whether it was its advertiser's best (explain reports them; serving only
        counts them)."""
        keys, best = self.keys.tolist(), self.best_of_advertiser.tolist()
        return [(self.eligible[position], keys[position], best[position]) for position in self.dropped_positions]

    def lowest_kept(self, *, best_of_advertiser: bool) -> float | None:
        """The lowest key kept among the advertisers' best ads, or among the others; None if none was kept."""
        kept = np.ones(len(self.keys), dtype=bool)
        kept[self.dropped_positions] = False
        among = self.keys[kept & (self.best_of_advertiser == best_of_advertiser)]
        return float(among.min()) if len(among) else None


def prerank(
    index: TargetingIndex, eligible: Sequence[AdCandidate], model: Scorer, encoder: FeatureEncoder, top_k: int
) -> Prerank:
    """Keep ``top_k`` eligible ads: each advertiser's best by ``value_cpm x prior`` first, then the largest keys
    (ties: catalog order)."""
    if len(eligible) <= top_k:
        nothing = np.zeros(0, dtype=np.intp)
        return Prerank(list(eligible), eligible, np.zeros(0), nothing, nothing.astype(bool))
    positions = index.positions(eligible)
    keys = index.priors(model, encoder)[positions]
    by_key = np.argsort(-keys, kind="stable")
    _, firsts = np.unique(index.advertiser_codes(positions)[by_key], return_index=True)
    leaders = np.zeros(len(by_key), dtype=bool)
    leaders[firsts] = True  # where, in key order, each advertiser's best ad sits
    order = np.concatenate([by_key[leaders], by_key[~leaders]])
    best = np.zeros(len(eligible), dtype=bool)
    best[by_key[leaders]] = True
    kept = [eligible[position] for position in np.sort(order[:top_k]).tolist()]
    return Prerank(kept, eligible, keys, np.sort(order[top_k:]), best)
