"""The decision record: everything retraining and off-policy evaluation need, logged for every decision.

Shaped after Vowpal Wabbit's DSJSON: the shared (listener) features, every eligible action with its own
features and score, and for the chosen actions the rank and the probability the policy chose them with.
Outcomes (cost/reward) are joined later by (decision_id, ad_id).

Two shapes (``schema_version``). Schema 1 (inline) gives every candidate its ad features. Schema 2 (compact)
names the catalog version instead (``catalog_version``, the content hash of a snapshot written once to the logs
bucket: adserve.outcomes.catalog_snapshots) and keeps per candidate only what varies per request, in columns
(``CompactCandidates``); the readers join the features back (``with_features``), so past the reader every record
is schema 1. Decide writes schema 2 only once its catalog's snapshot is known written, schema 1 otherwise.
"""

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from adserve.core.trusted import trusted
from adserve.privacy.consent import ServingMode

RECORD_KIND: Final = "decision"

CapCheck = Literal["ok", "not_needed", "unavailable", "not_permitted"]
"""Whether caps were read (ok), needed no read, could not be read, or the listener gave no capping consent (in
the last two, capped ads were withheld)."""


class LoggedCandidate(BaseModel):
    model_config = ConfigDict(frozen=True)

    ad_id: str
    campaign_id: str
    advertiser_id: str
    features: dict[str, str]
    score: float
    value_cpm: float
    serve_probability: float = 1.0
    """The pacing throttle it passed (1 for an unpaced campaign): P(competing) = this, README.md#pacing."""
    exposure: int | None = Field(default=None, exclude_if=lambda value: value is None)
    """How often the listener heard its campaign (``campaigns.frequency_caps.counter_state``), the model's
    ``exposure`` feature; None (absent from the JSON) when not counted: uncapped, contextual, no capping consent."""


_EXPOSURE_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_NOT_COUNTED = "."
EXPOSURE_COLUMN_PATTERN = r"^[.0-9a-z]*$"


def exposure_column(exposures: Sequence[int | None]) -> str | None:
    """The compact column of candidates' exposures: ``.`` for not counted, else the count in base 36, at most
    ``z`` (35: the model's buckets end at ``5+``, so a larger count is the same feature); None when none was
    counted."""
    if exposures.count(None) == len(exposures):
        return None
    return "".join([_CHARACTERS.get(exposure) or _character(exposure) for exposure in exposures])


def _character(exposure: int | None) -> str:
    return _NOT_COUNTED if exposure is None else _EXPOSURE_DIGITS[min(exposure, len(_EXPOSURE_DIGITS) - 1)]


_CHARACTERS: dict[int | None, str] = {exposure: _character(exposure) for exposure in (None, *range(36))}
"""``_character`` of every exposure but the rare larger counts: a lookup per candidate, not a branch and a min."""


class CompactCandidates(BaseModel):
    """A schema-2 record's candidates, column by column: what varies per request, in the candidates' order.

    Columns rather than one object per candidate: the field names are written once, not once per candidate
    (bench figure 1g's 1,000 candidates: 47 KB as columns, 97 KB as objects, of SQS's 256 KiB).
    """

    model_config = ConfigDict(frozen=True)

    ad_id: list[str]
    score: list[float]
    value_cpm: list[float]
    serve_probability: list[float]
    exposure: str | None = Field(default=None, exclude_if=lambda value: value is None, pattern=EXPOSURE_COLUMN_PATTERN)
    """``LoggedCandidate.exposure`` per candidate, one character each (``exposure_column``); None (absent from the
    JSON) when no candidate was counted. A character, not a JSON number or null: at 5,000 candidates the list
    cost 20 KB and pushed the record past SQS's limit (bench figure 1g)."""

    @model_validator(mode="after")
    def _columns_align(self) -> "CompactCandidates":
        if not len(self.ad_id) == len(self.score) == len(self.value_cpm) == len(self.serve_probability):
            raise ValueError("the candidate columns differ in length")
        if self.exposure is not None and len(self.exposure) != len(self.ad_id):
            raise ValueError("the candidate columns differ in length")
        return self

    def exposures(self) -> list[int | None]:
        if self.exposure is None:
            return [None] * len(self.ad_id)
        return [None if code == _NOT_COUNTED else _EXPOSURE_DIGITS.index(code) for code in self.exposure]

    def __len__(self) -> int:
        return len(self.ad_id)

    def subset(self, positions: list[int]) -> "CompactCandidates":
        """The candidates at these positions, in this order."""
        return CompactCandidates.model_construct(
            ad_id=[self.ad_id[i] for i in positions],
            score=[self.score[i] for i in positions],
            value_cpm=[self.value_cpm[i] for i in positions],
            serve_probability=[self.serve_probability[i] for i in positions],
            exposure=None if self.exposure is None else "".join(self.exposure[i] for i in positions),
        )


class UnresolvedRecordError(ValueError):
    """A compact record's candidates were needed without its catalog snapshot (read it through the readers)."""


class LoggedChoice(BaseModel):
    model_config = ConfigDict(frozen=True)

    ad_id: str
    rank: int
    score: float
    propensity: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    """The probability the policy chose it: never 0 for a chosen ad (a line saying so is malformed, not an
    infinite weight in every off-policy estimate)."""


PolicyName = Literal["epsilon_greedy", "squarecb"]


class LoggedPolicy(BaseModel):
    """The exploration policy that chose the ads, with its one setting, so OPE can replay its distribution."""

    model_config = ConfigDict(frozen=True)

    name: PolicyName = "epsilon_greedy"
    epsilon: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = None
    gamma: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None
    """The policies' own bounds, checked on reading: a line beyond them is malformed (counted and skipped), not a
    policy that fails every retrain over its window when replayed."""
    optimism: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = Field(
        default=None, exclude_if=lambda optimism: optimism is None
    )
    """SquareCB's optimism (``decisions.policy.SquareCB``), when it had any: written only then, so the records of
    every other policy are byte for byte what they were."""

    @model_validator(mode="after")
    def _has_its_parameter(self) -> "LoggedPolicy":
        parameter = self.gamma if self.name == "squarecb" else self.epsilon
        if parameter is None:
            raise ValueError(f"a {self.name} policy needs its {'gamma' if self.name == 'squarecb' else 'epsilon'}")
        if self.optimism is not None and self.name != "squarecb":
            raise ValueError("only a squarecb policy has an optimism")
        return self


def _as_it_is(candidates: "list[LoggedCandidate] | CompactCandidates") -> Any:
    """The candidates for pydantic to serialize by their own types (``DecisionRecord.candidates``)."""
    return candidates


class DecisionRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["decision"] = "decision"
    schema_version: Literal[1, 2] = Field(default=1, exclude_if=lambda value: value == 1)
    """1: candidates inline with their ad features; 2: compact, features in the catalog snapshot. Absent
    from a schema-1 record's JSON, so it is byte for byte what records were before schema 2 existed."""
    catalog_version: str | None = Field(default=None, exclude_if=lambda value: value is None)
    """Schema 2: the content hash naming the snapshot ``catalogs/<catalog_version>.json.gz`` in the logs bucket."""
    decision_id: str
    decided_at: AwareDatetime
    model_version: str
    policy: LoggedPolicy
    mode: ServingMode = ServingMode.PERSONALISED
    """Records from before consent existed were all personalised."""
    listener_hash: str | None
    """The listener's keyed pseudonym (adserve.privacy.pseudonyms) when it consented to measurement, else None."""
    listener_features: dict[str, str]
    """Only the fields the mode allowed: a contextual record has no device or age bucket."""
    placement: str
    max_ads: int
    cap_check: CapCheck
    candidates: Annotated[
        list[LoggedCandidate] | CompactCandidates,
        Field(union_mode="left_to_right"),
        PlainSerializer(_as_it_is, return_type=Any),
    ]
    """Schema 1: a list of whole candidates; schema 2: ``CompactCandidates``.

    A JSON list can only be the first and an object only the second, so the union is tried left to right, not in
    pydantic's smart mode, which validated 20 inline candidates twice (~14 us a record); and each value is
    serialized by its own type instead of through the union's serializer, which checked every candidate against
    each member first (~20 us). Same values and bytes either way."""
    chosen: list[LoggedChoice]
    candidates_dropped: int = 0
    prerank_dropped: int = Field(default=0, exclude_if=lambda value: not value)
    """Eligible ads pre-ranked out before scoring (``adserve.decisions.prerank``): they had probability 0, so
    they are not candidates; absent from the JSON when none were."""
    explain: bool = Field(default=False, exclude_if=lambda value: not value)
    """An explain request's record (docs/api.md#explain): nothing was shown, so training skips it and Record
    leaves it out of the request counts; absent from the JSON of every other record."""

    @model_validator(mode="after")
    def _shape_matches_schema(self) -> "DecisionRecord":
        compact = isinstance(self.candidates, CompactCandidates)
        if compact != (self.schema_version == 2) or compact != (self.catalog_version is not None):
            raise ValueError("schema 2, a catalog version and compact candidates go together")
        return self

    @property
    def inline_candidates(self) -> list[LoggedCandidate]:
        """The candidates with their features; a compact record must first go through ``with_features``."""
        if isinstance(self.candidates, CompactCandidates):
            raise UnresolvedRecordError(f"decision {self.decision_id} is compact: join its catalog snapshot first")
        return self.candidates

    def with_features(self, ads: Mapping[str, Mapping[str, Any]]) -> "DecisionRecord":
        """A compact record as the schema-1 record of the same decision, from its snapshot's ads (by ad_id:
        ``campaign_id``, ``advertiser_id``, ``features``); a schema-1 record as it is.

        Raises UnresolvedRecordError when a candidate is not in the snapshot.
        """
        columns = self.candidates
        if not isinstance(columns, CompactCandidates):
            return self
        candidates: list[LoggedCandidate] = []
        for ad_id, score, value, probability, exposure in zip(
            columns.ad_id, columns.score, columns.value_cpm, columns.serve_probability, columns.exposures(), strict=True
        ):
            ad = ads.get(ad_id)
            if ad is None:
                raise UnresolvedRecordError(f"ad {ad_id} is not in catalog {self.catalog_version}")
            candidates.append(
                trusted(
                    LoggedCandidate,
                    {
                        "ad_id": ad_id,
                        "campaign_id": ad["campaign_id"],
                        "advertiser_id": ad["advertiser_id"],
                        "features": ad["features"],
                        "score": score,
                        "value_cpm": value,
                        "serve_probability": probability,
                        "exposure": exposure,
                    },
                )
            )
        return self.model_copy(update={"schema_version": 1, "catalog_version": None, "candidates": candidates})

    def to_json_within(self, max_bytes: int) -> str:
        """The record as JSON no larger than max_bytes (a queue's message limit).

        A huge candidate set is trimmed to the best-scored candidates, always keeping the chosen ones, and
        `candidates_dropped` says how many went: off-policy estimates only need the chosen ads' propensities.
        """
        body = self.model_dump_json()
        record = self
        while len(body.encode()) > max_bytes and len(record.candidates):
            candidates = record.candidates
            chosen = {choice.ad_id for choice in record.chosen}
            if isinstance(candidates, CompactCandidates):
                ids, scores = candidates.ad_id, candidates.score
            else:
                ids, scores = [c.ad_id for c in candidates], [c.score for c in candidates]
            keep = max(len(chosen), int(len(ids) * max_bytes / len(body.encode()) * 0.95))
            ranked = sorted(range(len(ids)), key=lambda i: (ids[i] not in chosen, -scores[i]))
            kept = ranked[:keep] if keep < len(ranked) else ranked[: len(ranked) - 1]
            trimmed: list[LoggedCandidate] | CompactCandidates = (
                candidates.subset(kept) if isinstance(candidates, CompactCandidates) else [candidates[i] for i in kept]
            )
            record = record.model_copy(
                update={
                    "candidates": trimmed,
                    "candidates_dropped": self.candidates_dropped + len(self.candidates) - len(kept),
                }
            )
            body = record.model_dump_json()
        return body
