"""The retraining pipeline: the one function the Retrain Lambda and ``adserve train`` both call.

    logs (a time range) -> dataset -> train (time split, early stopping) -> evaluate (holdout metrics,
    IPS/SNIPS/DR of the new policy next to the champion's and the logging policy's) -> publish the version
    -> write the active pointer only if the promotion rule holds (or a challenger with its share).

Too little data (``min_rows`` examples, ``min_positives`` clicks, or a holdout without both classes) is
not an error: nothing is trained or published, and the result says why. Every published model is
registered, promoted or not, so an operator can promote it later (``adserve promote``).
"""

import json
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from adserve.core.errors import (
    AdserveError,
    InvalidModelPointerError,
    ModelLoadError,
    ModelNotFoundError,
    PointerChangedError,
)
from adserve.core.observability import logger
from adserve.models.ctr_model import MANIFEST_FILE, MODEL_FILE, UNLABELLED_MEANS, CtrModel
from adserve.models.features import FeatureEncoder, FeatureSpec
from adserve.models.heard_ads import HeardAds, ad_id_column
from adserve.models.registry import UNREADABLE_POINTER, ActivePointer, ModelStore, StoredPointer
from adserve.models.serving import load_published
from adserve.outcomes.logs import LogKind, LogReader, count_rows_at_most
from adserve.training.dataset import DatasetConfig, DatasetStats, Examples, ExamplesFrom, Label, TrainingDataset
from adserve.training.evaluation import Comparison, PromotionRule, compare, evaluate, judge, manifest_metrics, render
from adserve.training.prefetch import without_prefetch
from adserve.training.progress import SILENT, Progress
from adserve.training.schedule import RetrainSchedule
from adserve.training.trainer import (
    TRAINED_VERSION_PREFIX,
    SplitData,
    TrainerConfig,
    collect,
    cross_fit,
    evaluation_set,
    export,
    fit,
    refit_on_all,
    window_details,
    write_model,
)

PromotionMode = Literal["auto", "never"]
RetrainStatus = Literal["promoted", "challenger", "registered", "skipped"]


class RetrainError(AdserveError):
    """A retrain request that cannot be carried out as asked (not: too little data, which is a result)."""


def _check_share(challenger_share: float | None) -> None:
    """A challenger's share of listeners, when there is one, is strictly between none and all of them."""
    if challenger_share is not None and not 0.0 < challenger_share < 1.0:
        raise RetrainError("challenger_share must be within (0, 1)")


@dataclass(frozen=True)
class RetrainRequest:
    start: datetime
    end: datetime
    as_of: datetime
    label: Label = "click"
    reward_window: timedelta = timedelta(hours=24)
    examples_from: ExamplesFrom = "impressions"
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    promotion: PromotionMode = "auto"
    rule: PromotionRule = field(default_factory=PromotionRule)
    challenger_share: float | None = None
    """When set, a model that passes the rule becomes the challenger with this traffic share."""
    min_rows: int = 1000
    min_positives: int = 20
    updated_by: str = "retrain"
    erased: frozenset[str] = frozenset()
    """The erasure ledger's pseudonyms, read once for the run: these listeners' decisions are left out."""
    schedule: RetrainSchedule | None = None
    """When set, a run trains only when the schedule says it is due (else: skipped, nothing published)."""

    def __post_init__(self) -> None:
        _check_share(self.challenger_share)

    def dataset_config(self) -> DatasetConfig:
        """The logs this request trains on: its time range, label and reward window."""
        return DatasetConfig(
            self.start,
            self.end,
            self.as_of,
            self.label,
            self.reward_window,
            examples_from=self.examples_from,
            erased=self.erased,
        )


@dataclass(frozen=True)
class RetrainResult:
    status: RetrainStatus
    message: str
    version: str | None = None
    dataset: dict[str, int] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    table: str | None = None

    def summary(self) -> dict[str, Any]:
        """Small and JSON-safe: what the Lambda returns and logs."""
        promotion = (self.manifest or {}).get("evaluation", {}).get("promotion")
        return {
            "status": self.status,
            "message": self.message,
            "version": self.version,
            "dataset": self.dataset,
            "holdout_auc": (self.manifest or {}).get("holdout_auc"),
            "promotion": promotion,
        }


def _too_small(data: SplitData, stats: DatasetStats, request: RetrainRequest) -> str | None:
    counts = data.row_counts()
    problems = []
    if stats.examples < request.min_rows:
        problems.append(f"{stats.examples} examples (minimum {request.min_rows})")
    if stats.positives < request.min_positives:
        problems.append(f"{stats.positives} {request.label}s (minimum {request.min_positives})")
    if not problems:
        for segment in ("train", "validation", "holdout"):
            positives, rows = counts[f"{segment}_positives"], counts[segment]
            if positives in {0, rows}:
                problems.append(f"the {segment} segment has {rows} rows of which {positives} positive")
    if not problems:
        return None
    last = min(request.end, request.as_of - request.reward_window)
    hours = request.reward_window.total_seconds() / 3600
    if last < request.start:  # a range cut back to before its start reads as a reversed one: say why instead
        return (
            f"not enough data to train on: every decision from {request.start:%Y-%m-%dT%H:%M}Z on is younger than "
            f"the {hours:g} h reward window (--reward-window-hours), so none can be trained on yet; nothing was "
            "published"
        )
    return (
        f"not enough data to train on {request.start:%Y-%m-%dT%H:%M}Z..{last:%Y-%m-%dT%H:%M}Z (decisions younger "
        f"than the {hours:g} h reward window are left out): {'; '.join(problems)}; nothing was published"
    )


@dataclass(frozen=True)
class ScheduleBaseline:
    """What ``request.schedule`` measures a run against: the newest model trained, promoted or not."""

    learned: int | None
    """The decisions it learned from (None: the bootstrap model, or one that does not say)."""
    since: datetime | None
    """When it was trained or promoted, whichever is later (None: nothing since the bootstrap model)."""
    version: str | None


def schedule_baseline(
    models: ModelStore, champion: CtrModel | None, pointer: ActivePointer | None, work_dir: Path
) -> ScheduleBaseline:
    """The champion, unless a retrain published a newer model it did not promote: measured from the champion
    alone, every run after one that trained without promoting was due again, and trained again on the same logs
    (every 15 minutes, a version each) until something was promoted.

    One LIST of the versions; the newest trained one (``fm-<as_of>-…`` names sort by training time) is read only
    when it is not the champion. A newest model that cannot be read leaves the champion's baseline, logged.
    """
    champion_baseline = ScheduleBaseline(
        champion.logged_decisions if champion is not None else None,
        pointer.updated_at if pointer is not None else None,
        champion.version if champion is not None else None,
    )
    newest = max((v for v in models.versions() if v.startswith(TRAINED_VERSION_PREFIX)), default=None)
    if newest is None or newest == champion_baseline.version:
        return champion_baseline
    try:
        folder = models.download(newest, work_dir / "newest-trained")
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        trained_at = datetime.fromisoformat(manifest["training_window"]["as_of"])
        learned = int(manifest["logged_decisions"])
    except (AdserveError, OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("newest model not read; the schedule counts from the champion", extra={"error": str(error)})
        return champion_baseline
    since = champion_baseline.since
    return ScheduleBaseline(
        max(learned, champion_baseline.learned or 0),
        trained_at if since is None else max(since, trained_at),
        newest,
    )


def _not_due(
    request: RetrainRequest,
    decisions: int,
    baseline: ScheduleBaseline,
    counted: str = "logged decisions",
) -> str | None:
    """Why ``request.schedule`` says this run is not due, or None when it is (or there is no schedule)."""
    if request.schedule is None:
        return None
    learned = baseline.learned
    age = request.as_of - baseline.since if baseline.since is not None else None
    if request.schedule.due(decisions, learned, age):
        return None
    return (
        f"not due: {decisions} {counted}, the newest model ({baseline.version or 'bootstrap'}) learned from "
        f"{learned or 0}; the next retrain is due at {request.schedule.next_at(learned)} or "
        f"{request.schedule.max_interval} after it was trained or promoted"
    )


def _not_due_by_listing(logs: LogReader, request: RetrainRequest, baseline: ScheduleBaseline) -> RetrainResult | None:
    """The schedule's answer before the window is read: the log objects' names bound its decisions from above,
    so a run that is not due by the bound is not due, at one LIST per hour instead of reading every object."""
    config = request.dataset_config()
    at_most = count_rows_at_most(without_prefetch(logs), LogKind.DECISIONS, config.start, config.decisions_end)
    problem = _not_due(request, at_most, baseline, "logged decisions at most (counted by listing)")
    if problem is None:
        return None
    return RetrainResult(status="skipped", message=problem, dataset={"logged_decisions_at_most": at_most})


@dataclass(frozen=True)
class _Champion:
    model: CtrModel | None
    """The model serving most traffic now: the pointer's champion, else the bootstrap fallback, else None."""
    broken: str | None = None
    """Why the pointer's champion does not load (its files missing or corrupt), when it does not."""


def _load_champion(
    models: ModelStore, pointer: ActivePointer | None, work_dir: Path, fallback: Path | None, spec: FeatureSpec
) -> _Champion:
    """The champion to judge against. One whose files are missing or corrupt is not evaluated, and Decide cannot
    serve it either (it takes a pointer whole or not at all); a models bucket that cannot be read fails the run
    (ModelStoreUnavailableError), which the next one retries, rather than judge and promote blind."""
    try:
        if pointer is not None:
            return _Champion(CtrModel.load(models.download(pointer.champion, work_dir / "champion"), spec))
        if fallback is not None and (fallback / MODEL_FILE).exists():
            return _Champion(CtrModel.load(fallback, spec))
    except (ModelLoadError, ModelNotFoundError) as error:
        logger.warning("champion not evaluated", extra={"error": str(error)})
        return _Champion(None, str(error) if pointer is not None else None)
    return _Champion(None)


def heard_ads(spec: FeatureSpec, *segments: Examples) -> dict[str, list[int]]:
    """The manifest's ``heard_ads``: the impressions of each ad in the rows a model was fitted on."""
    column = ad_id_column(spec, in_ad_rows=False)
    return HeardAds.count(np.concatenate([examples.indices[:, column] for examples in segments])).to_manifest()


def retrain(
    logs: LogReader,
    models: ModelStore,
    request: RetrainRequest,
    *,
    work_dir: Path,
    fallback_model_dir: Path | None = None,
    encoder: FeatureEncoder | None = None,
    progress: Progress = SILENT,
) -> RetrainResult:
    """Build, train, evaluate, publish and maybe promote; see the module docstring."""
    encoder = encoder or FeatureEncoder()
    spec = encoder.spec
    pointer = models.read_pointer()
    loaded = _load_champion(models, pointer, work_dir, fallback_model_dir, spec)
    champion = loaded.model
    baseline = schedule_baseline(models, champion, pointer, work_dir) if request.schedule is not None else None
    early = None if baseline is None else _not_due_by_listing(logs, request, baseline)
    if early is not None:
        return early
    dataset = TrainingDataset(logs, request.dataset_config(), encoder)
    data = collect(dataset, request.trainer, progress)
    stats = dataset.stats.to_dict()
    problem = (None if baseline is None else _not_due(request, dataset.stats.decisions, baseline)) or _too_small(
        data, dataset.stats, request
    )
    if problem is not None:
        return RetrainResult(status="skipped", message=problem, dataset=stats)

    trained = fit(data, spec, request.trainer, progress)
    details: dict[str, Any] = {
        "label": request.label,
        "parent_version": champion.version if champion else (pointer.champion if pointer else None),
        "training_window": window_details(
            request.start, dataset.config.decisions_end, request.as_of, request.reward_window
        )
        | data.split.to_dict(),
        "row_counts": data.row_counts(),
        "dataset": stats,
        "logged_decisions": dataset.stats.decisions,
        "heard_ads": heard_ads(spec, data.train),
        "trainer": {**asdict(request.trainer), "fit": asdict(request.trainer.fit)},
    }
    candidate_dir = work_dir / "candidate"
    model_bytes = export(trained, spec)
    write_model(candidate_dir, model_bytes, trained=trained, spec=spec, as_of=request.as_of, details=details)
    new = CtrModel.load(candidate_dir, spec)
    # Cross-fitted when asked; on the holdout otherwise, or when no fold could be (every decision at one instant)
    folds = cross_fit(data, spec, request.trainer, trained, progress) if request.trainer.cross_fit_folds else []
    progress.step("evaluating", 0, detail=f"{len(data.holdout_slot_one):,} holdout decisions")
    evaluation = evaluate(
        data.holdout,
        data.holdout_slot_one,
        data.ad_rows,
        new,
        champion,
        ad_id_column=ad_id_column(spec, in_ad_rows=True),
        folds=folds,
    )
    verdict = judge(evaluation, request.rule)
    progress.finish()
    details |= manifest_metrics(evaluation, verdict)
    if request.trainer.refit_on_all:  # serve the same recipe fitted on every row; the metrics stay the judged fit's
        progress.step("refitting on every row", 0)
        trained = refit_on_all(data, spec, request.trainer, trained)
        model_bytes = export(trained, spec)
        details["heard_ads"] = heard_ads(spec, data.train, data.validation, data.holdout)
        details["refit_on_all"] = {
            "rows": len(data.train) + len(data.validation) + len(data.holdout),
            "epochs": trained.report.best_epoch,
            "metrics_of": "the fit on the train segment alone, evaluated on the holdout before the refit",
            "estimates_of": (
                f"{len(folds)} cross-fitted folds of every decision, each by the recipe fitted on the others"
                if folds
                else "the fit on the train segment alone, on the holdout"
            ),
        }
        progress.finish()
    manifest = write_model(candidate_dir, model_bytes, trained=trained, spec=spec, as_of=request.as_of, details=details)
    version = models.publish(candidate_dir)
    table = render(evaluation, verdict)
    if request.promotion == "never" or not verdict.promote:
        why = "registered only (--register-only)" if request.promotion == "never" else "not promoted"
        return RetrainResult("registered", f"{version}: {why}; {verdict.reason}", version, stats, manifest, table)
    serving_label = (
        champion.label
        if champion is not None
        else UNLABELLED_MEANS
        if pointer is None
        else _manifest_label(models, pointer.champion)
    )
    if serving_label is not None and request.label != serving_label:
        why = other_label(version, request.label, serving_label)
        return RetrainResult("registered", f"{version}: not promoted; {why}", version, stats, manifest, table)
    status, promoted = _promoted_pointer(version, pointer, request, broken_champion=loaded.broken)
    try:
        models.write_pointer(promoted, replacing=pointer)
    except PointerChangedError:
        # Another retrain or `adserve promote` moved it while this one trained: writing a pointer built from the
        # one read at the start would undo that, and the new model was not judged against what serves now.
        why = "not promoted: the pointer changed while it trained; the next run judges it against what serves"
        return RetrainResult("registered", f"{version}: {why}", version, stats, manifest, table)
    role = "champion" if status == "promoted" else f"challenger ({promoted.challenger_share:.0%} of listeners)"
    if status == "promoted" and request.challenger_share is not None and loaded.broken is not None:
        role += f", not challenger: the champion does not load ({loaded.broken})"
    message = f"{version}: promoted to {role}; {verdict.reason}"
    return RetrainResult(status, message, version, stats, manifest, table)


def _promoted_pointer(
    version: str, current: ActivePointer | None, request: RetrainRequest, *, broken_champion: str | None
) -> tuple[RetrainStatus, ActivePointer]:
    """The pointer promoting *version*: as challenger beside the current champion when asked and that champion
    loads, else as champion (a challenger beside a champion that does not load would never serve: Decide would
    stay on the bootstrap model, and every later run would pair its model with the same broken champion)."""
    now = datetime.now(UTC)
    if (
        request.challenger_share is not None
        and current is not None
        and current.champion != version
        and broken_champion is None
    ):
        return "challenger", ActivePointer(
            champion=current.champion,
            challenger=version,
            challenger_share=request.challenger_share,
            updated_at=now,
            updated_by=request.updated_by,
        )
    return "promoted", ActivePointer(champion=version, updated_at=now, updated_by=request.updated_by)


UNPUBLISHED_BOOTSTRAP: Final = (
    "Decide serves the bootstrap model while none is promoted, and it is no published version until published: "
    "adserve models publish layers/model/bootstrap/model.onnx --manifest layers/model/bootstrap/manifest.json, "
    "then adserve promote its version"
)
"""How to name the bootstrap model as champion (to add a challenger next to it, or roll back to it)."""


def other_label(version: str, label: str, serving_label: str) -> str:
    """Why a model of another label than the champion's (the bootstrap model's, a click, without one) is not promoted
    on its estimates."""
    return (
        f"it predicts {label}s and the champion {serving_label}s: their estimates are of different "
        f"rewards, so neither judges the other; `adserve promote {version} --change-label` makes Decide rank by "
        f"{label}s"
    )


def promote(
    models: ModelStore,
    version: str,
    *,
    challenger_share: float | None = None,
    change_label: bool = False,
    updated_by: str = "adserve promote",
    spec: FeatureSpec | None = None,
) -> ActivePointer:
    """Point traffic at a published version: as champion (any challenger is dropped) or as challenger.

    The version is first loaded as Decide would load it (``load_published``, the serving feature spec): a
    version whose model file is missing or whose manifest is torn would otherwise be pointed at, and then warm
    environments keep the old model while new ones fall back to the bootstrap one. So is the champion a challenger
    would join: Decide takes a pointer whole, so beside a champion that does not load the challenger never serves.
    A version that predicts another outcome than the champion (its ``label``) changes what Decide optimises: it
    becomes champion only with *change_label*, and never a challenger. A stored pointer that is no pointer is
    replaced by a champion (the rollback the runbook gives), not joined.
    """
    _check_share(challenger_share)
    current = _replaced_pointer(models, challenger_share)
    if version not in models.versions():
        hint = f" ({UNPUBLISHED_BOOTSTRAP})" if current is None else ""
        raise RetrainError(f"{version} is not a published model version{hint}")
    spec = spec or FeatureEncoder().spec
    with tempfile.TemporaryDirectory(prefix="adserve-promote-") as scratch:
        try:
            promoted = load_published(models, version, Path(scratch), spec)
        except (ModelLoadError, ModelNotFoundError) as error:
            raise RetrainError(f"{version} would not serve, so the pointer is unchanged: {error}") from error
        serving_label = _serving_label(models, current, promoted, challenger_share, scratch=Path(scratch), spec=spec)
    if (
        serving_label is not None
        and promoted.label != serving_label
        and (challenger_share is not None or not change_label)
    ):
        raise RetrainError(
            f"{version} is not promoted: {other_label(version, promoted.label, serving_label)}"
            + (" (as champion: a challenger must predict what its champion does)" if challenger_share else "")
        )
    now = datetime.now(UTC)
    if challenger_share is None:
        pointer = ActivePointer(champion=version, updated_at=now, updated_by=updated_by)
    else:
        if not isinstance(current, ActivePointer):
            raise RetrainError(
                f"no champion yet: promote a champion before adding a challenger ({UNPUBLISHED_BOOTSTRAP})"
            )
        if current.champion == version:
            raise RetrainError(f"{version} is already the champion")
        pointer = ActivePointer(
            champion=current.champion,
            challenger=version,
            challenger_share=challenger_share,
            updated_at=now,
            updated_by=updated_by,
        )
    models.write_pointer(pointer, replacing=current)
    return pointer


def _replaced_pointer(models: ModelStore, challenger_share: float | None) -> StoredPointer:
    """The pointer a promotion replaces; one that is no pointer is replaced by a champion, never joined."""
    try:
        return models.read_pointer()
    except InvalidModelPointerError as error:
        if challenger_share is not None:
            raise RetrainError(f"{error}: promote a champion over it before adding a challenger") from error
        return UNREADABLE_POINTER


def _serving_label(
    models: ModelStore,
    current: StoredPointer,
    promoted: CtrModel,
    challenger_share: float | None,
    *,
    scratch: Path,
    spec: FeatureSpec,
) -> str | None:
    """What the champion *promoted* would join or replace predicts, by its manifest (None: unknown, nothing of it
    reads); no pointer (or one that is no pointer) stands for the bootstrap model new environments serve. A
    challenger is refused beside a champion that does not load as Decide loads it (Decide takes a pointer whole,
    so it would never serve)."""
    if not isinstance(current, ActivePointer):
        return UNLABELLED_MEANS
    if current.champion == promoted.version:
        return promoted.label
    if challenger_share is not None:
        try:
            return load_published(models, current.champion, scratch, spec).label
        except (ModelLoadError, ModelNotFoundError) as error:
            # the command that replaces it, held to the label the champion's manifest still says (if it reads)
            replaced = _manifest_label(models, current.champion)
            relabels = replaced is not None and replaced != promoted.label
            command = f"adserve promote {promoted.version}" + (" --change-label" if relabels else "")
            labels = f"; it predicts {promoted.label}s, the champion {replaced}s" if relabels else ""
            raise RetrainError(
                f"the champion {current.champion} does not load, so Decide would never serve a challenger beside "
                f"it; promote {promoted.version} as champion instead (`{command}`{labels}): {error}"
            ) from error
    return _manifest_label(models, current.champion)


def _manifest_label(models: ModelStore, version: str) -> str | None:
    """What a version predicts, as its manifest says (read alone: a missing or corrupt model file leaves it
    readable), so replacing a champion that does not load, a retrain's way of healing it, keeps the deployment's
    label; None when even the manifest cannot be read: nothing of that version serves, and no rule can say what it
    predicted."""
    manifest = _stored_manifest(models, version)
    return None if manifest is None else str(manifest.get("label", UNLABELLED_MEANS))


def _stored_manifest(models: ModelStore, version: str) -> dict[str, Any] | None:
    """A version's manifest, read alone; None when it is missing or no JSON object."""
    try:
        manifest = json.loads(models.manifest_bytes(version))
    except (ModelNotFoundError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


@dataclass(frozen=True)
class PublishedModel:
    version: str
    manifest: dict[str, Any]
    problem: str | None = None
    """Why the version cannot be read (a file missing, a manifest that is not JSON); its manifest is then empty
    unless it was its model file that could not be read."""


def published_models(models: ModelStore, work_dir: Path) -> list[PublishedModel]:
    """Every published version with its manifest (each version is downloaded into work_dir); one that cannot be
    read is listed with its problem, not fatal to the list: the list is where an operator picks a rollback."""
    found = []
    for version in models.versions():
        try:
            folder = models.download(version, work_dir)
            manifest = json.loads((folder / MANIFEST_FILE).read_text())
            if not isinstance(manifest, dict):
                raise ValueError("its manifest is not a JSON object")
        except (ModelNotFoundError, ValueError) as error:
            # its model file gone, its manifest may still say what it was (its label, for the promotion rule)
            found.append(PublishedModel(version, _stored_manifest(models, version) or {}, str(error)))
        else:
            found.append(PublishedModel(version, manifest))
    return found


def compare_published(
    logs: LogReader,
    models: ModelStore,
    config: DatasetConfig,
    versions: list[str],
    *,
    work_dir: Path,
    encoder: FeatureEncoder | None = None,
) -> Comparison:
    """Published versions (default: the pointer's champion, then its challenger) on every decision of a range.

    However a version was made (our trainer, ``adserve models publish``), it is loaded as Decide loads it
    and replayed through the same estimators as ``adserve train``; the first version is DR's reward model.
    """
    encoder = encoder or FeatureEncoder()
    pointer = models.read_pointer()
    roles: dict[str, str] = {}
    if pointer is not None:
        roles[pointer.champion] = "champion"
        if pointer.challenger is not None:
            roles[pointer.challenger] = "challenger"
    chosen = versions or list(roles)
    if not chosen:
        raise RetrainError(f"no active pointer: name the versions to evaluate ({UNPUBLISHED_BOOTSTRAP})")
    published = set(models.versions())
    missing = [version for version in chosen if version not in published]
    if missing:
        raise RetrainError(f"not published: {', '.join(missing)}")
    loaded = [
        (f"{roles.get(version, 'model')} {version}", CtrModel.load(models.download(version, work_dir), encoder.spec))
        for version in dict.fromkeys(chosen)
    ]
    examples, slot, ad_rows = evaluation_set(TrainingDataset(logs, config, encoder))
    return compare(examples, slot, ad_rows, loaded, ad_id_column=ad_id_column(encoder.spec, in_ad_rows=True))
