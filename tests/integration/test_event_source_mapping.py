"""SQS-triggered functions driven from their queues, as Lambda's event source mapping drives them.

Each test runs its own stack (its own moto server) from a small template: a work queue with a dead-letter
queue (maxReceiveCount 2) and a function whose handler, written to tmp_path, records every batch it gets
in a JSON-lines file, reports messages whose body contains "poison" as failed, and raises on a message
containing "boom" the first time it sees it. Queues get a 1 s visibility timeout, so retries take seconds.
"""

import json
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.event_source_mapping import InvalidBatchResponseError, failed_message_ids
from devstack.stack import LocalStack

DEADLINE_SECONDS = 120
"""A bound, not a wait (each condition returns as soon as it holds): generous for two busy cores."""
VISIBILITY_TIMEOUT = 1

HANDLER = """
import json
import os
import time


def lambda_handler(event, context):
    records = event["Records"]
    with open(os.environ["CALLS_FILE"], "a") as calls:
        calls.write(json.dumps(records) + "\\n")
    if any("together" in record["body"] for record in records):
        meet(os.environ["CALLS_FILE"] + ".together")
    if any("boom" in record["body"] and record["attributes"]["ApproximateReceiveCount"] == "1" for record in records):
        raise RuntimeError("boom")
    return {
        "batchItemFailures": [
            {"itemIdentifier": record["messageId"]} for record in records if "poison" in record["body"]
        ]
    }


def meet(arrivals):
    # Wait (up to 60 s) until two invocations have arrived here; write whether they met.
    with open(arrivals, "a") as file:
        file.write("arrived\\n")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with open(arrivals) as file:
            if file.read().count("arrived") >= 2:
                break
        time.sleep(0.05)
    with open(arrivals + ".met", "a") as file:
        file.write(json.dumps(time.monotonic() < deadline) + "\\n")
"""

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Resources:
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 180
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt WorkDeadLetterQueue.Arn
        maxReceiveCount: 2
  WorkDeadLetterQueue:
    Type: AWS::SQS::Queue
  WorkerFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: worker/
      Handler: app.lambda_handler
      Timeout: 10
      Environment:
        Variables:
          CALLS_FILE: {calls_file}
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt WorkQueue.Arn
            BatchSize: {batch_size}
            MaximumBatchingWindowInSeconds: {window}
            FunctionResponseTypes:
              - ReportBatchItemFailures
"""

Records = list[dict[str, Any]]


class Harness:
    def __init__(self, stack: LocalStack, calls_file: Path) -> None:
        self.stack = stack
        self.calls_file = calls_file
        self.sqs = boto3.session.Session().client("sqs")
        self.queue_url = stack.description.references["WorkQueue"].ref
        self.dlq_url = stack.description.references["WorkDeadLetterQueue"].ref

    def send(self, *bodies: str, **attributes: str) -> None:
        message_attributes: Any = {
            name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
        }
        for body in bodies:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body, MessageAttributes=message_attributes)

    def batches(self) -> list[Records]:
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines() if line]

    def deliveries(self) -> list[tuple[str, str]]:
        """(body, ApproximateReceiveCount) of every record the function was invoked with, in order."""
        return [
            (record["body"], record["attributes"]["ApproximateReceiveCount"])
            for batch in self.batches()
            for record in batch
        ]

    def messages(self, queue_url: str) -> int:
        """Messages on a queue, visible or in flight."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {DEADLINE_SECONDS} s: {what}")


StartHarness = Callable[..., Harness]


@pytest.fixture
def start_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StartHarness]:
    """Start a stack from the test template; messages sent before ``start_event_sources()`` form one batch."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # always an embedded moto of this test's own
    stacks: list[LocalStack] = []

    def start(batch_size: int = 10, window: int = 0, environments: int = 1) -> Harness:
        (tmp_path / "worker").mkdir()
        (tmp_path / "worker" / "app.py").write_text(textwrap.dedent(HANDLER))
        calls_file = tmp_path / "calls.jsonl"
        template = tmp_path / "template.yaml"
        template.write_text(TEMPLATE.format(calls_file=calls_file, batch_size=batch_size, window=window))
        # moto servers of one process share their state: queue names of this test's own.
        stack_name = f"esm-{uuid.uuid4().hex[:12]}"
        stack = LocalStack.start(
            template,
            stack_name=stack_name,
            visibility_timeout_override=VISIBILITY_TIMEOUT,
            function_processes={"WorkerFunction": environments} if environments > 1 else (),
        )
        stacks.append(stack)
        return Harness(stack, calls_file)

    yield start
    for stack in stacks:
        stack.stop()


def test_pollers_are_off_unless_asked_for(start_harness: StartHarness) -> None:
    harness = start_harness()
    harness.send("left alone")
    time.sleep(1.5)
    assert harness.stack.event_sources is None
    assert harness.batches() == []
    assert harness.messages(harness.queue_url) == 1


def test_good_messages_are_processed_once_and_deleted(start_harness: StartHarness) -> None:
    harness = start_harness()
    sqs = harness.sqs
    assert sqs.get_queue_attributes(QueueUrl=harness.queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"] == {
        "VisibilityTimeout": str(VISIBILITY_TIMEOUT)
    }
    harness.send("good-1", "good-2", "good-3", kind="outcome")
    harness.stack.start_event_sources()

    wait_until(lambda: len(harness.deliveries()) >= 3, "three messages delivered")
    wait_until(lambda: harness.messages(harness.queue_url) == 0, "the queue emptied")
    time.sleep(VISIBILITY_TIMEOUT + 1)  # long enough for an undeleted message to come back

    assert sorted(harness.deliveries()) == [("good-1", "1"), ("good-2", "1"), ("good-3", "1")]
    assert harness.messages(harness.dlq_url) == 0
    record = harness.batches()[0][0]
    assert record.keys() >= {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["attributes"].keys() >= {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    }
    assert record["messageAttributes"] == {
        "kind": {"stringValue": "outcome", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    }
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == harness.stack.description.references["WorkQueue"].attributes["Arn"]
    assert record["awsRegion"] == harness.stack.description.region


def test_a_poison_message_is_retried_then_dead_lettered(start_harness: StartHarness) -> None:
    harness = start_harness()
    harness.send("good", "poison")
    harness.stack.start_event_sources()

    wait_until(lambda: harness.messages(harness.dlq_url) == 1, "the poison message in the dead-letter queue")
    wait_until(lambda: harness.messages(harness.queue_url) == 0, "the work queue emptied")

    deliveries = harness.deliveries()
    assert [count for body, count in deliveries if body == "poison"] == ["1", "2"]  # maxReceiveCount 2
    assert [count for body, count in deliveries if body == "good"] == ["1"]
    (dead,) = harness.sqs.receive_message(QueueUrl=harness.dlq_url, WaitTimeSeconds=1)["Messages"]
    assert dead["Body"] == "poison"


def test_a_handler_that_raises_has_the_whole_batch_retried(start_harness: StartHarness) -> None:
    harness = start_harness()
    harness.send("fine", "boom")
    harness.stack.start_event_sources()

    wait_until(lambda: len(harness.deliveries()) >= 4, "the batch delivered twice")
    wait_until(lambda: harness.messages(harness.queue_url) == 0, "the queue emptied")

    assert sorted(harness.deliveries()) == [("boom", "1"), ("boom", "2"), ("fine", "1"), ("fine", "2")]
    assert harness.messages(harness.dlq_url) == 0


def test_batches_fill_up_to_the_batch_size_across_receives(start_harness: StartHarness) -> None:
    harness = start_harness(batch_size=15, window=1)
    harness.send(*(f"message-{number}" for number in range(35)))
    harness.stack.start_event_sources()

    wait_until(lambda: len(harness.deliveries()) >= 35, "every message delivered")
    wait_until(lambda: harness.messages(harness.queue_url) == 0, "the queue emptied")

    sizes = [len(batch) for batch in harness.batches()]
    assert max(sizes) == 15  # more than SQS's 10 per ReceiveMessage: gathered within the window
    assert sum(sizes) == 35
    assert sorted(body for body, _ in harness.deliveries()) == sorted(f"message-{number}" for number in range(35))


def test_pollers_stop_within_about_a_second(start_harness: StartHarness) -> None:
    harness = start_harness()
    mappings = harness.stack.start_event_sources()
    assert [poller.source.function_id for poller in mappings] == ["WorkerFunction"]
    time.sleep(0.5)  # in the middle of a long poll
    started = time.monotonic()
    harness.stack.stop_event_sources()
    assert time.monotonic() - started < 2.5
    assert not any(poller.running for poller in mappings)


def test_a_function_with_two_environments_gets_two_batches_at_once(start_harness: StartHarness) -> None:
    harness = start_harness(batch_size=10, environments=2)
    harness.send(*(f"together-{number}" for number in range(20)))
    mappings = harness.stack.start_event_sources()
    assert len(list(mappings)) == 2

    met = harness.calls_file.with_name(harness.calls_file.name + ".together.met")
    wait_until(lambda: met.exists() and len(met.read_text().split()) >= 2, "two batches reached the meeting point")
    # Each of the first two batches waited for the other: they ran at the same time, in two environments.
    assert met.read_text().split()[:2] == ["true", "true"]
    wait_until(lambda: harness.messages(harness.queue_url) == 0, "the queue emptied")
    assert {body for body, _ in harness.deliveries()} == {f"together-{number}" for number in range(20)}


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"statusCode": 200}, set()),
    ],
)
def test_partial_batch_responses(response: Any, failed: set[str]) -> None:
    assert failed_message_ids(response, ["a", "b"], report_batch_item_failures=True) == failed


@pytest.mark.parametrize(
    "response",
    [
        "not an object",
        ["a"],
        {"batchItemFailures": "a"},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"id": "a"}]},
        {"batchItemFailures": [{"itemIdentifier": "not-in-the-batch"}]},
        {"batchItemFailures": [{"itemIdentifier": "a"}], "at": object()},  # not JSON
    ],
)
def test_invalid_partial_batch_responses_fail_the_whole_batch(response: Any) -> None:
    with pytest.raises(InvalidBatchResponseError):
        failed_message_ids(response, ["a", "b"], report_batch_item_failures=True)


def test_without_report_batch_item_failures_the_response_is_ignored() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": "a"}]}
    assert failed_message_ids(response, ["a", "b"], report_batch_item_failures=False) == set()
