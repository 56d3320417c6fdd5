"""How many impressions of each ad a model learned from: what SquareCB's optimism measures uncertainty by.

Counted by the ad's hashed ``ad_id`` index (the one its encoded rows carry, ``FeatureSpec``), so training counts
its rows and Decide looks its candidates up without either knowing ad ids as strings. Written in the model's
manifest (``heard_ads``: parallel sorted lists), read once per model.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from adserve.models.features import FeatureSpec

AD_ID_FIELD = "ad_id"


def ad_id_column(spec: FeatureSpec, *, in_ad_rows: bool) -> int:
    """The column of the ad_id index: in an ad row (the ad fields alone), or in a full index row."""
    position = spec.ad_fields.index(AD_ID_FIELD)
    return position if in_ad_rows else len(spec.listener_fields) + position


@dataclass(frozen=True)
class HeardAds:
    """Sorted ad_id indices and the impressions of each; every other ad was heard 0 times."""

    indices: np.ndarray
    counts: np.ndarray

    @classmethod
    def count(cls, ad_ids: np.ndarray) -> "HeardAds":
        """From the ad_id index of every row a model learned from (one row per heard impression)."""
        indices, counts = np.unique(np.asarray(ad_ids, dtype=np.int64), return_counts=True)
        return cls(indices, counts.astype(np.int64))

    @classmethod
    def from_manifest(cls, document: Mapping[str, Any]) -> "HeardAds":
        if set(document) != {"indices", "counts"}:
            raise ValueError("heard_ads holds exactly indices and counts")
        try:
            indices = np.asarray(document["indices"], dtype=np.int64)
            counts = np.asarray(document["counts"], dtype=np.int64)
        except (OverflowError, TypeError) as error:  # 2**70, or not numbers: a manifest fault, not a crash
            raise ValueError("heard_ads holds lists of 64-bit integers") from error
        if indices.shape != counts.shape or indices.ndim != 1 or np.any(np.diff(indices) <= 0) or np.any(counts < 1):
            raise ValueError("heard_ads needs strictly increasing indices and a positive count for each")
        if indices.size and indices[0] < 0:
            raise ValueError("heard_ads indices are feature indices: none is negative")
        return cls(indices, counts)

    def to_manifest(self) -> dict[str, list[int]]:
        return {"indices": self.indices.tolist(), "counts": self.counts.tolist()}

    def of(self, ad_ids: np.ndarray) -> np.ndarray:
        """The impressions heard of each ad_id index (0 for one never heard), as float64 for the arithmetic."""
        found = np.zeros(len(ad_ids), dtype=np.float64)
        if not self.indices.size:
            return found
        at = np.minimum(np.searchsorted(self.indices, ad_ids), self.indices.size - 1)
        hit = self.indices[at] == ad_ids
        found[hit] = self.counts[at[hit]]
        return found
