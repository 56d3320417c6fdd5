"""ModelProvider on an in-memory models bucket and a fake clock: pointer checks, splits, refusals, fallbacks."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from adserve.core.observability import MetricName, metrics
from adserve.models.ctr_model import CtrModel, Scorer
from adserve.models.features import DEFAULT_SPEC
from adserve.models.registry import ActivePointer, listener_bucket
from adserve.models.serving import ModelProvider

from devstack.fakes import InMemoryModelStore
from tests.support.published_models import BOOTSTRAP, BOOTSTRAP_VERSION, model_files

CHECK_SECONDS = 60.0


def pointer(champion: str, challenger: str | None = None, share: float = 0.0) -> ActivePointer:
    return ActivePointer(champion=champion, challenger=challenger, challenger_share=share, updated_at=datetime.now(UTC))


@cache
def bootstrap_model() -> CtrModel:
    return CtrModel.load(BOOTSTRAP, DEFAULT_SPEC)


class Harness:
    def __init__(self, tmp_path: Path, bootstrap: Callable[[], Scorer] = bootstrap_model) -> None:
        self.now = 0.0
        self.store = InMemoryModelStore()
        self.provider = ModelProvider(
            store=self.store,
            bootstrap=bootstrap,
            spec=DEFAULT_SPEC,
            cache_dir=tmp_path / "models",
            check_seconds=CHECK_SECONDS,
            monotonic=lambda: self.now,
        )

    def publish(self, label: str, /, **kwargs: Any) -> None:
        self.store.files[label] = model_files(label, **kwargs)

    def promote(self, champion: str, challenger: str | None = None, share: float = 0.0) -> None:
        self.store.pointer_document = pointer(champion, challenger, share).model_dump_json().encode()

    def version_for(self, listener_id: str = "listener-1") -> str:
        return self.provider(listener_id).version

    def after_check_interval(self) -> str:
        self.now += CHECK_SECONDS
        return self.version_for()


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


@pytest.fixture(autouse=True)
def emitted() -> Iterator[dict[str, Any]]:
    """The metrics recorded during the test (Powertools keeps them until a flush)."""
    metrics.clear_metrics()
    yield metrics.metric_set
    metrics.clear_metrics()


def metric_count(emitted: dict[str, Any], name: MetricName) -> float:
    return sum(emitted[name]["Value"]) if name in emitted else 0.0


def failures(caplog: pytest.LogCaptureFixture) -> list[tuple[str | None, str]]:
    return [
        (getattr(r, "model_version", None), getattr(r, "reason", ""))
        for r in caplog.records
        if r.msg == "model load failed"
    ]


def test_no_pointer_serves_the_bootstrap_model(harness: Harness, emitted: dict[str, Any]) -> None:
    assert harness.version_for() == BOOTSTRAP_VERSION
    assert harness.after_check_interval() == BOOTSTRAP_VERSION
    assert metric_count(emitted, MetricName.DECISIONS_BY_BOOTSTRAP_MODEL) == 2
    assert harness.store.downloads == []


def test_a_new_champion_serves_after_the_check_interval_not_before(harness: Harness, emitted: dict[str, Any]) -> None:
    # Given a warm provider serving the bootstrap model
    assert harness.version_for() == BOOTSTRAP_VERSION
    # When a champion is published and promoted
    harness.publish("champion-1")
    harness.promote("champion-1")
    # Then it is not seen before the check interval has passed, and is served after it
    harness.now += CHECK_SECONDS - 1
    assert harness.version_for() == BOOTSTRAP_VERSION
    harness.now += 1
    assert harness.version_for() == "champion-1"
    # And it was downloaded once, the swap counted, and later decisions do no work
    for _ in range(3):
        assert harness.after_check_interval() == "champion-1"
    assert harness.store.downloads == ["champion-1"]
    assert metric_count(emitted, MetricName.MODEL_SWAPS) == 1
    assert metric_count(emitted, MetricName.DECISIONS_BY_CHAMPION_MODEL) == 4


def test_a_cold_provider_reads_the_pointer_on_its_first_decision(harness: Harness) -> None:
    harness.publish("champion-1")
    harness.promote("champion-1")
    assert harness.version_for() == "champion-1"


def test_each_decision_counts_the_role_of_its_model(harness: Harness, emitted: dict[str, Any]) -> None:
    harness.publish("champion-1")
    harness.publish("challenger-1")
    harness.promote("champion-1", "challenger-1", 0.5)
    listeners = [f"listener-{i}" for i in range(40)]
    served = [harness.version_for(listener) for listener in listeners]
    assert metric_count(emitted, MetricName.DECISIONS_BY_CHALLENGER_MODEL) == served.count("challenger-1") > 0
    assert metric_count(emitted, MetricName.DECISIONS_BY_CHAMPION_MODEL) == served.count("champion-1") > 0


def test_the_pointer_is_read_at_most_once_per_interval(harness: Harness) -> None:
    reads = 0
    read_pointer = harness.store.read_pointer

    def counting_read() -> ActivePointer | None:
        nonlocal reads
        reads += 1
        return read_pointer()

    harness.store.read_pointer = counting_read  # type: ignore[method-assign]
    for _ in range(100):
        harness.version_for()
        harness.now += 1.0
    assert reads == 2  # at 0 s and at 60 s


def test_challenger_share_splits_listeners_deterministically(harness: Harness) -> None:
    # Given a champion and a challenger taking 30% of listeners
    harness.publish("champion-1")
    harness.publish("challenger-1")
    harness.promote("champion-1", "challenger-1", 0.3)
    listeners = [f"listener-{i}" for i in range(10_000)]
    # When every listener asks twice, across a pointer check
    first = {listener: harness.version_for(listener) for listener in listeners}
    harness.now += CHECK_SECONDS
    second = {listener: harness.version_for(listener) for listener in listeners}
    # Then each listener always meets the same model, the one its hash bucket names, ~30% the challenger
    assert first == second
    assert all((version == "challenger-1") == (listener_bucket(lid) < 0.3) for lid, version in first.items())
    share = sum(version == "challenger-1" for version in first.values()) / len(listeners)
    assert 0.28 < share < 0.32


def test_a_new_share_for_held_versions_swaps_without_downloading(harness: Harness) -> None:
    harness.publish("champion-1")
    harness.publish("challenger-1")
    harness.promote("champion-1", "challenger-1", 0.1)
    harness.version_for()
    harness.promote("challenger-1")  # the challenger won: it becomes the champion
    assert harness.after_check_interval() == "challenger-1"
    assert sorted(harness.store.downloads) == ["challenger-1", "champion-1"]


REFUSALS: dict[str, tuple[Callable[[Harness, str], None], str]] = {
    "corrupt model file": (
        lambda h, v: h.publish(v, model_bytes=b"\x08\x07not an onnx graph"),
        "onnxruntime cannot load",
    ),
    "wrong sha256": (lambda h, v: h.publish(v, sha256="0" * 64), "sha256"),
    "unsupported feature spec": (
        lambda h, v: h.publish(v, feature_spec={**DEFAULT_SPEC.to_dict(), "hash_bits": 20}),
        "feature spec this server cannot honour",
    ),
    "manifest names another version": (lambda h, v: h.publish(v, version="someone-else"), "names version"),
    "missing version": (lambda h, v: None, "not published"),
}


@pytest.mark.parametrize("fault", list(REFUSALS))
def test_a_bad_model_is_refused_and_the_previous_keeps_serving(
    harness: Harness, emitted: dict[str, Any], caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    # Given champion-1 serving
    harness.publish("champion-1")
    harness.promote("champion-1")
    assert harness.version_for() == "champion-1"
    # When a broken model is promoted
    make_broken, reason = REFUSALS[fault]
    make_broken(harness, "broken-1")
    harness.promote("broken-1")
    # Then it is refused at load, champion-1 keeps serving, and the failure is counted and logged
    assert harness.after_check_interval() == "champion-1"
    assert metric_count(emitted, MetricName.MODEL_LOAD_FAILURES) == 1
    [(version, logged_reason)] = failures(caplog)
    assert version == "broken-1"
    assert reason in logged_reason
    # And the failure keeps being reported at every check while the pointer names it
    assert harness.after_check_interval() == "champion-1"
    assert metric_count(emitted, MetricName.MODEL_LOAD_FAILURES) == 2


def test_a_refused_version_is_not_downloaded_again(harness: Harness) -> None:
    harness.publish("broken-1", sha256="0" * 64)
    harness.promote("broken-1")
    for _ in range(3):
        assert harness.after_check_interval() == BOOTSTRAP_VERSION
    assert harness.store.downloads == ["broken-1"]


def test_a_missing_version_is_retried_and_served_once_published(harness: Harness) -> None:
    harness.promote("late-1")  # the pointer was written before the model finished uploading
    assert harness.version_for() == BOOTSTRAP_VERSION
    harness.publish("late-1")
    assert harness.after_check_interval() == "late-1"


def test_a_broken_challenger_keeps_the_whole_previous_pointer(harness: Harness) -> None:
    harness.publish("champion-1")
    harness.publish("champion-2")
    harness.publish("broken-1", sha256="0" * 64)
    harness.promote("champion-1")
    harness.version_for()
    harness.promote("champion-2", "broken-1", 0.5)
    assert harness.after_check_interval() == "champion-1"
    assert {harness.version_for(f"listener-{i}") for i in range(200)} == {"champion-1"}


def test_a_broken_champion_on_a_cold_start_falls_back_to_the_bootstrap_model(
    harness: Harness, emitted: dict[str, Any]
) -> None:
    harness.publish("broken-1", model_bytes=b"garbage")
    harness.promote("broken-1")
    assert harness.version_for() == BOOTSTRAP_VERSION
    assert metric_count(emitted, MetricName.MODEL_LOAD_FAILURES) == 1


@pytest.mark.parametrize("fault", ["bucket unreachable", "malformed pointer"])
def test_an_unreadable_pointer_keeps_the_previous_model(
    harness: Harness, emitted: dict[str, Any], caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    # Given champion-1 serving
    harness.publish("champion-1")
    harness.promote("champion-1")
    assert harness.version_for() == "champion-1"
    # When the pointer cannot be read
    if fault == "bucket unreachable":
        harness.store.available = False
    else:
        harness.store.pointer_document = b'{"champion": "../../etc", "challenger_share": 2}'
    # Then champion-1 keeps serving, and the failure is counted and logged
    assert harness.after_check_interval() == "champion-1"
    assert metric_count(emitted, MetricName.MODEL_LOAD_FAILURES) == 1
    assert [version for version, _ in failures(caplog)] == [None]
    # And once the pointer is readable again nothing is reloaded needlessly
    harness.store.available = True
    harness.promote("champion-1")
    assert harness.after_check_interval() == "champion-1"
    assert harness.store.downloads == ["champion-1"]


def test_an_unreadable_pointer_on_a_cold_start_serves_the_bootstrap_then_recovers(harness: Harness) -> None:
    harness.publish("champion-1")
    harness.promote("champion-1")
    harness.store.available = False
    assert harness.version_for() == BOOTSTRAP_VERSION
    harness.store.available = True
    assert harness.version_for() == BOOTSTRAP_VERSION  # not before the next check
    assert harness.after_check_interval() == "champion-1"


def test_a_removed_pointer_returns_to_the_bootstrap_model(harness: Harness) -> None:
    harness.publish("champion-1")
    harness.promote("champion-1")
    assert harness.version_for() == "champion-1"
    harness.store.pointer_document = None
    assert harness.after_check_interval() == BOOTSTRAP_VERSION


def test_the_bootstrap_model_is_not_loaded_while_a_champion_serves(tmp_path: Path) -> None:
    loads = []

    def bootstrap() -> Scorer:
        loads.append(1)
        return bootstrap_model()

    harness = Harness(tmp_path, bootstrap)
    harness.publish("champion-1")
    harness.promote("champion-1")
    assert harness.version_for() == "champion-1"
    assert loads == []


def test_downloads_leave_nothing_behind_in_the_cache_dir(harness: Harness, tmp_path: Path) -> None:
    harness.publish("champion-1")
    harness.publish("broken-1", sha256="0" * 64)
    harness.promote("champion-1")
    harness.version_for()
    harness.promote("broken-1")
    harness.after_check_interval()
    assert list((tmp_path / "models").iterdir()) == []
