"""``adserve train``, ``adserve promote`` and ``adserve models``: the retraining pipeline from a terminal.

    adserve train --from 2026-11-18T00 --to 2026-11-25T00 [--label click|complete] [--reward-window-hours 24]
                  [--weighting none|ips] [--pairs all|with_listener] [--l2-grid 1e-4 1e-3 ...]
                  [--refit-on-all [--cross-fit-folds K]] [--batch-size 64]
                  [--promote|--register-only]
                  [--challenger-share 0.1]
    adserve promote VERSION [--challenger --share 0.2 | --change-label]
    adserve models [--json]
    adserve models publish model.onnx --manifest manifest.json      (checked against the model contract first)
    adserve models evaluate [VERSION ...] --from ... --to ... [--label click|complete]

Buckets come from --logs-bucket/--models-bucket or $LOGS_BUCKET_NAME/$MODELS_BUCKET_NAME. The training
modules (numpy training, ``onnx``) are imported only when a command needs them, so the rest of the CLI
starts fast and works without the ``train`` extra.
"""

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from adserve.cli.arguments import checked

if TYPE_CHECKING:
    from adserve.models.registry import ModelStore
    from adserve.outcomes.logs import LogReader

MODEL_GROUPS: Final = frozenset({"train", "promote", "models"})
LOGS_BUCKET_VARIABLE: Final = "LOGS_BUCKET_NAME"
MODELS_BUCKET_VARIABLE: Final = "MODELS_BUCKET_NAME"
MODEL_DIR_VARIABLE: Final = "MODEL_DIR"
DEFAULT_MODEL_DIR: Final = Path(__file__).resolve().parents[3] / "layers" / "model" / "bootstrap"
"""The repository's bootstrap model, wherever the command runs from (an installed package has none)."""
EXIT_SKIPPED: Final = 3
"""`adserve train` exit status when there was too little data (nothing published): not a crash, not a model."""


def _say(message: str) -> None:
    print(f"adserve: {message}", file=sys.stderr)  # noqa: T201 - CLI output


MAX_RANGE: Final = timedelta(days=366)
"""The longest --from/--to the log readers take: they list the logs an hour prefix at a time, so a range of
centuries was millions of S3 listings that ran for hours printing nothing."""


def range_problem(start: datetime, end: datetime) -> str | None:
    """What is wrong with a --from/--to range of the logs, or None."""
    if end < start:
        return "--to is before --from"
    if end - start > MAX_RANGE:
        return f"--from to --to spans {(end - start).days} days; the logs are read at most {MAX_RANGE.days} at a time"
    return None


CHALLENGER_SHARE: Final = 0.1
"""The share of listeners `adserve promote --challenger` gives a challenger unless told."""


_share = checked(float, lambda share: 0 < share < 1, "a share of listeners in (0, 1)")
_margin = checked(float, lambda margin: 0 <= margin <= 1, "a relative improvement in [0, 1]")


MAX_CROSS_FIT_FOLDS: Final = 20
"""RetrainSettings' bound on TRAINING_CROSS_FIT_FOLDS."""
_cross_fit_folds = checked(
    int, lambda folds: folds == 0 or 2 <= folds <= MAX_CROSS_FIT_FOLDS, f"0 or 2 to {MAX_CROSS_FIT_FOLDS} folds"
)


MAX_REWARD_WINDOW_HOURS: Final = 24 * 7
"""RetrainSettings' bound on REWARD_WINDOW_HOURS: the CLI trains as the scheduled Retrain does."""


_reward_window = checked(
    float, lambda hours: 0 < hours <= MAX_REWARD_WINDOW_HOURS, f"a number of hours in (0, {MAX_REWARD_WINDOW_HOURS}]"
)
"""Hours after a decision in which its outcomes count: more than 0, at most a week (RetrainSettings' bounds)."""


def add_model_commands(groups: "argparse._SubParsersAction[Any]", hour: Callable[[str], datetime]) -> None:
    train = groups.add_parser("train", help="train on the logs of a time range, evaluate, publish, maybe promote")
    train.add_argument("--from", dest="start", type=hour, required=True, help="first hour, UTC, e.g. 2026-11-18T00")
    train.add_argument("--to", dest="end", type=hour, required=True, help="last decision time, UTC")
    train.add_argument("--as-of", type=hour, help="the logs' end (default: now); later decisions lack final labels")
    train.add_argument("--label", choices=("click", "complete"), default="click")
    train.add_argument(
        "--reward-window-hours", type=_reward_window, default=24.0, help="outcomes later than this count 0 (0-168]"
    )
    train.add_argument("--weighting", choices=("none", "ips"), default="none", help="ips: weight rows 1/propensity")
    train.add_argument(
        "--pairs", choices=("all", "with_listener"), default="all", help="with_listener: no listener x listener pairs"
    )
    train.add_argument(
        "--l2-grid", type=float, nargs="+", default=(), help="L2s on the factors to choose from on validation data"
    )
    train.add_argument("--batch-size", type=int, default=1024, help="rows per Adagrad step of every fit")
    train.add_argument(
        "--refit-on-all",
        action="store_true",
        help="publish the chosen recipe refitted on every row, holdout included (metrics stay the judged fit's)",
    )
    train.add_argument(
        "--cross-fit-folds",
        type=_cross_fit_folds,
        default=0,
        metavar="K",
        help="with --refit-on-all: estimate on every decision, each of K time folds by the recipe fitted on the others",
    )
    mode = train.add_mutually_exclusive_group()
    mode.add_argument(
        "--promote", dest="promotion", action="store_const", const="auto", help="promote if it beats the champion"
    )
    mode.add_argument("--register-only", dest="promotion", action="store_const", const="never")
    train.set_defaults(promotion="auto", erased=frozenset())
    train.add_argument("--challenger-share", type=_share, help="a model that passes becomes the challenger")
    train.add_argument("--estimator", choices=("ips", "snips", "dr"), default="snips", help="for the promotion rule")
    train.add_argument("--margin", type=_margin, default=0.02, help="relative improvement needed (0.02 = 2%%)")
    train.add_argument("--min-rows", type=int, default=1000)
    train.add_argument("--min-positives", type=int, default=20)
    train.add_argument("--holdout", type=float, default=0.2, help="last share of the window held out")
    train.add_argument("--model-dir", type=Path, help=f"bootstrap model (default: ${MODEL_DIR_VARIABLE})")
    train.add_argument(
        "--json", action="store_true", help="print the run's summary as JSON (the table then goes to stderr)"
    )
    _bucket_arguments(train, logs=True)
    promote = groups.add_parser("promote", help="point traffic at a published version")
    promote.add_argument("version")
    promote.add_argument("--challenger", action="store_true", help="as challenger next to the current champion")
    promote.add_argument(
        "--share",
        type=_share,
        help=f"with --challenger: its share of listeners, in (0, 1) (default {CHALLENGER_SHARE})",
    )
    promote.add_argument(
        "--change-label",
        action="store_true",
        help="as champion, a version that predicts another outcome than the champion (its manifest's label): "
        "Decide then ranks by that outcome",
    )
    _bucket_arguments(promote, logs=False)
    models = groups.add_parser("models", help="list published models with their metrics and the active pointer")
    models.add_argument("--json", action="store_true")
    _bucket_arguments(models, logs=False)
    actions = models.add_subparsers(dest="action")
    publish = actions.add_parser("publish", help="check a model made anywhere against the contract, then register it")
    publish.add_argument("model", type=Path, help="the ONNX file (docs/models.md says what it must be)")
    publish.add_argument("--manifest", type=Path, required=True, help="its manifest.json")
    _bucket_arguments(publish, logs=False, default=argparse.SUPPRESS)
    evaluate = actions.add_parser("evaluate", help="published models side by side on the logs of a time range")
    evaluate.add_argument("versions", nargs="*", help="default: the champion, then the challenger")
    evaluate.set_defaults(erased=frozenset())
    evaluate.add_argument("--from", dest="start", type=hour, required=True, help="first hour, UTC")
    evaluate.add_argument("--to", dest="end", type=hour, required=True, help="last decision time, UTC")
    evaluate.add_argument("--as-of", type=hour, help="the logs' end (default: now); later decisions lack final labels")
    evaluate.add_argument("--label", choices=("click", "complete"), default="click")
    evaluate.add_argument(
        "--reward-window-hours", type=_reward_window, default=24.0, help="outcomes later than this count 0 (0-168]"
    )
    _bucket_arguments(evaluate, logs=True, default=argparse.SUPPRESS)


def _bucket_arguments(parser: argparse.ArgumentParser, *, logs: bool, default: Any = None) -> None:
    """``default=argparse.SUPPRESS`` on a subcommand, so it does not hide the value given before its name."""
    if logs:
        parser.add_argument("--logs-bucket", default=default, help=f"logs bucket (default: ${LOGS_BUCKET_VARIABLE})")
    parser.add_argument("--models-bucket", default=default, help=f"models bucket (default: ${MODELS_BUCKET_VARIABLE})")


def _bucket(given: str | None, variable: str) -> str | None:
    bucket = given or os.environ.get(variable)
    if not bucket:
        _say(f"no bucket; pass --{variable.split('_', maxsplit=1)[0].lower()}-bucket or set {variable}")
    return bucket


def _s3_model_store(bucket: str) -> "ModelStore":
    from adserve.dal.aws_clients import s3_client  # noqa: PLC0415 - lazy: boto3 only when a bucket is used
    from adserve.dal.model_store import S3ModelStore  # noqa: PLC0415

    return S3ModelStore(s3_client(), bucket)


def _s3_log_store(bucket: str) -> "LogReader":
    from adserve.dal.aws_clients import s3_client  # noqa: PLC0415
    from adserve.dal.log_store import S3LogStore  # noqa: PLC0415

    return S3LogStore(s3_client(), bucket)


def _s3_erased(bucket: str) -> frozenset[str]:
    """The erasure ledger beside the logs: its listeners' rows are left out of what the command trains on."""
    from adserve.dal.aws_clients import s3_client  # noqa: PLC0415
    from adserve.dal.erasure_store import S3ErasureLedger  # noqa: PLC0415

    return S3ErasureLedger(s3_client(), bucket).erased()


def _arguments_problem(command: str, arguments: argparse.Namespace) -> str | None:
    """What is wrong with a command's arguments together, before any bucket is touched; None if nothing."""
    if command == "train" and arguments.cross_fit_folds and not arguments.refit_on_all:
        return "--cross-fit-folds needs --refit-on-all: the folds' fits stand for a model fitted on every row"
    return range_problem(arguments.start, arguments.end) if command in LOG_COMMANDS else None


def run_model_command(
    arguments: argparse.Namespace, logs: "LogReader | None" = None, models: "ModelStore | None" = None
) -> int:
    """Dispatch train/promote/models; stores default to the S3 buckets named by flags or environment."""
    from adserve.core.errors import AdserveError  # noqa: PLC0415

    command = arguments.group if arguments.group != "models" else f"models {arguments.action or 'list'}"
    if (problem := _arguments_problem(command, arguments)) is not None:
        _say(problem)
        return 2
    if models is None:
        bucket = _bucket(getattr(arguments, "models_bucket", None), MODELS_BUCKET_VARIABLE)
        if bucket is None:
            return 2
        models = _s3_model_store(bucket)
    logs_bucket = None
    if logs is None and command in LOG_COMMANDS:
        logs_bucket = _bucket(getattr(arguments, "logs_bucket", None), LOGS_BUCKET_VARIABLE)
        if logs_bucket is None:
            return 2
        logs = _s3_log_store(logs_bucket)
    try:
        if logs_bucket is not None:
            arguments.erased = _s3_erased(logs_bucket)
        if logs is not None and command in LOG_COMMANDS:
            return LOG_COMMANDS[command](arguments, logs, models)
        return MODEL_COMMANDS[command](arguments, models)
    except (AdserveError, ValueError) as error:
        _say(str(error))
        return 1


def _train(arguments: argparse.Namespace, logs: "LogReader", models: "ModelStore") -> int:
    from adserve.models.contract import MODEL_FILE  # noqa: PLC0415
    from adserve.training.evaluation import PromotionRule  # noqa: PLC0415
    from adserve.training.factorization_machine import TrainingConfig  # noqa: PLC0415
    from adserve.training.prefetch import PrefetchingReader  # noqa: PLC0415
    from adserve.training.progress import Progress  # noqa: PLC0415
    from adserve.training.retraining import RetrainRequest, retrain  # noqa: PLC0415 - needs numpy training and onnx
    from adserve.training.trainer import TrainerConfig  # noqa: PLC0415

    request = RetrainRequest(
        start=arguments.start,
        end=arguments.end,
        as_of=arguments.as_of or datetime.now(UTC),
        label=arguments.label,
        reward_window=timedelta(hours=arguments.reward_window_hours),
        trainer=TrainerConfig(
            holdout_fraction=arguments.holdout,
            weighting=arguments.weighting,
            pairs=arguments.pairs,
            l2_factors_grid=tuple(arguments.l2_grid),
            refit_on_all=arguments.refit_on_all,
            cross_fit_folds=arguments.cross_fit_folds,
            fit=TrainingConfig(batch_size=arguments.batch_size),
        ),
        promotion=arguments.promotion,
        rule=PromotionRule(arguments.estimator, arguments.margin),
        challenger_share=arguments.challenger_share,
        min_rows=arguments.min_rows,
        min_positives=arguments.min_positives,
        updated_by="adserve train",
        erased=arguments.erased,
    )
    named = arguments.model_dir or os.environ.get(MODEL_DIR_VARIABLE)
    model_dir = Path(named) if named else DEFAULT_MODEL_DIR
    if not (model_dir / MODEL_FILE).is_file():
        # Without a champion, the bootstrap model Decide serves is the baseline; silently missing, the run judged
        # against the logging policy instead, and the verdict could flip with the directory it was run from
        if named:
            _say(f"{model_dir} holds no {MODEL_FILE}: --model-dir (or ${MODEL_DIR_VARIABLE}) names the bootstrap model")
            return 2
        _say(f"no bootstrap model at {model_dir}: without a champion, the logging policy is the baseline")
    with tempfile.TemporaryDirectory(prefix="adserve-train-") as work_dir, PrefetchingReader(logs) as reader:
        result = retrain(
            reader, models, request, work_dir=Path(work_dir), fallback_model_dir=model_dir, progress=Progress()
        )
    if result.table:  # with --json, stdout holds the JSON alone (`adserve train --json | jq`)
        print(result.table, file=sys.stderr if arguments.json else sys.stdout)
    dataset = result.dataset
    _say(
        f"{dataset.get('examples', 0):,} examples from {dataset.get('decisions', 0):,} decisions; "
        f"{dataset.get('log_malformed_lines', 0)} malformed lines and {dataset.get('log_unreadable_objects', 0)} "
        f"unreadable objects skipped, {dataset.get('log_duplicates_dropped', 0)} duplicates dropped"
    )
    if arguments.json:
        print(json.dumps(result.summary(), indent=2, sort_keys=True))  # noqa: T201
    _say(result.message)
    return EXIT_SKIPPED if result.status == "skipped" else 0


def _promote(arguments: argparse.Namespace, models: "ModelStore") -> int:
    from adserve.training.retraining import promote  # noqa: PLC0415

    if arguments.share is not None and not arguments.challenger:
        _say("--share is the share of a challenger: add --challenger, or drop --share to promote a champion")
        return 2
    if arguments.change_label and arguments.challenger:
        _say("--change-label promotes a champion: a challenger must predict what its champion does")
        return 2
    share = (arguments.share or CHALLENGER_SHARE) if arguments.challenger else None
    pointer = promote(models, arguments.version, challenger_share=share, change_label=arguments.change_label)
    print(pointer.model_dump_json(indent=2))  # noqa: T201
    return 0


def _publish(arguments: argparse.Namespace, models: "ModelStore") -> int:
    """Exit 1 naming every violated clause, and nothing stored, unless the model meets the whole contract."""
    from adserve.models.contract import ContractViolationError, publish  # noqa: PLC0415
    from adserve.models.features import FeatureEncoder  # noqa: PLC0415

    try:
        version = publish(models, arguments.model, arguments.manifest, FeatureEncoder().spec)
    except ContractViolationError as error:
        _say(f"{arguments.model} does not meet the model contract (docs/models.md); nothing was stored")
        for violation in error.violations:
            _say(f"  {violation}")
        return 1
    print(version)  # noqa: T201
    _say(f"{version} published; make it serve with `adserve promote {version}` (--challenger --share 0.1)")
    return 0


def _evaluate(arguments: argparse.Namespace, logs: "LogReader", models: "ModelStore") -> int:
    from adserve.training.dataset import DatasetConfig  # noqa: PLC0415
    from adserve.training.prefetch import PrefetchingReader  # noqa: PLC0415
    from adserve.training.retraining import compare_published  # noqa: PLC0415

    config = DatasetConfig(
        arguments.start,
        arguments.end,
        arguments.as_of or datetime.now(UTC),
        arguments.label,
        timedelta(hours=arguments.reward_window_hours),
        erased=arguments.erased,
    )
    with tempfile.TemporaryDirectory(prefix="adserve-evaluate-") as work_dir, PrefetchingReader(logs) as reader:
        comparison = compare_published(reader, models, config, arguments.versions, work_dir=Path(work_dir))
    if not comparison.decisions:  # a table of dashes says nothing: say why there was nothing to judge on
        hours = config.reward_window.total_seconds() / 3600
        last = min(config.end, config.as_of - config.reward_window)
        young, since = (
            f"younger than the {hours:g} h reward window (--reward-window-hours)",
            f"{config.start:%Y-%m-%dT%H:%M}Z",
        )
        if comparison.learned_from:
            why = f"the models learned from all {comparison.learned_from:,} decisions of the range"
        elif last >= config.start:
            why = f"no decision was logged from {since} to {last:%Y-%m-%dT%H:%M}Z (later ones: {young})"
        else:
            why = f"every decision from {since} on is {young}"
        _say(f"nothing to evaluate on: {why}")
        return EXIT_SKIPPED
    print(comparison.render())  # noqa: T201
    return 0


def _models(arguments: argparse.Namespace, models: "ModelStore") -> int:
    from adserve.core.errors import InvalidModelPointerError  # noqa: PLC0415
    from adserve.training.retraining import published_models  # noqa: PLC0415

    problem = None
    try:
        pointer = models.read_pointer()
    except InvalidModelPointerError as error:  # the list is where a rollback over it is picked
        problem = str(error)
        _say(f"{error}; Decide keeps what it served (new environments the bootstrap model): `adserve promote VERSION`")
        pointer = None
    with tempfile.TemporaryDirectory(prefix="adserve-models-") as work_dir:
        published = published_models(models, Path(work_dir))
    roles = {}
    if pointer is not None:
        roles[pointer.champion] = "champion"
        if pointer.challenger:
            roles[pointer.challenger] = f"challenger {pointer.challenger_share:.0%}"
    if arguments.json:
        document = {
            "pointer": None if pointer is None else pointer.model_dump(mode="json"),
            "pointer_problem": problem,
            "models": [
                {"version": m.version, "role": roles.get(m.version), "manifest": m.manifest, "problem": m.problem}
                for m in published
            ],
        }
        print(json.dumps(document, indent=2, sort_keys=True))  # noqa: T201
        return 0
    header = ("VERSION", "ROLE", "LABEL", "TRAIN ROWS", "AUC", "SNIPS", "PROMOTION")
    rows = [header]
    for model in published:
        manifest = model.manifest
        evaluation = _object(manifest.get("evaluation"))
        snips = _object(_object(evaluation.get("off_policy")).get("new")).get("snips")
        promotion = _object(evaluation.get("promotion"))
        rows.append(
            (
                model.version,
                roles.get(model.version, ""),
                str(manifest.get("label", "click")),
                str(_object(manifest.get("row_counts")).get("train", manifest.get("training_rows", ""))),
                _number(manifest.get("holdout_auc")),
                _number(snips, 5),
                "" if not promotion else ("passed" if promotion.get("promote") else "failed"),
            )
            if model.problem is None
            else (
                model.version,
                roles.get(model.version, ""),
                str(model.manifest.get("label", "-")),
                "-",
                "-",
                "-",
                "UNREADABLE",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())  # noqa: T201
    for model in published:
        if model.problem is not None:
            print(f"{model.version} cannot be served: {model.problem}")  # noqa: T201
    active = "none (Decide serves the bootstrap model)" if pointer is None else pointer.model_dump_json()
    print(f"{len(published)} models; active pointer: {active}")  # noqa: T201
    return 0


def _object(value: object) -> dict[str, Any]:
    """A manifest key ``adserve train`` writes as an object; anything else (the contract lets an external model put
    any JSON under a key it does not define) reads as empty, so one model's notes cannot hide every model."""
    return value if isinstance(value, dict) else {}


def _number(value: object, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


MODEL_COMMANDS: Final[dict[str, Callable[[argparse.Namespace, "ModelStore"], int]]] = {
    "promote": _promote,
    "models list": _models,
    "models publish": _publish,
}
LOG_COMMANDS: Final[dict[str, Callable[[argparse.Namespace, "LogReader", "ModelStore"], int]]] = {
    "train": _train,
    "models evaluate": _evaluate,
}
