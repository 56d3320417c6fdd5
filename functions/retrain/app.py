"""Retrain: on its schedule, train on the last N hours of logs, evaluate, publish, maybe promote."""

from functools import cache
from typing import Any

from adserve.core.observability import logger, metrics, tracer
from adserve.wiring.retrain import scheduled_retrain
from adserve.wiring.settings import RetrainSettings
from aws_lambda_powertools.utilities.typing import LambdaContext


@cache
def settings() -> RetrainSettings:
    """Read and validated on the first run of an execution environment."""
    return RetrainSettings.from_env()


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - a schedule's event carries nothing used
    """The run's summary: status (promoted|challenger|registered|skipped), message, version, row counts."""
    return scheduled_retrain(settings())
