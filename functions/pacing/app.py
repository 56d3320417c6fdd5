"""Pacing: every minute, set each live budgeted campaign's serve probability from its delivery so far."""

from functools import cache
from typing import Any

from adserve.core.observability import logger, metrics, tracer
from adserve.wiring.pacing import scheduled_pacing
from adserve.wiring.settings import PacingSettings
from aws_lambda_powertools.utilities.typing import LambdaContext


@cache
def settings() -> PacingSettings:
    """Read and validated on the first run of an execution environment."""
    return PacingSettings.from_env()


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - a schedule's event carries nothing used
    """The step's summary: campaigns paced, failed, exhausted (early), over-delivered, left for the next step."""
    return scheduled_pacing(settings(), context.get_remaining_time_in_millis)
