"""Retrain's wiring: the logs bucket to read, the models bucket to publish to, the last N hours as of now."""

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from adserve.core.observability import MetricName, logger, metrics
from adserve.dal.aws_clients import s3_client
from adserve.dal.erasure_store import S3ErasureLedger
from adserve.dal.log_store import S3LogStore
from adserve.dal.model_store import S3ModelStore
from adserve.training.evaluation import PromotionRule
from adserve.training.factorization_machine import TrainingConfig
from adserve.training.prefetch import PrefetchingReader
from adserve.training.retraining import RetrainRequest, RetrainResult, retrain
from adserve.training.schedule import RetrainSchedule
from adserve.training.trainer import TrainerConfig
from adserve.wiring.settings import RetrainSettings


def scheduled_request(settings: RetrainSettings, now: datetime, erased: frozenset[str] = frozenset()) -> RetrainRequest:
    """Decisions of the last `training_hours` whose reward window has closed, as of `now`, but the `erased`
    listeners' (the erasure ledger's pseudonyms); with `retrain_first_decisions`, only when the schedule says due."""
    return RetrainRequest(
        start=now - timedelta(hours=settings.training_hours),
        end=now,
        as_of=now,
        label=settings.label,
        reward_window=timedelta(hours=settings.reward_window_hours),
        trainer=TrainerConfig(
            weighting=settings.weighting,
            pairs=settings.training_pairs,
            refit_on_all=settings.training_refit_on_all,
            cross_fit_folds=settings.training_cross_fit_folds,
            l2_factors_grid=settings.training_l2_factors_grid,
            fit=TrainingConfig(batch_size=settings.training_batch_size),
        ),
        rule=PromotionRule(settings.promotion_estimator, settings.promotion_margin),
        challenger_share=settings.challenger_share,
        min_rows=settings.min_rows,
        min_positives=settings.min_positives,
        updated_by="RetrainFunction",
        erased=erased,
        schedule=RetrainSchedule(
            settings.retrain_first_decisions,
            settings.retrain_growth,
            timedelta(hours=settings.retrain_max_interval_hours),
        )
        if settings.retrain_first_decisions
        else None,
    )


def run_scheduled_retrain(settings: RetrainSettings, now: datetime | None = None) -> RetrainResult:
    """One retraining run against the stack's buckets, working in a fresh temporary directory.

    The erasure ledger is read once, before anything else: a run that cannot read it fails rather than train
    on erased listeners' rows.
    """
    client = s3_client()
    erased = S3ErasureLedger(client, settings.logs_bucket_name).erased()
    request = scheduled_request(settings, now or datetime.now(UTC), erased)
    logs = PrefetchingReader(S3LogStore(client, settings.logs_bucket_name))
    with tempfile.TemporaryDirectory(prefix="adserve-retrain-") as work_dir, logs:
        return retrain(
            logs,
            S3ModelStore(client, settings.models_bucket_name),
            request,
            work_dir=Path(work_dir),
            fallback_model_dir=settings.model_dir,
        )


def scheduled_retrain(settings: RetrainSettings) -> dict[str, Any]:
    """Run once, emit RetrainOutcome (dimension `outcome`) and the row counts, log and return the summary.

    Too little data is a normal outcome (`skipped`), not an error; AWS or model failures raise.
    """
    result = run_scheduled_retrain(settings)
    # A document of its own: a dimension added to the shared set would land on the row counts too, where a graph
    # of RetrainExamples{service=retrain} then finds no data
    with single_metric(
        name=MetricName.RETRAIN_OUTCOME, unit=MetricUnit.Count, value=1, namespace=metrics.namespace
    ) as outcome:
        outcome.add_dimension(name="outcome", value=result.status)
    metrics.add_metric(name=MetricName.RETRAIN_EXAMPLES, unit=MetricUnit.Count, value=result.dataset.get("examples", 0))
    metrics.add_metric(
        name=MetricName.RETRAIN_MALFORMED_LINES,
        unit=MetricUnit.Count,
        value=result.dataset.get("log_malformed_lines", 0),
    )
    metrics.add_metric(
        name=MetricName.RETRAIN_ERASED_DECISIONS_DROPPED,
        unit=MetricUnit.Count,
        value=result.dataset.get("log_dropped_erased", 0),
    )
    summary = result.summary()
    if result.status == "skipped":
        logger.warning("retrain skipped", extra={"retrain": summary})
    else:
        logger.info("retrain finished", extra={"retrain": summary})
    return summary
