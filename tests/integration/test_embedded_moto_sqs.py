"""SQS on the embedded moto, over HTTP, behaves as before its hot paths were patched (devstack.aws_endpoint).

The patches read the retention period without rebuilding the queue's attributes and count messages with one
clock reading per scan; these tests pin what must not change: expired messages are not delivered, the
ApproximateNumberOfMessages* counts follow visibility and delays, and FIFO deduplication still applies.
Queue names are the test's own, so tests can share the stack.
"""

import time
import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.sqs.models import Queue, SQSBackend

from devstack.aws_endpoint import AwsEndpoint
from devstack.stack import LocalStack

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

COUNTS: list[Any] = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


@pytest.fixture
def sqs(local_stack: LocalStack) -> "SQSClient":
    return boto3.client("sqs", endpoint_url=local_stack.endpoint_url)


def new_queue(sqs: "SQSClient", suffix: str = "", **attributes: str) -> str:
    queue_attributes: Any = attributes
    return sqs.create_queue(QueueName=f"moto-{uuid.uuid4().hex[:12]}{suffix}", Attributes=queue_attributes)["QueueUrl"]


def counts(sqs: "SQSClient", queue_url: str) -> dict[str, int]:
    attributes: dict[Any, str] = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=COUNTS)["Attributes"]
    return {name: int(attributes[name]) for name in COUNTS}


def bodies(sqs: "SQSClient", queue_url: str, **receive: int) -> list[str]:
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, **receive).get("Messages", [])  # type: ignore[arg-type]
    return sorted(message["Body"] for message in messages)


def test_the_embedded_moto_runs_the_patched_sqs_paths(local_stack: LocalStack) -> None:
    """Otherwise the other tests here would pass against moto's own code and prove nothing."""
    assert local_stack.embedded_endpoint
    assert getattr(SQSBackend.is_message_valid_based_on_retention_period, "constant_time", False)
    assert getattr(vars(Queue)["messages"].fget, "one_clock_read", False)


def test_starting_another_embedded_endpoint_leaves_the_patches_as_they_are(
    local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the stack's: another embedded moto, not that one
    retention_check = SQSBackend.is_message_valid_based_on_retention_period
    scans = {name: vars(Queue)[name] for name in ("messages", "approximate_number_of_messages_not_visible")}
    endpoint = AwsEndpoint.start()
    try:
        assert endpoint.embedded
        assert SQSBackend.is_message_valid_based_on_retention_period is retention_check
        assert {name: vars(Queue)[name] for name in scans} == scans
    finally:
        endpoint.stop()


def test_a_message_past_the_retention_period_is_not_delivered(sqs: "SQSClient") -> None:
    # moto accepts a retention period under SQS's 60 s minimum, which keeps this test to a second.
    expiring = new_queue(sqs, MessageRetentionPeriod="1")
    lasting = new_queue(sqs)
    for queue_url in (expiring, lasting):
        sqs.send_message(QueueUrl=queue_url, MessageBody="hello")
    time.sleep(1.5)

    assert bodies(sqs, expiring) == []
    assert bodies(sqs, lasting) == ["hello"]


def test_a_message_within_the_retention_period_is_delivered(sqs: "SQSClient") -> None:
    queue_url = new_queue(sqs, MessageRetentionPeriod="60")
    sqs.send_message(QueueUrl=queue_url, MessageBody="fresh")
    assert bodies(sqs, queue_url) == ["fresh"]


def test_approximate_counts_follow_visibility_and_delays(sqs: "SQSClient") -> None:
    queue_url = new_queue(sqs)
    assert counts(sqs, queue_url) == dict.fromkeys(COUNTS, 0)
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    for body in ("later-1", "later-2"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body, DelaySeconds=60)
    assert counts(sqs, queue_url) == dict(zip(COUNTS, (3, 0, 2), strict=True))

    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, VisibilityTimeout=60)["Messages"]
    assert counts(sqs, queue_url) == dict(zip(COUNTS, (2, 1, 2), strict=True))
    assert len(bodies(sqs, queue_url, VisibilityTimeout=60)) == 2  # neither the in-flight nor the delayed ones
    assert counts(sqs, queue_url) == dict(zip(COUNTS, (0, 3, 2), strict=True))

    sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=received[0]["ReceiptHandle"], VisibilityTimeout=0)
    time.sleep(0.01)
    assert counts(sqs, queue_url) == dict(zip(COUNTS, (1, 2, 2), strict=True))
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=received[0]["ReceiptHandle"])
    assert counts(sqs, queue_url) == dict(zip(COUNTS, (0, 2, 2), strict=True))


def test_content_based_deduplication_dedupes_a_fifo_queue(sqs: "SQSClient") -> None:
    queue_url = new_queue(sqs, ".fifo", FifoQueue="true", ContentBasedDeduplication="true")
    for body in ("same", "same", "other"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageGroupId="group")

    assert counts(sqs, queue_url)["ApproximateNumberOfMessages"] == 2
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ContentBasedDeduplication"] == "true"
    assert bodies(sqs, queue_url) == ["other", "same"]


def test_a_fifo_queue_without_content_based_deduplication_needs_a_deduplication_id(sqs: "SQSClient") -> None:
    queue_url = new_queue(sqs, ".fifo", FifoQueue="true")
    with pytest.raises(ClientError, match="ContentBasedDeduplication"):
        sqs.send_message(QueueUrl=queue_url, MessageBody="body", MessageGroupId="group")

    for _ in range(2):
        sqs.send_message(QueueUrl=queue_url, MessageBody="body", MessageGroupId="group", MessageDeduplicationId="d1")
    assert counts(sqs, queue_url)["ApproximateNumberOfMessages"] == 1


def test_a_standard_queue_does_not_deduplicate(sqs: "SQSClient") -> None:
    queue_url = new_queue(sqs)
    for _ in range(2):
        sqs.send_message(QueueUrl=queue_url, MessageBody="same")
    assert counts(sqs, queue_url)["ApproximateNumberOfMessages"] == 2
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert "ContentBasedDeduplication" not in attributes
