"""Retraining by logged-decision counts: the geometric schedule, its gate in ``retrain`` and its settings."""

import json
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path

import pytest
from adserve.models.registry import ActivePointer
from adserve.training.retraining import retrain
from adserve.training.schedule import RetrainSchedule
from adserve.wiring.retrain import scheduled_request
from adserve.wiring.settings import RetrainSettings

from devstack.fakes import InMemoryLogStore, InMemoryModelStore
from devstack.simulated_logs import Truth
from tests.support.log_store import ListingLogStore
from tests.unit.test_retraining import AS_OF, BOOTSTRAP, request, simulated

__all__ = ["simulated"]  # the shared module fixture: 8,000 simulated decisions

SCHEDULE = RetrainSchedule(first_decisions=1500, growth=2.0, max_interval=timedelta(hours=6))


def test_the_first_retrain_waits_for_first_decisions_and_each_next_for_the_logs_to_double() -> None:
    assert SCHEDULE.next_at(None) == SCHEDULE.next_at(0) == 1500
    assert not SCHEDULE.due(1499, None, None)
    assert SCHEDULE.due(1500, None, None)
    assert SCHEDULE.next_at(1500) == 3000
    assert not SCHEDULE.due(2999, 1500, timedelta(hours=1))
    assert SCHEDULE.due(3000, 1500, timedelta(hours=1))
    assert SCHEDULE.next_at(100) == 1500  # a champion of fewer decisions than the first retrain's waits for those


def test_a_champion_older_than_the_interval_is_retrained_whatever_the_count() -> None:
    # once the training window is full the logs stop doubling: the clock takes over
    assert not SCHEDULE.due(50_000, 40_000, timedelta(hours=5, minutes=59))
    assert SCHEDULE.due(50_000, 40_000, timedelta(hours=6))


def test_the_replays_rounds_retrain_exactly_where_the_schedule_is_due() -> None:
    rounds = SCHEDULE.rounds(80_000)
    assert rounds == (1500, 1500, 3000, 6000, 12_000, 24_000, 32_000)
    marks = list(accumulate(rounds))[:-1]  # the logged decisions at each retrain; the run ends at the last
    for previous, mark in zip([None, *marks], marks, strict=False):
        assert SCHEDULE.due(mark, previous, timedelta(0))
        assert not SCHEDULE.due(mark - 1, previous, timedelta(0))
    assert sum(RetrainSchedule(500, 3.0).rounds(10_000)) == 10_000
    assert RetrainSchedule(20_000).rounds(10_000) == (10_000,)


@pytest.mark.parametrize(
    ("first", "growth", "interval"),
    [(0, 2.0, timedelta(hours=6)), (10, 1.0, timedelta(hours=6)), (10, 2.0, timedelta(0))],
)
def test_a_schedule_that_would_never_or_always_fire_is_refused(first: int, growth: float, interval: timedelta) -> None:
    with pytest.raises(ValueError, match="must be"):
        RetrainSchedule(first, growth, interval)


def test_a_run_that_is_not_due_publishes_nothing_and_says_when_it_will_be(
    simulated: tuple[InMemoryLogStore, Truth], tmp_path: Path
) -> None:
    # Given 8,000 logged decisions and a champion that learned from 5,000 of them, promoted an hour ago
    store, _ = simulated
    models = InMemoryModelStore()
    first = retrain(store, models, request(promotion="never"), work_dir=tmp_path / "a", fallback_model_dir=BOOTSTRAP)
    assert first.version is not None
    assert first.manifest is not None
    models.files[first.version]["manifest.json"] = json.dumps(first.manifest | {"logged_decisions": 5000}).encode()
    models.write_pointer(
        ActivePointer(champion=first.version, updated_at=AS_OF - timedelta(hours=1), updated_by="t"),
        replacing=models.read_pointer(),
    )
    versions = models.versions()
    # When a scheduled run asks for twice the champion's decisions
    listing = ListingLogStore(objects=store.objects)
    result = retrain(listing, models, request(schedule=SCHEDULE), work_dir=tmp_path / "b", fallback_model_dir=BOOTSTRAP)
    # Then it is skipped without publishing, says when the next is due, and read no log object to find out
    assert result.status == "skipped"
    assert (
        f"not due: 8000 logged decisions at most (counted by listing), the newest model ({first.version}) learned "
        "from 5000" in result.message
    )
    assert "due at 10000" in result.message
    assert models.versions() == versions
    assert listing.read == []
    # and the same run after the champion has served for the interval retrains
    models.write_pointer(
        ActivePointer(champion=first.version, updated_at=AS_OF - timedelta(hours=6), updated_by="t"),
        replacing=models.read_pointer(),
    )
    late = retrain(
        store,
        models,
        request(schedule=SCHEDULE, as_of=AS_OF + timedelta(minutes=1)),  # a version named a minute after the first
        work_dir=tmp_path / "c",
        fallback_model_dir=BOOTSTRAP,
    )
    assert late.status == "registered"  # trained and evaluated (the same logs give the same model: not better)
    assert late.manifest is not None
    assert late.manifest["logged_decisions"] == 8000
    # and the next run, a quarter of an hour on, waits for the logs to outgrow that model, registered but not
    # promoted (counted from the champion alone, every run retrained the same logs, a version each)
    versions = models.versions()
    again = retrain(
        store,
        models,
        request(schedule=SCHEDULE, as_of=AS_OF + timedelta(minutes=16)),
        work_dir=tmp_path / "d",
        fallback_model_dir=BOOTSTRAP,
    )
    assert again.status == "skipped"
    assert f"the newest model ({late.version}) learned from 8000" in again.message
    assert "due at 16000" in again.message
    assert models.versions() == versions


def test_the_bootstrap_champion_is_retrained_once_the_first_decisions_are_logged(
    simulated: tuple[InMemoryLogStore, Truth], tmp_path: Path
) -> None:
    store, _ = simulated
    waiting = retrain(
        store,
        InMemoryModelStore(),
        request(schedule=RetrainSchedule(8001)),
        work_dir=tmp_path / "a",
        fallback_model_dir=BOOTSTRAP,
    )
    assert waiting.status == "skipped"
    assert "learned from 0" in waiting.message
    due = retrain(
        store,
        InMemoryModelStore(),
        request(schedule=RetrainSchedule(8000), promotion="never"),
        work_dir=tmp_path / "b",
        fallback_model_dir=BOOTSTRAP,
    )
    assert due.status == "registered"


def test_the_function_gates_by_the_schedule_only_when_first_decisions_are_set() -> None:
    env = {"LOGS_BUCKET_NAME": "logs", "MODELS_BUCKET_NAME": "models", "MODEL_DIR": "/opt/model"}
    now = datetime(2026, 11, 25, tzinfo=UTC)
    assert scheduled_request(RetrainSettings.from_env(env), now).schedule is None
    gated = RetrainSettings.from_env(env | {"RETRAIN_FIRST_DECISIONS": "400", "RETRAIN_GROWTH": "3"})
    assert scheduled_request(gated, now).schedule == RetrainSchedule(400, 3.0, timedelta(hours=6))
