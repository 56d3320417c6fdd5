"""The tracking service on an in-memory queue: only verified events are queued, and every event is accounted for."""

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from adserve.core.decision_ids import decided_at
from adserve.core.errors import (
    ExpiredTokenError,
    OutcomeQueueUnavailableError,
    SecretKeysUnavailableError,
    TokenError,
    WrongEventTypeError,
)
from adserve.core.observability import MetricName, metrics
from adserve.core.vocabulary import EventType
from adserve.dal.outcome_queue import OutcomeQueue
from adserve.outcomes.api import EventBatchRequest, EventResult, RejectionCode
from adserve.outcomes.events import OutcomeEvent
from adserve.outcomes.key_cache import SigningKeyCache
from adserve.outcomes.tokens import TokenSigner
from adserve.outcomes.tracking import TrackingService, beacon_event_id
from pydantic import ValidationError

from devstack.fakes import InMemoryOutcomeQueue
from tests.support.builders import NOW, decision_id_at, tracking_claims

SIGNER = TokenSigner(b"k" * 32)
CLAIMS = tracking_claims()


def token(event_type: EventType = EventType.IMPRESSION, *, ad_id: str = "ad-1", **changes: Any) -> str:
    return SIGNER.sign(replace(CLAIMS, event_type=event_type.value, ad_id=ad_id, **changes))


def service(queue: InMemoryOutcomeQueue) -> TrackingService:
    return TrackingService(queue=queue, keys=SigningKeyCache(lambda: SIGNER), clock=lambda: NOW)


def event(event_id: str, event_type: EventType = EventType.IMPRESSION, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "event_id": event_id,
        "type": event_type.value,
        "token": token(event_type, ad_id=f"ad-{event_id}"),
        "occurred_at": (NOW - timedelta(seconds=5)).isoformat(),
    }
    document.update(changes)
    return document


def batch(*events: dict[str, Any]) -> EventBatchRequest:
    return EventBatchRequest.model_validate({"events": list(events)})


def statuses(results: list[EventResult]) -> dict[str, tuple[str, RejectionCode | None]]:
    return {result.event_id: (result.status, result.code) for result in results}


# The beacon


def test_a_valid_beacon_queues_one_event_built_from_its_claims() -> None:
    queue = InMemoryOutcomeQueue()
    recorded = service(queue).record_beacon(EventType.IMPRESSION, token())
    assert queue.events == [recorded]
    assert recorded.identity == ("d-1", "ad-1", "impression")
    assert (recorded.listener, recorded.campaign_id) == (tracking_claims().listener, "cmp-1")
    assert recorded.occurred_at == recorded.received_at == NOW


def test_a_replayed_beacon_has_the_same_event_id() -> None:
    # Given one token fired twice, when both are recorded
    queue = InMemoryOutcomeQueue()
    first = service(queue).record_beacon(EventType.CLICK, token(EventType.CLICK))
    second = service(queue).record_beacon(EventType.CLICK, token(EventType.CLICK))
    # Then both carry the same identity and id, so Record counts them once
    assert first.event_id == second.event_id == beacon_event_id(replace(CLAIMS, event_type="click"))
    assert first.event_id != beacon_event_id(CLAIMS)


@pytest.mark.parametrize(
    ("bad_token", "route", "error"),
    [
        (TokenSigner(b"x" * 32).sign(CLAIMS), EventType.IMPRESSION, TokenError),
        (token(expires_at=int(NOW.timestamp()) - 1), EventType.IMPRESSION, ExpiredTokenError),
        (token(), EventType.CLICK, WrongEventTypeError),
        ("garbage", EventType.IMPRESSION, TokenError),
    ],
)
def test_a_bad_beacon_token_is_refused_and_nothing_is_queued(
    bad_token: str, route: EventType, error: type[TokenError]
) -> None:
    queue = InMemoryOutcomeQueue()
    with pytest.raises(error):
        service(queue).record_beacon(route, bad_token)
    assert queue.events == []


def test_token_errors_carry_stable_codes() -> None:
    assert TokenError("x").code == "invalid_token"
    assert ExpiredTokenError("x").code == "expired_token"
    assert WrongEventTypeError("x").code == "wrong_event_type"


def test_an_unavailable_queue_fails_the_beacon_so_the_app_retries() -> None:
    with pytest.raises(OutcomeQueueUnavailableError):
        service(InMemoryOutcomeQueue(available=False)).record_beacon(EventType.IMPRESSION, token())


# The batch


def test_a_valid_batch_is_accepted_and_queued_in_order() -> None:
    queue = InMemoryOutcomeQueue()
    response = service(queue).record_batch(batch(event("e1"), event("e2", EventType.SKIP)))
    assert (response.accepted, response.rejected, response.failed) == (2, 0, 0)
    assert [r.status for r in response.results] == ["accepted", "accepted"]
    assert [(e.event_id, e.event_type) for e in queue.events] == [("e1", EventType.IMPRESSION), ("e2", EventType.SKIP)]
    assert queue.events[0].occurred_at == NOW - timedelta(seconds=5)
    assert queue.events[0].received_at == NOW


def test_a_mixed_batch_reports_every_event_and_queues_only_the_valid_ones() -> None:
    # Given one valid event and one of each kind of bad one
    queue = InMemoryOutcomeQueue()
    request = batch(
        event("ok"),
        event("forged", token=TokenSigner(b"x" * 32).sign(CLAIMS)),
        event("tampered", token="e30" + token()[3:]),
        event("expired", token=token(expires_at=int(NOW.timestamp()))),
        event("wrong-type", EventType.CLICK, token=token(EventType.IMPRESSION)),
        event("ok", EventType.COMPLETE),
        event("future", occurred_at=(NOW + timedelta(minutes=6)).isoformat()),
        event("ancient", occurred_at=(NOW - timedelta(days=8)).isoformat()),
    )
    # When the batch is recorded
    response = service(queue).record_batch(request)
    # Then each event has its own verdict, in request order, and only the valid one was queued
    assert [r.event_id for r in response.results] == [e.event_id for e in request.events]
    assert [(r.status, r.code) for r in response.results] == [
        ("accepted", None),
        ("rejected", RejectionCode.INVALID_TOKEN),
        ("rejected", RejectionCode.INVALID_TOKEN),
        ("rejected", RejectionCode.EXPIRED_TOKEN),
        ("rejected", RejectionCode.WRONG_TYPE),
        ("rejected", RejectionCode.DUPLICATE),
        ("rejected", RejectionCode.INVALID_TIME),
        ("rejected", RejectionCode.INVALID_TIME),
    ]
    assert response.results[5].reason == "duplicate event_id in batch"
    assert all(r.reason for r in response.results[1:])
    assert (response.accepted, response.rejected, response.failed) == (1, 7, 0)
    assert [e.event_id for e in queue.events] == ["ok"]


def test_an_event_id_refused_once_is_accepted_when_it_comes_again_valid() -> None:
    # Given a batch whose first "e1" has a bad token and whose second is valid, and then a third copy
    queue = InMemoryOutcomeQueue()
    response = service(queue).record_batch(batch(event("e1", token="x.y"), event("e1"), event("e1")))
    # Then the valid one is queued, the copy after it is the duplicate
    assert [(r.status, r.code) for r in response.results] == [
        ("rejected", RejectionCode.INVALID_TOKEN),
        ("accepted", None),
        ("rejected", RejectionCode.DUPLICATE),
    ]
    assert [e.event_id for e in queue.events] == ["e1"]


def test_valid_events_are_published_ten_at_a_time() -> None:
    queue = InMemoryOutcomeQueue()
    response = service(queue).record_batch(batch(*(event(f"e{i}") for i in range(25))))
    assert response.accepted == 25
    assert queue.batch_calls == [10, 10, 5]


def test_entries_the_queue_did_not_take_are_reported_failed_not_accepted() -> None:
    queue = InMemoryOutcomeQueue(failing_ids={"e2"})
    response = service(queue).record_batch(batch(event("e1"), event("e2"), event("bad", token="x.y")))
    assert statuses(response.results) == {
        "e1": ("accepted", None),
        "e2": ("failed", None),
        "bad": ("rejected", RejectionCode.INVALID_TOKEN),
    }
    assert (response.accepted, response.rejected, response.failed) == (1, 1, 1)
    assert [e.event_id for e in queue.events] == ["e1"]


def test_an_unavailable_queue_fails_every_valid_event_and_accepts_none() -> None:
    response = service(InMemoryOutcomeQueue(available=False)).record_batch(batch(event("e1"), event("e2")))
    assert (response.accepted, response.failed) == (0, 2)
    assert {r.status for r in response.results} == {"failed"}


def test_events_failed_for_unreadable_keys_are_counted_as_such_not_as_events_the_queue_did_not_take() -> None:
    # Given a Track environment that cannot read its keys, and one whose queue refuses an event
    metrics.clear_metrics()

    def unreadable() -> TokenSigner:
        raise SecretKeysUnavailableError("secret could not be read")

    keyless = TrackingService(queue=InMemoryOutcomeQueue(), keys=SigningKeyCache(unreadable), clock=lambda: NOW)
    # When each answers a batch of two
    assert keyless.record_batch(batch(event("e1"), event("e2"))).failed == 2
    failing = service(InMemoryOutcomeQueue(failing_ids={"e4"})).record_batch(batch(event("e3"), event("e4")))
    assert failing.failed == 1
    # Then EventsNotQueued (whose alarm sends the operator to the queue) counts only the queue's refusal; the keys'
    # failure is counted by the key cache
    emitted = metrics.metric_set
    assert emitted[MetricName.EVENTS_NOT_QUEUED]["Value"] == [1.0]
    assert emitted[MetricName.SIGNING_KEY_REFRESH_FAILURES]["Value"] == [1.0]
    metrics.clear_metrics()


def test_an_event_reported_before_its_decision_happened_when_the_decision_was_made() -> None:
    # Given a decision made at NOW - 10 min (its id says so), and events an app whose clock is an hour behind
    # reports before that
    decided = NOW - timedelta(minutes=10)
    decision_id = decision_id_at(decided)
    assert decided_at(decision_id) == decided
    early = (NOW - timedelta(hours=1)).isoformat()
    clamped = event("clamped", token=token(ad_id="ad-clamped", decision_id=decision_id), occurred_at=early)
    # (a decision id that does not say when, as version-4 ids did not, keeps the app's time)
    legacy = event("legacy", token=token(ad_id="ad-legacy", decision_id=str(uuid.uuid4())), occurred_at=early)
    after = event("after", token=token(ad_id="ad-after", decision_id=decision_id))
    queue = InMemoryOutcomeQueue()
    # When they are posted
    service(queue).record_batch(batch(clamped, legacy, after))
    # Then none is filed before its decision: not in an earlier cap window, not in an earlier hour of the logs
    occurred = {queued.event_id: queued.occurred_at for queued in queue.events}
    assert occurred == {"clamped": decided, "legacy": NOW - timedelta(hours=1), "after": NOW - timedelta(seconds=5)}


def test_an_app_clock_days_behind_is_filed_at_the_decision_not_rejected_as_old() -> None:
    # Given a decision made 2 minutes ago, and an app whose clock was reset 8 days back (older than any token)
    decided = NOW - timedelta(minutes=2)
    behind = (NOW - timedelta(days=8)).isoformat()
    heard = event("behind", token=token(decision_id=decision_id_at(decided)), occurred_at=behind)
    queue = InMemoryOutcomeQueue()
    # When it reports the impression
    response = service(queue).record_batch(batch(heard))
    # Then it is accepted and filed when its decision was made; rejected, the app would never send it again
    assert [(r.status, r.code) for r in response.results] == [("accepted", None)]
    assert [queued.occurred_at for queued in queue.events] == [decided]


def test_a_batch_with_only_rejected_events_does_not_call_the_queue() -> None:
    queue = InMemoryOutcomeQueue()
    service(queue).record_batch(batch(event("bad", token="x.y")))
    assert queue.batch_calls == []


@pytest.mark.parametrize(
    "document",
    [
        {"events": []},
        {"events": [event(f"e{i}") for i in range(101)]},
        {"events": [event("e1", occurred_at="2026-11-25T13:30:00")]},  # no time zone
        {"events": [event("e1", occurred_at=0)]},  # a number: lax validation read it as 1970
        {"events": [event("e1", occurred_at="1764077400")]},  # digits: read as seconds since 1970 too
        {"events": [event("e1", token="t" * 1025)]},
        {"events": [event("e1", type="view")]},
        {"events": [event("bad id!")]},
        {"events": [{**event("e1"), "extra": 1}]},
    ],
)
def test_malformed_batches_are_refused_by_the_model(document: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EventBatchRequest.model_validate(document)


def test_the_clock_is_read_per_request() -> None:
    # Given a service whose clock moved past the token's expiry between two requests
    queue = InMemoryOutcomeQueue()
    times = iter([NOW, NOW + timedelta(hours=2)])
    tracker = TrackingService(queue=queue, keys=SigningKeyCache(lambda: SIGNER), clock=lambda: next(times))
    tracker.record_beacon(EventType.IMPRESSION, token())
    # Then the second request sees the later time
    with pytest.raises(ExpiredTokenError):
        tracker.record_beacon(EventType.IMPRESSION, token())


def test_a_batch_starts_no_queue_call_past_its_budget_and_answers_the_rest_failed() -> None:
    # Given a queue whose calls take a second each (SQS slow): the budget lets calls start within 1.5 s
    queue, elapsed = InMemoryOutcomeQueue(), iter([0.0, 0.0, 1.0, 2.0])
    tracker = replace(service(queue), monotonic=lambda: next(elapsed))
    # When 25 events arrive
    response = tracker.record_batch(batch(*(event(f"e{i}") for i in range(25))))
    # Then the chunks begun in time were queued and the last one is answered "retry", not lost to a timeout
    assert queue.batch_calls == [10, 10]
    assert (response.accepted, response.failed) == (20, 5)
    assert {r.status for r in response.results[20:]} == {"failed"}


def test_the_sqs_adapter_sends_a_chunk_only_while_in_time() -> None:
    class Sqs:
        calls = 0

        def send_message_batch(self, **request: Any) -> dict[str, Any]:
            Sqs.calls += 1
            return {"Successful": [{"Id": entry["Id"]} for entry in request["Entries"]]}

    events = [OutcomeEvent.from_claims(CLAIMS, event_id=f"e{i}", occurred_at=NOW, received_at=NOW) for i in range(25)]
    checks = iter([True, False, False])
    failed = OutcomeQueue(Sqs(), "queue-url").publish_batch(events, lambda: next(checks))  # type: ignore[arg-type]
    assert Sqs.calls == 1
    assert failed == [f"e{i}" for i in range(10, 25)]
