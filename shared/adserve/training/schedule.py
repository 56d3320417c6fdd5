"""When to retrain: each time the logs have grown by a factor since the newest model's, from a few hundred decisions on.

Until the first retrain the bootstrap model serves, and it knows none of a new deployment's ad ids; every
decision it serves is nearly uniform. Retraining on a clock (every 6 h) makes the first model wait hours
however much traffic there is. A geometric schedule in logged decisions (first at ``first_decisions``, then each
time the logs reach ``growth`` x the decisions the newest model learned from: the champion, or a later retrain that
was not promoted) gives a first model after a few hundred decisions and a new one each time the data doubles, so
the number of retrains grows only with the log of the data, and each costs about as much as all the ones before it
together. Once the logs stop doubling (the training window is full) ``max_interval`` keeps the clock's cadence.

Retrain (the function and ``adserve train``) applies it through ``RetrainRequest.schedule``; the offline
replays derive their rounds from the same rule (``RetrainSchedule.rounds``), so what they measure is what a
deployment runs.
"""

import math
from dataclasses import dataclass
from datetime import timedelta
from itertools import pairwise


@dataclass(frozen=True)
class RetrainSchedule:
    first_decisions: int
    """The logged decisions the first retrain waits for (the bootstrap model serves until then)."""
    growth: float = 2.0
    """A retrain is due when the logs hold this many times the decisions the newest model learned from."""
    max_interval: timedelta = timedelta(hours=6)
    """A champion this old is retrained whatever the count (the logs stop doubling once the window is full)."""

    def __post_init__(self) -> None:
        if self.first_decisions < 1:
            raise ValueError("first_decisions must be at least 1")
        if self.growth <= 1.0:
            raise ValueError("growth must be above 1")
        if self.max_interval <= timedelta(0):
            raise ValueError("max_interval must be positive")

    def next_at(self, champion_decisions: int | None) -> int:
        """The logged decisions at which the next retrain is due, given the champion's ``logged_decisions``
        (None or 0: the bootstrap model, or a model that does not say: the first retrain's count)."""
        if not champion_decisions:
            return self.first_decisions
        return max(self.first_decisions, math.ceil(self.growth * champion_decisions))

    def due(self, decisions: int, champion_decisions: int | None, champion_age: timedelta | None) -> bool:
        """Whether a retrain on ``decisions`` logged decisions is due now; ``champion_age`` is how long the
        champion has served (None: the bootstrap model, which has no deadline)."""
        if champion_age is not None and champion_age >= self.max_interval:
            return True
        return decisions >= self.next_at(champion_decisions)

    def rounds(self, total: int) -> tuple[int, ...]:
        """The decisions served between retrains over a run of ``total`` decisions, each retrain's model
        learning from every decision before it (the offline replays' rounds); the last round ends the run."""
        marks = []
        mark = self.next_at(None)
        while mark < total:
            marks.append(mark)
            mark = self.next_at(mark)
        return tuple(b - a for a, b in pairwise([0, *marks, total]))
