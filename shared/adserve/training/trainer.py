"""Train the factorization machine on the logged dataset, split by time, and write a servable model dir.

The examples are cut by decision time into train | validation | holdout (the latest ``holdout_fraction`` of
them is the holdout, the ``validation_fraction`` before it drives early stopping): a model is always judged on
decisions that happened after everything it learned from.
Only holdout decisions keep their slot-1 candidate sets, for off-policy evaluation; every decision keeps them when
the estimates are cross-fitted (``cross_fit_folds``).

With ``weighting="ips"`` each example's gradient is scaled by 1/propensity, clipped at
``max_importance_weight`` and normalised to mean 1, so ads the logging policy rarely showed count as much
as they would have under uniform serving (at the price of variance; the clip bounds it).
"""

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np

from adserve.models.features import FeatureSpec
from adserve.models.heard_ads import HeardAds, ad_id_column
from adserve.training.dataset import Examples, SlotOne, TrainingDataset
from adserve.training.evaluation import Fold
from adserve.training.factorization_machine import FactorizationMachine, FitReport, TrainingConfig
from adserve.training.model_files import write_model_dir
from adserve.training.onnx_export import export_onnx
from adserve.training.progress import SILENT, Progress

Weighting = Literal["none", "ips"]
Pairs = Literal["all", "with_listener"]


@dataclass(frozen=True)
class TrainerConfig:
    holdout_fraction: float = 0.2
    validation_fraction: float = 0.1
    weighting: Weighting = "none"
    max_importance_weight: float = 20.0
    num_factors: int = 8
    pairs: Pairs = "all"
    """Which field pairs the model has: ``all``, or ``with_listener``: none between two listener fields (their
    term is the same for every ad a listener could hear, so it never changes a choice, yet it shares the listener's
    factors with the listener x ad pairs that do). On the demo's worlds, whose truth has no listener x listener
    term, ``with_listener`` learns who likes which ad faster (``devstack.demo_sweep``)."""
    fit: TrainingConfig = field(default_factory=TrainingConfig)
    refit_on_all: bool = False
    """Serve a model fitted again on every row (train, validation and holdout) for the epochs early stopping chose,
    instead of the fit on train alone: the holdout is the latest 20% of the logs, logged by the best model so far.
    The fit on train alone is still the one evaluated and judged for promotion (``retraining``), so the estimates
    stay honest for the model they describe. What it buys on the demo's replays: README's refit-on-all table; it costs
    a second fit's time, so it is off by default."""
    cross_fit_folds: int = 0
    """Estimate the new policy on every decision instead of the holdout alone: the decisions cut by time into this
    many folds, each replayed by the recipe (the judged fit's L2 and epochs) fitted on the other folds, never on its
    own (``cross_fit``). With ``refit_on_all`` the model served learned from every row, yet a holdout estimate rests on
    the latest 20% of decisions and describes a fit on 70% of the rows; cross-fitted, it rests on all of them and
    describes fits on (K-1)/K. It costs K fits more per retrain; 0 (the default) is off. Needs ``refit_on_all``: the
    folds' fits stand for a model that learned from every row, which only the refit is."""
    l2_factors_grid: tuple[float, ...] = ()
    """L2s on the factors to choose from on the validation segment, as a production trainer picks its
    regularisation on held-out data: one fit per value (``fit``'s other settings), and the one with the lowest
    validation log loss is kept (the first on a tie; deterministic like every fit). Empty: ``fit.l2_factors`` alone.
    The right L2 depends on how much was logged: on the logs of the demo's 80k decisions the default 1e-4 chooses
    worse than 1e-3 (86-91% of the oracle's greedy click rate instead of 91-95%), and validation log loss ranks the
    two the same way. Each value costs a fit, so it is off by default."""

    def __post_init__(self) -> None:
        if not (0.0 < self.holdout_fraction < 1.0 and 0.0 < self.validation_fraction < 1.0):
            raise ValueError("holdout and validation fractions must be within (0, 1)")
        if self.holdout_fraction + self.validation_fraction >= 1.0:
            raise ValueError("holdout + validation must leave a training share")
        if self.max_importance_weight < 1.0:
            raise ValueError("max_importance_weight must be at least 1")
        if any(not l2 >= 0.0 for l2 in self.l2_factors_grid):
            raise ValueError("l2_factors_grid values must not be negative")
        if self.cross_fit_folds and (self.cross_fit_folds < 2 or not self.refit_on_all):
            raise ValueError("cross_fit_folds is 0 (off) or at least 2, with refit_on_all")


@dataclass(frozen=True)
class TimeSplit:
    """Cut points (epoch seconds): train < validation_start <= validation < holdout_start <= holdout."""

    validation_start: float
    holdout_start: float

    @classmethod
    def of(cls, decided_at: np.ndarray, config: TrainerConfig, empty_at: datetime) -> "TimeSplit":
        """Cut at the quantiles of the examples' decision times, not at fractions of the clock: traffic that
        pauses (a night's lull, a stalled Record, the demo waiting for its queue) must not leave a segment empty
        (a quick demo in CI once found no decision in its validation tenth). ``empty_at``: both cuts, without
        examples."""
        times = np.sort(decided_at)
        if not times.size:
            return cls(empty_at.timestamp(), empty_at.timestamp())

        def at(share: float) -> float:
            return float(times[min(int(times.size * share), times.size - 1)])

        return cls(
            validation_start=at(1.0 - config.holdout_fraction - config.validation_fraction),
            holdout_start=at(1.0 - config.holdout_fraction),
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "validation_start": datetime.fromtimestamp(self.validation_start, UTC).isoformat(),
            "holdout_start": datetime.fromtimestamp(self.holdout_start, UTC).isoformat(),
        }


@dataclass(frozen=True)
class SplitData:
    train: Examples
    validation: Examples
    holdout: Examples
    holdout_slot_one: SlotOne
    ad_rows: np.ndarray
    split: TimeSplit
    every_slot_one: SlotOne | None = None
    """Slot 1 of every decision, when the estimates are cross-fitted (``cross_fit_folds``); else None."""

    def everything(self, num_fields: int) -> Examples:
        """Train, validation and holdout together, in time order."""
        return Examples.concatenate([self.train, self.validation, self.holdout], num_fields)

    def row_counts(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "holdout": len(self.holdout),
            "holdout_decisions": len(self.holdout_slot_one),
            "train_positives": int(self.train.labels.sum()),
            "validation_positives": int(self.validation.labels.sum()),
            "holdout_positives": int(self.holdout.labels.sum()),
        }


def collect(dataset: TrainingDataset, config: TrainerConfig, progress: Progress = SILENT) -> SplitData:
    """Read the dataset, then cut it into the three time segments (compact numpy arrays)."""
    span = dataset.observed_span()
    chunks = []
    for chunk in dataset.chunks(span) if span else ():
        chunks.append(chunk)
        progress.step("reading logs", dataset.stats.examples, detail=f"{dataset.stats.read.objects:,} objects")
    progress.finish(f"read {dataset.stats.examples:,} examples from {dataset.stats.read.objects:,} objects")
    times = [chunk.examples.decided_at for chunk in chunks]
    split = TimeSplit.of(np.concatenate(times) if times else np.empty(0), config, dataset.config.decisions_end)
    spec = dataset.encoder.spec
    train: list[Examples] = []
    validation: list[Examples] = []
    holdout: list[Examples] = []
    slots: list[SlotOne] = []
    every_slot = [chunk.slot_one for chunk in chunks] if config.cross_fit_folds else None
    for chunk in chunks:
        when = chunk.examples.decided_at
        train.append(chunk.examples.select(when < split.validation_start))
        validation.append(chunk.examples.select((when >= split.validation_start) & (when < split.holdout_start)))
        holdout.append(chunk.examples.select(when >= split.holdout_start))
        slots.append(chunk.slot_one.select(chunk.slot_one.decided_at >= split.holdout_start))
    slot_fields = len(spec.listener_fields), len(spec.candidate_fields)
    return SplitData(
        train=Examples.concatenate(train, spec.num_fields),
        validation=Examples.concatenate(validation, spec.num_fields),
        holdout=Examples.concatenate(holdout, spec.num_fields),
        holdout_slot_one=SlotOne.concatenate(slots, *slot_fields),
        ad_rows=dataset.ad_rows,
        split=split,
        every_slot_one=None if every_slot is None else SlotOne.concatenate(every_slot, *slot_fields),
    )


def evaluation_set(dataset: TrainingDataset) -> tuple[Examples, SlotOne, np.ndarray]:
    """Every decision of the range, unsplit, with its slot-1 view: to judge models trained on earlier logs."""
    spec = dataset.encoder.spec
    span = dataset.observed_span()
    chunks = list(dataset.chunks(span)) if span else []
    return (
        Examples.concatenate([chunk.examples for chunk in chunks], spec.num_fields),
        SlotOne.concatenate(
            [chunk.slot_one for chunk in chunks], len(spec.listener_fields), len(spec.candidate_fields)
        ),
        dataset.ad_rows,
    )


def importance_weights(propensities: np.ndarray, max_weight: float) -> np.ndarray:
    """min(1/propensity, max_weight), normalised to mean 1 (so the learning rate keeps its meaning)."""
    weights = np.minimum(1.0 / np.clip(propensities.astype(np.float64), 1e-12, None), max_weight)
    mean = float(weights.mean()) if weights.size else 1.0
    return np.asarray(weights / mean)


@dataclass
class TrainedModel:
    model: FactorizationMachine
    report: FitReport
    weighting: Weighting
    batch_size: int
    seconds: float = 0.0
    l2_factors: float = 0.0
    """The L2 on the factors of ``model``: ``fit.l2_factors`` or the one ``l2_factors_grid`` chose."""
    grid_log_loss: dict[float, float] = field(default_factory=dict)
    """Per ``l2_factors_grid`` value, its fit's best validation log loss (empty without a grid)."""


def fit(data: SplitData, spec: FeatureSpec, config: TrainerConfig, progress: Progress = SILENT) -> TrainedModel:
    """Mini-batch training with early stopping on the validation segment; with ``l2_factors_grid``, one fit per
    value and the one with the lowest validation log loss kept."""
    started = datetime.now(UTC)
    weights = _sample_weights(data.train, config)
    fits = [
        (
            l2,
            *_fit_one(
                data, spec, config, fit_config=replace(config.fit, l2_factors=l2), weights=weights, progress=progress
            ),
        )
        for l2 in config.l2_factors_grid or (config.fit.l2_factors,)
    ]
    losses = {
        l2: report.validation_log_loss[report.best_epoch - 1] if report.best_epoch else np.inf for l2, _, report in fits
    }
    l2, model, report = min(fits, key=lambda chosen: losses[chosen[0]])  # the first of equals
    seconds = (datetime.now(UTC) - started).total_seconds()
    progress.finish(f"trained {len(report.validation_log_loss)} epochs (kept {report.best_epoch}) in {seconds:.1f} s")
    grid = losses if config.l2_factors_grid else {}
    return TrainedModel(model, report, config.weighting, config.fit.batch_size, seconds, l2, grid)


def refit_on_all(data: SplitData, spec: FeatureSpec, config: TrainerConfig, trained: TrainedModel) -> TrainedModel:
    """``trained``'s recipe (its L2 and epoch count) fitted again on train, validation and holdout together."""
    return replace(trained, model=_fit_recipe(data.everything(spec.num_fields), spec, config, trained))


def cross_fit(
    data: SplitData, spec: FeatureSpec, config: TrainerConfig, trained: TrainedModel, progress: Progress = SILENT
) -> list[Fold]:
    """Every decision replayed by a fit that never learned from it: the decisions cut by time into
    ``config.cross_fit_folds`` folds of equal row counts, and ``trained``'s recipe fitted on the rows outside each.

    Why by time: a fold's decisions then come from one stretch of the logs, as a holdout's do, and the rows a fold's
    fit learned from are all the others, before and after it. A fold whose fit would have no row (every decision at
    one instant) is left out, and its decisions are not estimated.
    """
    if data.every_slot_one is None:
        raise ValueError("cross-fitting needs every decision's slot 1: collect with cross_fit_folds set")
    everything = data.everything(spec.num_fields)
    cuts = fold_cuts(everything.decided_at, config.cross_fit_folds)
    column = ad_id_column(spec, in_ad_rows=False)
    folds = []
    for number, (start, end) in enumerate(itertools.pairwise(cuts), start=1):
        progress.step("cross-fitting", number, len(cuts) - 1)
        inside = (everything.decided_at >= start) & (everything.decided_at < end)
        decisions = (data.every_slot_one.decided_at >= start) & (data.every_slot_one.decided_at < end)
        if inside.all() or not decisions.any():
            continue
        learned = everything.select(~inside)
        model = _fit_recipe(learned, spec, config, trained)
        folds.append(
            Fold(
                slot=data.every_slot_one.select(decisions),
                model=FoldModel(model, f"fold {number} of {len(cuts) - 1}"),
                heard=HeardAds.count(learned.indices[:, column]),
            )
        )
    progress.finish(f"cross-fitted {len(folds)} folds")
    return folds


def fold_cuts(decided_at: np.ndarray, folds: int) -> list[float]:
    """``folds + 1`` cut points, -inf first and +inf last, at the quantiles of the decision times (as ``TimeSplit``
    cuts): fold k holds the times in [cuts[k], cuts[k + 1])."""
    times = np.sort(decided_at)
    inner = [float(times[min(times.size * k // folds, times.size - 1)]) for k in range(1, folds)] if times.size else []
    return [-math.inf, *inner, math.inf]


@dataclass(frozen=True)
class FoldModel:
    """A fold's fit as a scorer (``evaluation.Scorer``): the numpy model, named for the estimates' tables."""

    model: FactorizationMachine
    version: str

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return self.model.predict(indices)


def _fit_recipe(
    examples: Examples, spec: FeatureSpec, config: TrainerConfig, trained: TrainedModel
) -> FactorizationMachine:
    """``trained``'s L2 and epoch count fitted on ``examples``, without early stopping (the epoch count is the one
    validation chose; the training loss, watched in its place, falls from epoch to epoch, so the last is kept)."""
    epochs = max(trained.report.best_epoch, 1)
    model = _new_model(spec, config, config.fit.seed)
    fit_config = replace(config.fit, l2_factors=trained.l2_factors, max_epochs=epochs, patience=epochs + 1)
    weights = _sample_weights(examples, config)
    model.fit(examples.indices, examples.labels, examples.indices, examples.labels, fit_config, sample_weights=weights)
    return model


def _sample_weights(examples: Examples, config: TrainerConfig) -> np.ndarray | None:
    """Each example's gradient weight under ``config.weighting``: None (all equal) unless it is ``ips``."""
    return (
        importance_weights(examples.propensities, config.max_importance_weight) if config.weighting == "ips" else None
    )


def _new_model(spec: FeatureSpec, config: TrainerConfig, seed: int) -> FactorizationMachine:
    unpaired = len(spec.listener_fields) if config.pairs == "with_listener" else 0
    return FactorizationMachine(spec.hash_size, num_factors=config.num_factors, seed=seed, unpaired_fields=unpaired)


def _fit_one(
    data: SplitData,
    spec: FeatureSpec,
    config: TrainerConfig,
    *,
    fit_config: TrainingConfig,
    weights: np.ndarray | None,
    progress: Progress,
) -> tuple[FactorizationMachine, FitReport]:
    model = _new_model(spec, config, fit_config.seed)
    max_epochs = fit_config.max_epochs

    def on_epoch(epoch: int, loss: float) -> None:
        detail = f"L2 {fit_config.l2_factors:g}, validation log loss {loss:.5f}"
        progress.step("training", epoch, max_epochs, detail=detail)

    report = model.fit(
        data.train.indices,
        data.train.labels,
        data.validation.indices,
        data.validation.labels,
        fit_config,
        sample_weights=weights,
        on_epoch=on_epoch,
    )
    return model, report


TRAINED_VERSION_PREFIX = "fm-"


def version_name(as_of: datetime) -> str:
    """``fm-20261125T1300Z-{sha12}``: sortable by training time, unique by content."""
    return f"{TRAINED_VERSION_PREFIX}{as_of.astimezone(UTC):%Y%m%dT%H%MZ}-{{sha12}}"


def export(trained: TrainedModel, spec: FeatureSpec) -> bytes:
    """The ONNX file (deterministic: the same parameters give the same bytes, hence the same version)."""
    return export_onnx(trained.model, spec.num_fields)


def write_model(
    out_dir: Path,
    model_bytes: bytes,
    *,
    trained: TrainedModel,
    spec: FeatureSpec,
    as_of: datetime,
    details: Mapping[str, Any],
) -> dict[str, Any]:
    """Write model.onnx + manifest.json (the fit's own details added); the manifest, with its final version."""
    fit_details = {
        "best_epoch": trained.report.best_epoch,
        "validation_log_loss": [round(loss, 6) for loss in trained.report.validation_log_loss],
        "weighting": trained.weighting,
        "training_seconds": round(trained.seconds, 2),
        "l2_factors": trained.l2_factors,
        "batch_size": trained.batch_size,
    }
    if trained.grid_log_loss:
        fit_details["l2_factors_grid"] = {f"{l2:g}": round(loss, 6) for l2, loss in trained.grid_log_loss.items()}
    return write_model_dir(out_dir, model_bytes, spec, version_name(as_of), {**details, "fit": fit_details})


def window_details(start: datetime, end: datetime, as_of: datetime, reward_window: timedelta) -> dict[str, Any]:
    return {
        "start": start.astimezone(UTC).isoformat(),
        "end": end.astimezone(UTC).isoformat(),
        "as_of": as_of.astimezone(UTC).isoformat(),
        "reward_window_hours": reward_window.total_seconds() / 3600,
    }
