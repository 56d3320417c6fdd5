"""Record: the outcomes queue's consumer. Builds the recorder once per environment and hands it the batch."""

from adserve.core.collector import collector_paused

with collector_paused():  # the import allocates what it keeps: no collection until it is done
    from functools import cache
    from typing import Any

    from adserve.core.observability import logger, metrics, tracer
    from adserve.outcomes.recording import OutcomeRecorder
    from adserve.wiring.record import outcome_recorder
    from adserve.wiring.settings import RecordSettings
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext


@cache
def recorder() -> OutcomeRecorder:
    """Built on the first batch of an execution environment, then reused."""
    with collector_paused():  # as the import: clients and the campaign directory are kept for the environment
        return outcome_recorder(RecordSettings.from_env())


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Partial batch response: only the failed records' message ids come back to SQS."""
    return recorder().process_batch(event, context)
