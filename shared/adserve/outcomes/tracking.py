"""Track: verify tracking tokens and queue the outcome events they prove; nothing unverified is queued.

An event's identity is (decision, ad, event type), which its token names. A beacon has no id of its own, so
its event_id is derived from that identity: a replayed or retried beacon is the same event, which Record
then counts once. A batch event keeps the id the app gave it.
"""

import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from adserve.core.decision_ids import decided_at
from adserve.core.errors import (
    ExpiredTokenError,
    OutcomeQueueUnavailableError,
    SecretKeysUnavailableError,
    TokenError,
    WrongEventTypeError,
)
from adserve.core.observability import MetricName, count_degraded, logger, metrics
from adserve.core.vocabulary import EventType
from adserve.outcomes.api import EventBatchRequest, EventBatchResponse, EventIn, EventResult, RejectionCode
from adserve.outcomes.events import MAX_CLOCK_SKEW, MAX_EVENT_AGE, OutcomeEvent
from adserve.outcomes.key_cache import SigningKeyCache
from adserve.outcomes.tokens import TrackingClaims, UnknownKeyError

BEACON_ID_NAMESPACE = uuid.UUID("5b0f7c1e-2d4a-4e7b-9a36-0c1d9e8f7a21")
"""Fixed forever: beacon event ids derived under it must stay the same across deployments."""

QUEUE_BUDGET_SECONDS = 1.5
"""How long a batch may spend starting SQS calls: one begun by then ends within Track's timeout (6 s) even when SQS
hangs (two tries of at most 1.5 s and up to 1 s of backoff between them); the events of later chunks are answered
``failed``, for the app to retry, instead of the function timing out with every event's answer lost."""

NOT_QUEUED_REASON = "the outcomes queue did not take the event; retry it with the same event_id"
KEYS_UNAVAILABLE_REASON = "the signing keys could not be read to verify the event; retry it with the same event_id"


class OutcomeQueue(Protocol):
    def publish(self, event: OutcomeEvent) -> None:
        """Queue one event; raises OutcomeQueueUnavailableError."""
        ...

    def publish_batch(self, events: Sequence[OutcomeEvent], in_time: Callable[[], bool]) -> list[str]:
        """Queue events, a call per chunk while *in_time()*; return the event ids that were not queued (never raises
        for queue faults)."""
        ...


class _RejectedError(Exception):
    def __init__(self, code: RejectionCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def beacon_event_id(claims: TrackingClaims) -> str:
    """The same for every firing of one token (and of any token for the same decision, ad and type)."""
    return str(uuid.uuid5(BEACON_ID_NAMESPACE, f"{claims.decision_id}/{claims.ad_id}/{claims.event_type}"))


def rejection_code(error: TokenError) -> RejectionCode:
    if isinstance(error, ExpiredTokenError):
        return RejectionCode.EXPIRED_TOKEN
    if isinstance(error, WrongEventTypeError):
        return RejectionCode.WRONG_TYPE
    return RejectionCode.INVALID_TOKEN


@dataclass
class TrackingService:
    """One per execution environment; holds no per-request state."""

    queue: OutcomeQueue
    keys: SigningKeyCache
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    max_event_age: timedelta = MAX_EVENT_AGE
    queue_budget_seconds: float = QUEUE_BUDGET_SECONDS
    monotonic: Callable[[], float] = time.monotonic

    def record_beacon(self, event_type: EventType, token: str) -> OutcomeEvent:
        """Verify and queue one beacon; raises TokenError (refused), SecretKeysUnavailableError or
        OutcomeQueueUnavailableError (retry)."""
        now = self.clock()
        try:
            claims = self._claims(token, event_type, now)
        except TokenError as error:
            _count_rejections(Counter([rejection_code(error)]))
            logger.info("beacon rejected", extra={"event_type": event_type.value, "code": error.code})
            raise
        event = OutcomeEvent.from_claims(claims, event_id=beacon_event_id(claims), occurred_at=now, received_at=now)
        try:
            self.queue.publish(event)
        except OutcomeQueueUnavailableError:
            count_degraded(MetricName.EVENTS_NOT_QUEUED)
            logger.exception("beacon not queued", extra={"event_id": event.event_id, "decision_id": claims.decision_id})
            raise
        metrics.add_metric(MetricName.EVENTS_ACCEPTED, MetricUnit.Count, 1)
        return event

    def record_batch(self, request: EventBatchRequest) -> EventBatchResponse:
        """Verify every event, queue the valid ones, and report each event's fate in request order."""
        now = self.clock()
        seen: set[str] = set()
        rejected: dict[int, _RejectedError] = {}
        valid: dict[int, OutcomeEvent] = {}
        unverified: set[int] = set()  # keys that could not be read: the event, and the rest, are for a retry
        for index, item in enumerate(request.events):
            if unverified:
                unverified.add(index)
                continue
            try:
                if item.event_id in seen:
                    raise _RejectedError(RejectionCode.DUPLICATE, "duplicate event_id in batch")
                valid[index] = self._verified(item, now)
                seen.add(item.event_id)  # only once accepted: an id first sent with a bad token may follow valid
            except _RejectedError as rejection:
                rejected[index] = rejection
            except SecretKeysUnavailableError:
                logger.warning("events not verified: the signing keys could not be read")
                unverified.add(index)
        started = self.monotonic()

        def in_time() -> bool:
            return self.monotonic() - started < self.queue_budget_seconds

        not_queued = set(self.queue.publish_batch(list(valid.values()), in_time)) if valid else set()
        results = []
        for index, item in enumerate(request.events):
            if index in rejected:
                refusal = rejected[index]
                results.append(
                    EventResult(event_id=item.event_id, status="rejected", code=refusal.code, reason=str(refusal))
                )
            elif index in unverified or item.event_id in not_queued:
                reason = KEYS_UNAVAILABLE_REASON if index in unverified else NOT_QUEUED_REASON
                results.append(EventResult(event_id=item.event_id, status="failed", reason=reason))
            else:
                results.append(EventResult(event_id=item.event_id, status="accepted"))
        response = EventBatchResponse(
            accepted=len(valid) - len(not_queued),
            rejected=len(rejected),
            failed=len(not_queued) + len(unverified),
            results=results,
        )
        self._count(response, len(not_queued), Counter(rejection.code for rejection in rejected.values()))
        return response

    def _claims(self, token: str, event_type: EventType, now: datetime) -> TrackingClaims:
        """Verify with the cached keys; a token naming a key they lack reloads them (rate-limited) and is
        verified once more, so a key Decide has just started signing with is accepted within seconds."""
        try:
            return self.keys.signer().verify(token, event_type, now)
        except UnknownKeyError:
            return self.keys.signer_after_unknown_key().verify(token, event_type, now)

    def _verified(self, item: EventIn, now: datetime) -> OutcomeEvent:
        try:
            claims = self._claims(item.token, item.type, now)
        except TokenError as error:
            raise _RejectedError(rejection_code(error), str(error)) from error
        if item.occurred_at > now + MAX_CLOCK_SKEW:
            raise _RejectedError(RejectionCode.INVALID_TIME, "occurred_at is more than 5 minutes in the future")
        # Aged as filed, never before its decision: an app clock days behind still reports today's events
        occurred_at = _occurred_at(item.occurred_at, claims)
        if occurred_at < now - self.max_event_age:
            raise _RejectedError(
                RejectionCode.INVALID_TIME, "occurred_at is older than any tracking token lives (7 days)"
            )
        return OutcomeEvent.from_claims(claims, event_id=item.event_id, occurred_at=occurred_at, received_at=now)

    @staticmethod
    def _count(response: EventBatchResponse, not_queued: int, rejections: Counter[RejectionCode]) -> None:
        """The batch's metrics. Events failed because the keys could not be read are not ``EventsNotQueued`` (that
        alarm sends the operator to the queue): the key cache counts its failure (``SigningKeyRefreshFailures``),
        as for a beacon."""
        if response.accepted:
            metrics.add_metric(MetricName.EVENTS_ACCEPTED, MetricUnit.Count, response.accepted)
        if not_queued:
            count_degraded(MetricName.EVENTS_NOT_QUEUED, not_queued)
            logger.warning("events not queued", extra={"failed": not_queued, "accepted": response.accepted})
        _count_rejections(rejections)
        if rejections:
            logger.info("events rejected", extra={"rejections": {code.value: n for code, n in rejections.items()}})


def _occurred_at(reported: datetime, claims: TrackingClaims) -> datetime:
    """The app's time of an event, never before its decision (its id says when, ``core.decision_ids``): an app
    clock behind Decide's would file the event before its decision, in an earlier cap window (a cap of 1 an
    hour then let the ad through again) or an earlier hour of the logs. Ids that do not say when keep it."""
    decided = decided_at(claims.decision_id)
    return reported if decided is None else max(reported, decided)


def _count_rejections(rejections: Counter[RejectionCode]) -> None:
    """EventsRejected with a `reason` dimension from the closed RejectionCode set (bounded cardinality)."""
    for code, count in rejections.items():
        with single_metric(
            name=MetricName.EVENTS_REJECTED, unit=MetricUnit.Count, value=count, namespace=metrics.namespace
        ) as metric:
            metric.add_dimension(name="reason", value=code.value)
