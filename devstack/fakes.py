"""In-memory stand-ins for adserve's outbound ports, for unit tests and for benchmarks of our own code.

They implement the same Protocols as the DynamoDB and SQS adapters, so swapping them in needs no patching.
"""

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from adserve.campaigns import Campaign
from adserve.decision_records import DecisionRecord
from adserve.errors import CapStoreUnavailableError, DecisionLogUnavailableError


@dataclass
class InMemoryCampaigns:
    campaigns: list[Campaign] = field(default_factory=list)

    def list_campaigns(self) -> list[Campaign]:
        return list(self.campaigns)


@dataclass
class InMemoryCounters:
    """Counters per listener; `available=False` behaves like an unreachable or throttling table."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    available: bool = True
    reads: int = 0

    def read_counters(self, listener_id: str, now: datetime) -> dict[str, int]:  # noqa: ARG002 (the port's signature)
        self.reads += 1
        if not self.available:
            raise CapStoreUnavailableError("table unreachable")
        return dict(self.counts.get(listener_id, {}))


@dataclass
class RecordingDecisionLog:
    records: list[DecisionRecord] = field(default_factory=list)
    fail: bool = False

    def publish(self, record: DecisionRecord) -> None:
        if self.fail:
            raise DecisionLogUnavailableError("queue unreachable")
        self.records.append(record)


@dataclass
class ConstantScorer:
    """Scores every ad the same, so the policy's choice rests on value alone."""

    score: float = 0.05
    version: str = "constant"

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return np.full(len(indices), self.score, dtype=np.float32)
