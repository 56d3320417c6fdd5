"""Which model scores a decision: the active pointer's champion or challenger, else the bootstrap model.

``ModelProvider`` is what Decide's DecisionService calls once per decision with the listener id. It reads
the active pointer at most every ``check_seconds`` (a RefreshingValue), and only the request that finds a
*new* pointer reading does any work: when the pointer names versions it does not hold, that request
downloads them to a scratch folder, verifies and loads them (``CtrModel.load``: sha256, feature spec,
graph), builds the complete new serving state and then replaces one reference. Lambda allows no
background thread, so this inline refresh is the design: one request per check interval pays for the
pointer read, and one per promotion pays for the download and load; every other request only reads a
reference.

Whatever fails (pointer unreadable or malformed, version missing, corrupt bytes, wrong sha256, a feature
spec this server cannot honour, a manifest naming another version) the previous state keeps serving, or
the layer's bootstrap model when there is none; ``ModelLoadFailures`` is counted and ``model load failed``
is logged with the version and the reason. A pointer is taken whole or not at all: if its challenger
cannot be loaded, its champion is not promoted either. Versions are immutable, so a version refused for
its content is remembered and not downloaded again (its refusal is still reported at every check);
one that was merely missing or unreachable is retried at the next check.
"""

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aws_lambda_powertools.metrics import MetricUnit

from adserve.core.errors import (
    InvalidModelPointerError,
    ModelLoadError,
    ModelNotFoundError,
    ModelStoreUnavailableError,
)
from adserve.core.observability import MetricName, logger, metrics
from adserve.core.refreshing import RefreshingValue, Reloadable
from adserve.models.ctr_model import CtrModel, Scorer
from adserve.models.features import FeatureSpec
from adserve.models.registry import ActivePointer, ModelStore

ROLE_METRICS = {
    "bootstrap": MetricName.DECISIONS_BY_BOOTSTRAP_MODEL,
    "champion": MetricName.DECISIONS_BY_CHAMPION_MODEL,
    "challenger": MetricName.DECISIONS_BY_CHALLENGER_MODEL,
}


def load_published(store: ModelStore, version: str, scratch: Path, spec: FeatureSpec) -> CtrModel:
    """A published version as Decide serves it: downloaded into *scratch*, verified and loaded with the serving
    feature spec, its manifest naming that very version. Raises ModelLoadError, ModelNotFoundError or
    ModelStoreUnavailableError; ``adserve promote`` checks a version this way before pointing traffic at it."""
    model = CtrModel.load(store.download(version, scratch), spec)
    if model.version != version:
        raise ModelLoadError(f"model {version}: its manifest names version {model.version!r}")
    return model


@dataclass(frozen=True)
class ServingState:
    """Everything one decision needs to pick its model; replaced as a whole, never mutated."""

    pointer: ActivePointer | None
    champion: Scorer
    challenger: Scorer | None = None

    def scorer_for(self, listener_pseudonym: str) -> tuple[Scorer, str]:
        """The listener's model and its role (bootstrap, champion or challenger)."""
        if self.pointer is None:
            return self.champion, "bootstrap"
        if self.challenger is not None and self.pointer.version_for(listener_pseudonym) == self.challenger.version:
            return self.challenger, "challenger"
        return self.champion, "champion"

    def versions(self) -> dict[str, str | None]:
        return {
            "champion": self.champion.version,
            "challenger": self.challenger.version if self.challenger is not None else None,
        }

    def loaded(self) -> dict[str, Scorer]:
        return {model.version: model for model in (self.champion, self.challenger) if model is not None}


@dataclass(frozen=True)
class _PointerReading:
    """One read of the pointer; a new object per read, so the provider acts on each read exactly once."""

    pointer: ActivePointer | None
    readable: bool = True


@dataclass
class ModelProvider:
    """``provider(listener_pseudonym)`` -> the Scorer for that listener; one per execution environment."""

    store: ModelStore
    bootstrap: Callable[[], Scorer]
    spec: FeatureSpec
    cache_dir: Path
    check_seconds: float
    monotonic: Callable[[], float] = time.monotonic
    _state: ServingState | None = field(default=None, init=False, repr=False)
    _seen: _PointerReading | None = field(default=None, init=False, repr=False)
    _refused: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _pointer: RefreshingValue[_PointerReading] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pointer = RefreshingValue(
            self._read_pointer, self.check_seconds, name="model pointer", monotonic=self.monotonic
        )

    def __call__(self, listener_pseudonym: str) -> Scorer:
        model, role = self.current().scorer_for(listener_pseudonym)
        metrics.add_metric(ROLE_METRICS[role], MetricUnit.Count, 1)
        return model

    def current(self) -> ServingState:
        """The serving state, after acting on the pointer if a fresh reading of it is due."""
        reading = self._pointer.get()
        state = self._state
        if reading is not self._seen or state is None:
            state = self._apply(reading, state)
            self._seen = reading
        return state

    def reloadable(self) -> Reloadable:
        """The pointer check as a decision runs it first when due (``reloaded_first``)."""
        return Reloadable(self._pointer, self.current)

    def _read_pointer(self) -> _PointerReading:
        """Never raises: an unreadable pointer is reported and the state it would have changed stays."""
        try:
            return _PointerReading(self.store.read_pointer())
        except (ModelStoreUnavailableError, InvalidModelPointerError) as error:
            self._report_failure(None, error)
            return _PointerReading(None, readable=False)

    def _apply(self, reading: _PointerReading, state: ServingState | None) -> ServingState:
        if not reading.readable:
            return state if state is not None else self._swap(None, self._bootstrap_state())
        pointer = reading.pointer
        if state is not None and state.pointer == pointer:
            return state
        if pointer is None:
            return self._swap(state, self._bootstrap_state())
        try:
            built = self._build(pointer, state)
        except (ModelLoadError, ModelNotFoundError, ModelStoreUnavailableError):
            return state if state is not None else self._swap(None, self._bootstrap_state())
        return self._swap(state, built)

    def _bootstrap_state(self) -> ServingState:
        return ServingState(pointer=None, champion=self.bootstrap())

    def _build(self, pointer: ActivePointer, state: ServingState | None) -> ServingState:
        """Load every version the pointer names (reusing held ones); raises after reporting the failure."""
        held = state.loaded() if state is not None else {}
        champion = held.get(pointer.champion) or self._load(pointer.champion)
        challenger = None
        if pointer.challenger is not None:
            challenger = held.get(pointer.challenger) or self._load(pointer.challenger)
        return ServingState(pointer=pointer, champion=champion, challenger=challenger)

    def _load(self, version: str) -> Scorer:
        if version in self._refused:
            error = ModelLoadError(self._refused[version])
            self._report_failure(version, error)
            raise error
        started = time.perf_counter()
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix="download-") as scratch:
                model = load_published(self.store, version, Path(scratch), self.spec)
        except ModelLoadError as error:
            self._refused[version] = str(error)
            self._report_failure(version, error)
            raise
        except (ModelNotFoundError, ModelStoreUnavailableError) as error:
            self._report_failure(version, error)
            raise
        except OSError as error:  # the scratch folder: /tmp full or not writable
            self._report_failure(version, error)
            raise ModelStoreUnavailableError(f"model {version}: cannot unpack it: {error}") from error
        logger.info(
            "model loaded", extra={"model_version": version, "load_ms": round((time.perf_counter() - started) * 1e3, 1)}
        )
        return model

    def _swap(self, old: ServingState | None, new: ServingState) -> ServingState:
        self._state = new
        if old is not None:
            metrics.add_metric(MetricName.MODEL_SWAPS, MetricUnit.Count, 1)
        logger.info(
            "model swapped",
            extra={
                "old_models": old.versions() if old is not None else None,
                "new_models": new.versions(),
                "challenger_share": new.pointer.challenger_share if new.pointer is not None else 0.0,
            },
        )
        return new

    @staticmethod
    def _report_failure(version: str | None, error: Exception) -> None:
        """Reason only: model errors carry versions and paths, never credentials; no stack trace needed."""
        logger.error(
            "model load failed",
            extra={"model_version": version, "error_type": type(error).__name__, "reason": str(error)},
        )
        metrics.add_metric(MetricName.MODEL_LOAD_FAILURES, MetricUnit.Count, 1)
