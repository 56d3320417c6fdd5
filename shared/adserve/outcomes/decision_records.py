"""The decision record: everything retraining and off-policy evaluation need, logged for every decision.

Shaped after Vowpal Wabbit's DSJSON: the shared (listener) features, every eligible action with its own
features and score, and for the chosen actions the rank and the probability the policy chose them with.
Outcomes (cost/reward) are joined later by (decision_id, ad_id).
"""

from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


class LoggedChoice(BaseModel):
    model_config = ConfigDict(frozen=True)

    ad_id: str
    rank: int
    score: float
    propensity: float


PolicyName = Literal["epsilon_greedy", "squarecb"]


class LoggedPolicy(BaseModel):
    """The exploration policy that chose the ads, with its one setting, so OPE can replay its distribution."""

    model_config = ConfigDict(frozen=True)

    name: PolicyName = "epsilon_greedy"
    epsilon: float | None = None
    gamma: float | None = None

    @model_validator(mode="after")
    def _has_its_parameter(self) -> "LoggedPolicy":
        parameter = self.gamma if self.name == "squarecb" else self.epsilon
        if parameter is None:
            raise ValueError(f"a {self.name} policy needs its {'gamma' if self.name == 'squarecb' else 'epsilon'}")
        return self


class DecisionRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["decision"] = "decision"
    decision_id: str
    decided_at: datetime
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
    candidates: list[LoggedCandidate]
    chosen: list[LoggedChoice]
    candidates_dropped: int = 0
    prerank_dropped: int = Field(default=0, exclude_if=lambda value: not value)
    """Eligible ads pre-ranked out before scoring (``adserve.decisions.prerank``): they had probability 0, so
    they are not candidates; absent from the JSON when none were."""
    explain: bool = Field(default=False, exclude_if=lambda value: not value)
    """An explain request's record (docs/api.md#explain): nothing was shown, so training skips it and Record
    leaves it out of the request counts; absent from the JSON of every other record."""

    def to_json_within(self, max_bytes: int) -> str:
        """The record as JSON no larger than max_bytes (a queue's message limit).

        A huge candidate set is trimmed to the best-scored candidates, always keeping the chosen ones, and
        `candidates_dropped` says how many went: off-policy estimates only need the chosen ads' propensities.
        """
        body = self.model_dump_json()
        record = self
        while len(body.encode()) > max_bytes and record.candidates:
            chosen = {choice.ad_id for choice in record.chosen}
            keep = max(len(chosen), int(len(record.candidates) * max_bytes / len(body.encode()) * 0.95))
            ranked = sorted(record.candidates, key=lambda c: (c.ad_id not in chosen, -c.score))
            kept = ranked[:keep] if keep < len(ranked) else ranked[: len(ranked) - 1]
            record = record.model_copy(
                update={
                    "candidates": kept,
                    "candidates_dropped": self.candidates_dropped + len(self.candidates) - len(kept),
                }
            )
            body = record.model_dump_json()
        return body
