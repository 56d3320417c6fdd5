"""The one feature encoder shared by serving and training, so both see identical indices (no skew).

Every field value becomes the token ``"<field>=<value>"`` and is hashed with an unkeyed,
process-stable hash (blake2b, 64 bits) into ``2**hash_bits`` buckets. Python's ``hash()`` is salted per
process and would give every Lambda instance a different model input, so it is never used here.
"""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import numpy as np

LISTENER_FIELDS: tuple[str, ...] = (
    "country",
    "device",
    "age_bucket",
    "content_type",
    "genre",
    "placement",
    "hour_of_day",
    "day_of_week",
)
AD_FIELDS: tuple[str, ...] = ("advertiser_id", "campaign_id", "ad_id", "category", "format")
CONTEXTUAL_FIELDS: tuple[str, ...] = (
    "country",
    "content_type",
    "genre",
    "placement",
    "hour_of_day",
    "day_of_week",
)
"""The listener-side fields a contextual decision uses: the moment, not the person. The others reach the model
as the encoder's unknown value (``field=``), in serving and in training alike, so one model serves both."""
CANDIDATE_FIELDS: tuple[str, ...] = ("exposure", "slot")
"""Fields of one (listener, ad) pair in one decision, neither the listener's nor the ad's alone. ``exposure``: how
often the listener heard the ad's campaign in its capping windows (``exposure_value``). ``slot``: the position in
the break the row's click was observed in (``candidate_features``). Decide logs the raw exposure per candidate and
the rank of each chosen ad in the decision record; the training reader reads them back through the same function."""

SERVING_SLOT: Final = 1
"""The slot every candidate is scored in: the model ranks ads by how they would do first in the break, so the
policy's choice (and each slot's off-policy estimate) is of preference, not of the position an ad was last shown in.
Training rows carry the slot their ad was served in, so a second ad's lower click rate is learned as the slot's."""

EXPOSURE_BUCKETS: tuple[tuple[int, str], ...] = ((0, "0"), (1, "1"), (2, "2"), (4, "3-4"))
"""(highest count, bucket) in order; above the last, ``5+``. Repeats past a handful look alike to a listener, and
a bucket per count would spread the few heavy listeners' rows over many rarely seen tokens."""

HASH_FUNCTION = "blake2b-64"
"""Name of the token hash this module implements; a model trained with another one cannot be served."""


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that decides which index a feature value gets; stored in every model manifest.

    ``version`` names the tokenisation rule (``field=value``) and the meaning of each field's values (the
    exposure buckets); bump it whenever either changes. Index rows hold the listener fields, then the ad fields,
    then the candidate fields. A manifest without ``candidate_fields`` (spec 1, before they existed) has none.
    """

    version: int
    hash_bits: int
    listener_fields: tuple[str, ...]
    ad_fields: tuple[str, ...]
    candidate_fields: tuple[str, ...] = ()
    hash_function: str = HASH_FUNCTION

    @property
    def num_fields(self) -> int:
        return len(self.listener_fields) + len(self.ad_fields) + len(self.candidate_fields)

    @property
    def fields(self) -> tuple[str, ...]:
        """Every field in index-row order."""
        return self.listener_fields + self.ad_fields + self.candidate_fields

    @property
    def hash_size(self) -> int:
        return 1 << self.hash_bits

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "hash_bits": self.hash_bits,
            "listener_fields": list(self.listener_fields),
            "ad_fields": list(self.ad_fields),
            "candidate_fields": list(self.candidate_fields),
            "hash_function": self.hash_function,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureSpec":
        """Parse a manifest's ``feature_spec``; raises ValueError naming the first malformed entry."""
        try:
            version, hash_bits = data["version"], data["hash_bits"]
            listener_fields, ad_fields = data["listener_fields"], data["ad_fields"]
            hash_function = data["hash_function"]
            candidate_fields = data.get("candidate_fields", [])
        except (KeyError, TypeError) as error:
            raise ValueError(f"feature spec lacks {error}") from error
        for name, value in (("version", version), ("hash_bits", hash_bits)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"feature spec {name} must be an integer, got {value!r}")
        if not 1 <= hash_bits <= 62:
            raise ValueError(f"feature spec hash_bits must be in 1..62, got {hash_bits}")
        named = (("listener_fields", listener_fields), ("ad_fields", ad_fields), ("candidate_fields", candidate_fields))
        for name, fields in named:
            if not isinstance(fields, list | tuple) or not all(isinstance(f, str) for f in fields):
                raise ValueError(f"feature spec {name} must be a list of strings, got {fields!r}")
        if not isinstance(hash_function, str):
            raise ValueError(f"feature spec hash_function must be a string, got {hash_function!r}")
        return cls(
            version=version,
            hash_bits=hash_bits,
            listener_fields=tuple(listener_fields),
            ad_fields=tuple(ad_fields),
            candidate_fields=tuple(candidate_fields),
            hash_function=hash_function,
        )


DEFAULT_SPEC = FeatureSpec(
    version=3,
    hash_bits=18,
    listener_fields=LISTENER_FIELDS,
    ad_fields=AD_FIELDS,
    candidate_fields=CANDIDATE_FIELDS,
)
"""Spec 2 added ``exposure``, spec 3 ``slot``; a model of another spec is refused here (``spec_mismatches``)."""


def exposure_value(count: int | None) -> str:
    """The ``exposure`` feature's value for a count of impressions; None (not counted) is the unknown value.

    None covers what Decide did not count: a contextual decision or one without capping consent reads no
    counters, and a campaign without caps has none. An uncapped campaign is *not* given 0: its listeners may
    well have heard it, and calling that 0 would teach the model that a fresh ad clicks like an uncapped
    campaign's average repeat, so "0" stays the token of a counted, unheard ad.
    """
    if count is None:
        return ""
    for highest, bucket in EXPOSURE_BUCKETS:
        if count <= highest:
            return bucket
    return f"{EXPOSURE_BUCKETS[-1][0] + 1}+"


def candidate_features(exposure: int | None, slot: int = SERVING_SLOT) -> dict[str, str]:
    """A candidate's ``CANDIDATE_FIELDS`` values from what the decision record logs of it: the one mapping that
    serving (Decide: every candidate in ``SERVING_SLOT``) and training (the dataset reader: each example in the
    rank it was served at, each slot-1 candidate in slot 1) both use, so a logged decision encodes as it was
    scored, but for the slot it was heard in."""
    return {"exposure": exposure_value(exposure), "slot": str(slot)}


def spec_mismatches(model_spec: FeatureSpec, server_spec: FeatureSpec) -> list[str]:
    """Human-readable reasons why indices from ``server_spec`` would mean something else to the model."""
    return [
        f"{name}: model {getattr(model_spec, name)!r} != server {getattr(server_spec, name)!r}"
        for name in ("version", "hash_function", "hash_bits", "listener_fields", "ad_fields", "candidate_fields")
        if getattr(model_spec, name) != getattr(server_spec, name)
    ]


def spec_supported(model_spec: FeatureSpec, server_spec: FeatureSpec) -> bool:
    """True when the server's encoder produces exactly the indices the model was trained on."""
    return not spec_mismatches(model_spec, server_spec)


_CANDIDATE_ROWS_KEPT = 256
"""Exposures are counts below the caps' maxima and slots a break's few: a few distinct pairs, each kept; past this
many, encoded per call."""


@lru_cache(maxsize=65_536)
def token_index(field: str, value: str, hash_bits: int) -> int:
    """Bucket of ``field=value``; cached because the vocabularies are small and the hot path repeats them."""
    digest = hashlib.blake2b(f"{field}={value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << hash_bits) - 1)


class FeatureEncoder:
    """Turns listener/context and ad feature mappings into rows of hashed field indices."""

    def __init__(self, spec: FeatureSpec = DEFAULT_SPEC) -> None:
        if spec.hash_function != HASH_FUNCTION:
            raise ValueError(f"unsupported hash function {spec.hash_function!r}; this encoder is {HASH_FUNCTION}")
        self.spec = spec
        self._candidate_codes: dict[int, dict[int | None, int]] = {}  # slot -> exposure -> row of the table
        self._candidate_table = np.empty((0, len(spec.candidate_fields)), dtype=np.int64)

    def _encode_one(self, fields: tuple[str, ...], features: Mapping[str, str]) -> np.ndarray:
        bits = self.spec.hash_bits
        return np.array([token_index(f, features.get(f) or "", bits) for f in fields], dtype=np.int64)

    def encode_listener(self, features: Mapping[str, str]) -> np.ndarray:
        """One row (len(listener_fields),); missing or empty values hash as ``field=``, extra keys are ignored."""
        return self._encode_one(self.spec.listener_fields, features)

    def encode_ad(self, features: Mapping[str, str]) -> np.ndarray:
        """One row (len(ad_fields),); computed once per ad and cached by the caller."""
        return self._encode_one(self.spec.ad_fields, features)

    def encode_candidates(self, features: Sequence[Mapping[str, str]]) -> np.ndarray:
        """(n, len(candidate_fields)): each candidate's own values in this decision (``exposure_value``...)."""
        return self._columns([(field, features) for field in self.spec.candidate_fields], len(features))

    def candidate_rows(self, exposures: Sequence[int | None], slot: int = SERVING_SLOT) -> np.ndarray:
        """``encode_candidates`` of ``candidate_features(exposure, slot)`` per exposure: each distinct pair's row is
        encoded once per encoder and kept in a table, so a decision (Decide: every candidate in ``SERVING_SLOT``;
        the dataset reader: every logged candidate and chosen ad) only looks its candidates' rows up."""
        codes = self._candidate_codes.setdefault(slot, {})
        if not codes.keys() >= set(exposures):
            new = [exposure for exposure in dict.fromkeys(exposures) if exposure not in codes]
            if len(self._candidate_table) + len(new) > _CANDIDATE_ROWS_KEPT:
                return self.encode_candidates([candidate_features(exposure, slot) for exposure in exposures])
            first = len(self._candidate_table)
            rows = self.encode_candidates([candidate_features(exposure, slot) for exposure in new])
            self._candidate_table = np.concatenate([self._candidate_table, rows])  # the rows before their codes
            codes.update({exposure: first + i for i, exposure in enumerate(new)})
        rows = np.fromiter(map(codes.__getitem__, exposures), dtype=np.intp, count=len(exposures))
        return self._candidate_table.take(rows, axis=0)  # take: a fraction of a 2-D fancy index's cost

    def encode(self, listener_row: np.ndarray, ad_rows: np.ndarray, candidate_rows: np.ndarray) -> np.ndarray:
        """(n_ads, num_fields): the listener row next to each precomputed ad row and its candidate row."""
        n_listener, n_ad = len(self.spec.listener_fields), ad_rows.shape[1]
        out = np.empty((ad_rows.shape[0], n_listener + n_ad + candidate_rows.shape[1]), dtype=np.int64)
        out[:, :n_listener] = listener_row
        out[:, n_listener : n_listener + n_ad] = ad_rows
        out[:, n_listener + n_ad :] = candidate_rows
        return out

    def encode_rows(
        self,
        listener_features: Sequence[Mapping[str, str]],
        ad_features: Sequence[Mapping[str, str]],
        candidate_features: Sequence[Mapping[str, str]],
    ) -> np.ndarray:
        """(n, num_fields) training matrix: row i is listener i next to ad i and candidate values i."""
        n = len(listener_features)
        if not n == len(ad_features) == len(candidate_features):
            raise ValueError(
                f"{n} listener rows, {len(ad_features)} ad rows and {len(candidate_features)} candidate rows"
            )
        columns = [(field, listener_features) for field in self.spec.listener_fields]
        columns += [(field, ad_features) for field in self.spec.ad_fields]
        columns += [(field, candidate_features) for field in self.spec.candidate_fields]
        return self._columns(columns, n)

    def _columns(self, columns: Sequence[tuple[str, Sequence[Mapping[str, str]]]], n: int) -> np.ndarray:
        bits = self.spec.hash_bits
        out = np.empty((n, len(columns)), dtype=np.int64)
        for j, (field, rows) in enumerate(columns):
            values = [row.get(field) or "" for row in rows]
            lookup = {value: token_index(field, value, bits) for value in set(values)}
            out[:, j] = np.fromiter((lookup[v] for v in values), dtype=np.int64, count=n)
        return out
