"""How the SQS poller fills a batch from a queue that messages trickle into, on a scripted queue.

One message arrives every few milliseconds; the poller must gather them into one batch, invoke it as soon as it
is full or the batching window ends, and not spend a ReceiveMessage on each arrival.
"""

import time
from typing import Any

from devstack.event_source_mapping import REFILL_PAUSE_SECONDS, SqsPoller
from devstack.stack_description import SqsEventSource

ARRIVAL_SECONDS = 0.005


class TrickleQueue:
    """Stands in for the SQS client: message *i* becomes visible ``i * ARRIVAL_SECONDS`` after the start."""

    def __init__(self, messages: int) -> None:
        self.started = time.monotonic()
        self.messages = messages
        self.next = 0
        self.receives: list[float] = []
        self.deleted: list[str] = []

    def arrived(self) -> int:
        return min(self.messages, int((time.monotonic() - self.started) / ARRIVAL_SECONDS) + 1)

    def receive_message(self, MaxNumberOfMessages: int, WaitTimeSeconds: int, **_: Any) -> dict[str, Any]:  # noqa: N803 (boto3's)
        self.receives.append(time.monotonic() - self.started)
        deadline = time.monotonic() + WaitTimeSeconds  # a long poll returns once a message is there
        while self.arrived() == self.next and time.monotonic() < deadline:
            time.sleep(ARRIVAL_SECONDS / 5)
        batch = range(self.next, min(self.arrived(), self.next + MaxNumberOfMessages))
        self.next = batch.stop
        return {"Messages": [{"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": str(i)} for i in batch]}

    def delete_message_batch(self, Entries: list[dict[str, str]], **_: Any) -> dict[str, Any]:  # noqa: N803
        self.deleted += [entry["ReceiptHandle"] for entry in Entries]
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries]}


def poller(queue: TrickleQueue, invocations: list[int], *, batch_size: int, window: int) -> SqsPoller:
    source = SqsEventSource(
        "Worker", "Work", "WorkQueue", batch_size=batch_size, maximum_batching_window_seconds=window
    )

    def invoke(_: str, event: dict[str, Any]) -> None:
        invocations.append(len(event["Records"]))

    return SqsPoller(
        source,
        queue_url="http://queue",
        queue_arn="arn:aws:sqs:eu-west-1:123456789012:work",
        region="eu-west-1",
        invoke=invoke,
        client=queue,  # type: ignore[arg-type]
    )


def test_a_trickle_fills_one_batch_with_few_receives() -> None:
    queue, invocations = TrickleQueue(messages=60), list[int]()
    started = time.monotonic()
    poller(queue, invocations, batch_size=60, window=5).poll_once()

    assert invocations == [60]
    assert len(queue.deleted) == 60
    assert time.monotonic() - started < 2  # invoked once full, long before the window ends
    arrivals = 60 * ARRIVAL_SECONDS / REFILL_PAUSE_SECONDS  # the pauses in which the 60 arrive
    assert len(queue.receives) <= arrivals + 60 / 10 + 2  # not one ReceiveMessage per message


def test_a_batch_that_does_not_fill_is_invoked_when_the_window_ends() -> None:
    queue, invocations = TrickleQueue(messages=3), list[int]()
    started = time.monotonic()
    poller(queue, invocations, batch_size=10, window=1).poll_once()

    assert invocations == [3]
    assert 1 <= time.monotonic() - started < 1 + 2 * REFILL_PAUSE_SECONDS


def test_without_a_window_one_receive_makes_the_batch() -> None:
    queue, invocations = TrickleQueue(messages=5), list[int]()
    poller(queue, invocations, batch_size=10, window=0).poll_once()

    assert invocations == [1]
    assert len(queue.receives) == 1
