"""The pacing step's wiring: campaigns, delivery counters and request counts in, pacing states out."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from adserve.core.observability import MetricName, logger, metrics
from adserve.delivery.pacing import PacingConfig
from adserve.delivery.pacing_step import StepSummary, run_pacing_step
from adserve.wiring.campaigns import campaign_store, delivery_store, pacing_store
from adserve.wiring.settings import PacingSettings


def pacing_config(settings: PacingSettings) -> PacingConfig:
    """The controller's tunables from the environment; it assumes Decide serves a state as long as Decide does."""
    return PacingConfig(
        in_flight_steps=settings.pacing_in_flight_steps,
        state_served_for=timedelta(seconds=settings.pacing_max_age_seconds),
    )


TIME_RESERVE_MS = 10_000
"""Of the function's timeout, what a step keeps for the campaigns in flight and its metrics: it takes no new
campaign past it (``run_pacing_step``'s ``time_is_up``)."""


def run_scheduled_pacing(settings: PacingSettings, remaining_ms: Callable[[], int]) -> StepSummary:
    """One step against the stack's tables, reading up to ``pacing_parallel_reads`` campaigns at once, taking
    no new campaign once ``remaining_ms`` (the Lambda context's) falls under ``TIME_RESERVE_MS``."""
    delivery = delivery_store(settings.delivery_table_name)
    with ThreadPoolExecutor(max_workers=settings.pacing_parallel_reads) as pool:
        return run_pacing_step(
            campaign_store(settings.campaigns_table_name).list_campaigns(),
            delivery,
            delivery,
            pacing_store(settings.pacing_table_name),
            datetime.now(UTC),
            config=pacing_config(settings),
            parallel=pool.map,
            time_is_up=lambda: remaining_ms() < TIME_RESERVE_MS,
            clock=lambda: datetime.now(UTC),
            rates=settings.rates,
        )


def scheduled_pacing(settings: PacingSettings, remaining_ms: Callable[[], int]) -> dict[str, Any]:
    """Run once, emit the step's metrics (PacingSteps is the heartbeat PacingNotRunAlarm watches), log it.

    A campaign that could not be paced is counted (PacingFailures) and keeps its previous state, as does one
    left for the next step when time ran out (PacingDeferred); the step itself fails (an Errors datapoint) only
    when the campaigns or the states cannot be read at all.
    """
    summary = run_scheduled_pacing(settings, remaining_ms)
    for name, value in (
        (MetricName.PACING_STEPS, 1),
        (MetricName.CAMPAIGNS_PACED, summary.paced),
        (MetricName.PACING_FAILURES, len(summary.failed)),
        (MetricName.PACING_DEFERRED, len(summary.deferred)),
        (MetricName.CAMPAIGNS_EXHAUSTED, summary.exhausted),
        (MetricName.BUDGETS_EXHAUSTED_EARLY, len(summary.exhausted_early)),
        (MetricName.CAMPAIGNS_OVER_DELIVERED, len(summary.over_delivered)),
    ):
        metrics.add_metric(name, MetricUnit.Count, value)
    result = {
        "paced": summary.paced,
        "failed": summary.failed,
        "exhausted": summary.exhausted,
        "exhausted_early": summary.exhausted_early,
        "over_delivered": summary.over_delivered,
        "deferred": len(summary.deferred),
        "exact_reads": summary.exact_reads,
        "profiles_unread": summary.profiles_unread,
    }
    if summary.failed or summary.over_delivered or summary.deferred or summary.profiles_unread:
        logger.warning("pacing step finished with problems", extra={"pacing": result})
    else:
        logger.info("pacing step finished", extra={"pacing": result})
    return result
