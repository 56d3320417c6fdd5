"""Track's wiring: the outcome queue with a tight time budget and the signing keys."""

from adserve.dal.aws_clients import secretsmanager_client, sqs_send_client
from adserve.dal.outcome_queue import OutcomeQueue
from adserve.outcomes.tracking import TrackingService
from adserve.wiring.secret_keys import signing_keys
from adserve.wiring.settings import TrackSettings


def tracking_service(settings: TrackSettings) -> TrackingService:
    # A beacon answers within Track's 6 s timeout even when SQS hangs: two tries of at most 1.5 s each and up to
    # 1 s of backoff between them; a batch starts no call after tracking.QUEUE_BUDGET_SECONDS.
    queue_client = sqs_send_client(connect_timeout=0.5, read_timeout=1.0, attempts=2)
    return TrackingService(
        queue=OutcomeQueue(queue_client, settings.outcomes_queue_url),
        keys=signing_keys(
            secretsmanager_client(),
            settings.signing_key_secret_id,
            unknown_key_refresh_seconds=settings.unknown_key_refresh_seconds,
        ),
    )
