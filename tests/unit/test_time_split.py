"""The trainer's time split: cut points at the quantiles of the decision times, whatever the gaps."""

from datetime import UTC, datetime

import numpy as np
from adserve.training.trainer import TimeSplit, TrainerConfig

CONFIG = TrainerConfig(holdout_fraction=0.2, validation_fraction=0.1)


def _segments(times: np.ndarray, split: TimeSplit) -> tuple[int, int, int]:
    train = int((times < split.validation_start).sum())
    holdout = int((times >= split.holdout_start).sum())
    return train, times.size - train - holdout, holdout


def test_a_pause_over_the_validation_tenth_of_the_clock_leaves_validation_its_share() -> None:
    # 1,000 decisions in the first 60 s, then traffic waits 40 s (the demo's queue pause), then 100 more: a split
    # at fractions of the 0..110 s clock would put validation at 77-88 s, where no decision is.
    times = np.concatenate([np.linspace(0.0, 60.0, 1000), np.linspace(100.0, 110.0, 100)])
    shuffled = np.random.default_rng(7).permutation(times)  # the reader's chunks need not be in order
    assert _segments(shuffled, TimeSplit.of(shuffled, CONFIG, datetime.now(UTC))) == (770, 110, 220)


def test_every_train_decision_precedes_every_validation_and_holdout_decision() -> None:
    times = np.sort(np.random.default_rng(3).exponential(5.0, 5000).cumsum())
    split = TimeSplit.of(times, CONFIG, datetime.now(UTC))
    assert times[times < split.validation_start].max() < split.validation_start <= split.holdout_start
    assert _segments(times, split) == (3500, 500, 1000)


def test_the_rows_of_one_decision_stay_in_one_segment() -> None:
    times = np.repeat(np.arange(10.0), 3)  # ten decisions of three ads each
    split = TimeSplit.of(times, CONFIG, datetime.now(UTC))
    for decided_at in range(10):
        rows = times == decided_at
        assert len({bool(x) for x in (times[rows] < split.validation_start)}) == 1
        assert len({bool(x) for x in (times[rows] >= split.holdout_start)}) == 1


def test_without_examples_both_cuts_are_the_given_instant() -> None:
    at = datetime(2026, 12, 3, 6, tzinfo=UTC)
    assert TimeSplit.of(np.empty(0), CONFIG, at) == TimeSplit(at.timestamp(), at.timestamp())
